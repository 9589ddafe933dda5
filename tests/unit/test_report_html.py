"""index.html from results: the grid's cells, order, marks, links, escaping; `invoke report`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import lxml.html
import pytest

from patchcheck.errors import UsageError
from patchcheck.report import html, regenerate
from patchcheck.result.model import CaseResult, RunResults

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "reports" / "demo3"
MakeResult = Callable[..., CaseResult]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """The recorded run, copied somewhere else than where it was recorded."""
    target = tmp_path / "reports" / "demo3"
    shutil.copytree(FIXTURE, target)
    return target


def _cells(page: str) -> list[lxml.html.HtmlElement]:
    return lxml.html.fromstring(page).xpath("//td[@data-case-id]")


def test_fixture_grid_equals_results(run_dir: Path) -> None:
    paths = regenerate.regenerate(run_dir)
    data = json.loads((run_dir / "results.json").read_text())
    cells = _cells(paths["html"].read_text())
    by_id = {c.get("data-case-id"): c for c in cells}
    assert len(cells) == len(by_id) == len(data["cases"]) == 30
    for case in data["cases"]:
        cell = by_id[case["id"]]
        assert cell.get("data-observed") == case["observed"]
        assert cell.get("data-expected") == case["expected"]
        deviates = case["observed"] not in ("error", "skipped", case["expected"])
        assert cell.get("data-deviates") == str(deviates).lower()
        assert ("dev" in cell.get("class", "").split()) == deviates
        assert (html.DEVIATES in cell.text_content()) == deviates
        assert html.SYMBOL[html.Observed(case["observed"])] in cell.text_content()
    assert sum(c.get("data-deviates") == "true" for c in cells) == 2  # the error is no deviation


def test_cells_link_to_their_logs(run_dir: Path) -> None:
    page = lxml.html.fromstring(regenerate.regenerate(run_dir)["html"].read_text())
    data = json.loads((run_dir / "results.json").read_text())
    for case in data["cases"]:
        cell = page.xpath(f'//td[@data-case-id="{case["id"]}"]')[0]
        anchor = cell.xpath(".//a/@href")[0]
        assert anchor.startswith("#")
        entry = page.get_element_by_id(anchor[1:])
        hrefs = entry.xpath(".//a/@href")
        assert len(hrefs) == len(case["logs"])  # source, destination, reproduce.sh (or none)
        for href in hrefs:
            assert not href.startswith(("/", "file:", "http")), href  # relative to the page
            assert (run_dir / href).is_file(), href
        if case["reproduce"]:
            assert case["reproduce"] in entry.text_content()


def test_rows_in_numeric_order_one_cell_per_guest(make_result: MakeResult) -> None:
    machines = ["pc-q35-10.0", "pc-q35-9.2", "pc-q35-4.0.1", "pc-q35-4.1", "pc-q35-4.0"]
    cases = [make_result(m, "a-none", "b-v2", "passed", "passed") for m in machines]
    cases.append(make_result("pc-q35-4.0", "a-none", "b-v2", "passed", "passed", guest="none"))
    cases.append(make_result("pc-q35-9.2", "a-none", "b-v2", "failed", "failed",
                             globals=["ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"]))
    page = lxml.html.fromstring(html.render(RunResults("r", {}, cases, ""), Path("/nonexistent")))
    labels = [th.text for th in page.xpath('//table[@class="grid"]/tbody/tr/th')]
    assert labels == ["pc-q35-4.0", "pc-q35-4.0.1", "pc-q35-4.1", "pc-q35-9.2", "pc-q35-9.2",
                      "pc-q35-10.0"]
    rows = page.xpath('//table[@class="grid"]/tbody/tr')
    assert all(len(r.xpath("./td")) == 2 for r in rows)  # 1 pair x 2 guest actions
    assert len(page.xpath("//td[@data-case-id]")) == len(cases)
    assert rows[0].xpath("./td")[1].get("data-case-id") == "pc-q35-4.0:a-none->b-v2[none]"
    assert rows[1].xpath("./td")[1].get("data-case-id") is None  # not in the matrix


def test_everything_is_escaped_and_self_contained(make_result: MakeResult) -> None:
    evil = "<script>alert(1)</script>"
    r = make_result("pc-q35-6.0", "a-none", "b-v2", "failed", "passed",
                    destination_error=f"qemu: {evil} & \"quotes\"", message=evil,
                    reproduce=f"qemu {evil}")
    builds = {"b-v2": {"source": f"git:/{evil}@main", "commit": "c" * 40, "qemu_version": evil,
                       "fix": {"state": "v2", "applied": "3way", "has_fix": True, "note": evil},
                       "image_id": "sha256:" + "d" * 64, "image": "img"}}
    run = RunResults(f"run-{evil}", builds, [r], "2024-01-01T00:00:00", host={"hostname": evil},
                     settings={"accel": evil})
    page = html.render(run, Path("/nonexistent"))
    assert "<script" not in page and evil not in page
    assert page.count("&lt;script&gt;") >= 6
    tree = lxml.html.fromstring(page)
    assert not tree.xpath("//script | //link | //img | //iframe | //*[@src]")
    assert not [h for h in tree.xpath("//@href") if not h.startswith("#")]  # no logs: no links
    assert "no logs" in page
    assert evil in tree.text_content()  # escaped in the file, intact when read


def test_missing_log_is_said_not_linked(run_dir: Path) -> None:
    victim = next(run_dir.glob("cases/*/source.log"))
    victim.unlink()
    page = regenerate.regenerate(run_dir)["html"].read_text()
    assert "source QEMU log (missing)" in page
    assert f"{victim.parent.name}/source.log" not in page


def test_empty_run(tmp_path: Path) -> None:
    page = html.render(RunResults("r", {}, [], "", partial=True), tmp_path)
    assert "No case ran." in page and "Partial run" in page
    assert not _cells(page)


# --- write_all, regenerate and `invoke report` -------------------------------------------


def test_write_all_then_regenerate_is_identical(run_dir: Path, tmp_path: Path) -> None:
    run = RunResults.load(run_dir / "results.json")
    fresh = tmp_path / "fresh"
    shutil.copytree(run_dir / "cases", fresh / "cases")
    written = regenerate.write_all(run, fresh)
    assert set(written) == {"results", "junit", "html", "summary"}
    assert all(p.is_file() and p.parent == fresh for p in written.values())
    before = {k: p.read_bytes() for k, p in written.items()}
    again = regenerate.regenerate(fresh)
    assert {k: p.read_bytes() for k, p in again.items()} == {k: before[k] for k in again}
    assert not list(fresh.glob(".*tmp"))


def test_report_command(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = run_dir.parent
    (reports / "latest").symlink_to("demo3")
    assert regenerate.report_command(reports, None, open_=True) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == str(run_dir.resolve() / "index.html")
    assert any("summary.md" in line for line in out) and any("junit.xml" in line for line in out)
    assert regenerate.report_command(reports, "demo3", open_=False) == 0
    assert "index.html" in capsys.readouterr().out


@pytest.mark.parametrize("problem", ["no-run", "no-latest", "no-results", "corrupt", "not-runs"])
def test_report_command_usage_errors(run_dir: Path, problem: str) -> None:
    reports = run_dir.parent
    run: str | None = "demo3"
    if problem == "no-run":
        run = "nope"
    elif problem == "no-latest":
        run = None
    elif problem == "no-results":
        (run_dir / "results.json").unlink()
    elif problem == "corrupt":
        (run_dir / "results.json").write_text('{"run_id": "demo3", "cases": [{"machine"')
    else:
        (run_dir / "results.json").write_text('{"cases": [1, 2]}')
    with pytest.raises(UsageError) as info:
        regenerate.report_command(reports, run, open_=False)
    assert "\n" not in str(info.value) and str(info.value)


def test_console_log_of_a_linux_guest_is_linked(make_result: MakeResult, tmp_path: Path) -> None:
    r = make_result("pc-q35-6.0", "a-none", "b-v2", "passed", "passed", guest="linux")
    logdir = tmp_path / "cases" / r.case.slug
    logdir.mkdir(parents=True)
    for name in ("destination.log", "console.log", "source.log"):
        (logdir / name).write_text("boot\n")
    r.logs = {role: str(logdir / f"{role}.log") for role in ("destination", "console", "source")}
    page = lxml.html.fromstring(html.render(RunResults("r", {}, [r], ""), tmp_path))
    links = [(a.text, a.get("href")) for a in page.xpath('//td[@class="logs"]/a')]
    assert links == [("source QEMU log", f"cases/{r.case.slug}/source.log"),
                     ("destination QEMU log", f"cases/{r.case.slug}/destination.log"),
                     ("guest console log", f"cases/{r.case.slug}/console.log")]
