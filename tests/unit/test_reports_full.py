"""Issue 27: a reports directory that fills while reports are written. Each file is whole
or not there (no temporary file left), every file that fits is written, and the one line
names what was not."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from patchcheck.errors import DiskFull
from patchcheck.report import regenerate
from patchcheck.result import files
from patchcheck.result.model import RunResults, write_json

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "reports" / "demo3"


def _refusing(monkeypatch: pytest.MonkeyPatch, names: set[str]) -> None:
    """Writes of files whose final name is in `names` fill the disk half-way and fail."""
    real = Path.write_text

    def write_text(self: Path, text: str, *args: object, **kwargs: object) -> int:
        if any(self.name.startswith(f".{name}.") for name in names):
            real(self, text[: len(text) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, text, *args, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(Path, "write_text", write_text)


def test_write_whole_leaves_the_old_file_or_nothing(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    old = tmp_path / "results.json"
    write_json(old, {"cases": 1})
    _refusing(monkeypatch, {"results.json", "new.txt"})
    with pytest.raises(OSError, match="No space left"):
        write_json(old, {"cases": 2})
    with pytest.raises(OSError, match="No space left"):
        files.write_whole(tmp_path / "new.txt", "text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    assert old.read_text() == '{\n  "cases": 1\n}\n'


def test_copy_whole_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "qemu.log").write_text("x" * 1000)

    def copyfile(source: Path, target: Path) -> None:
        Path(target).write_bytes(b"x" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(shutil, "copyfile", copyfile)
    with pytest.raises(OSError):
        files.copy_whole(tmp_path / "qemu.log", tmp_path / "logs-qemu.log")
    assert [p.name for p in tmp_path.iterdir()] == ["qemu.log"]


def test_a_full_reports_dir_writes_what_fits_and_names_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = RunResults.load(FIXTURE / "results.json")
    out = tmp_path / "run"
    shutil.copytree(FIXTURE / "cases", out / "cases")
    _refusing(monkeypatch, {"index.html", "junit.xml"})
    with pytest.raises(DiskFull) as caught:
        regenerate.write_all(run, out)
    assert str(caught.value) == (
        f"no space left on device in the reports directory ({out}): junit.xml, index.html not "
        f"written ({len(run.cases)} finished cases' result.json are in cases/); free space and "
        "run again")
    assert sorted(p.name for p in out.iterdir()) == ["cases", "results.json", "summary.md"]
    assert RunResults.load(out / "results.json").cases  # whole
    monkeypatch.undo()
    assert set(regenerate.write_all(run, out)) == {"results", "junit", "html", "summary"}
    assert not list(out.glob(".*"))


def test_another_write_error_is_not_a_full_disk(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(self: Path, *args: object, **kwargs: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))
    monkeypatch.setattr(Path, "write_text", denied)
    with pytest.raises(PermissionError):
        regenerate.write_all(RunResults.load(FIXTURE / "results.json"), tmp_path)
