"""junit.xml against a published JUnit schema (Jenkins xUnit's junit-10.xsd), names unique
per classname, attachments that exist, and a bounded system-out."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from patchcheck.report import junit, regenerate
from patchcheck.result.model import CaseResult, RunResults

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MakeResult = Callable[..., CaseResult]


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(FIXTURES / "junit-10.xsd")))


def _valid(schema: etree.XMLSchema, path: Path) -> etree._ElementTree:
    doc = etree.parse(str(path))
    assert schema.validate(doc), "\n".join(str(e) for e in schema.error_log)
    return doc


def test_recorded_run_validates(schema: etree.XMLSchema, tmp_path: Path) -> None:
    run_dir = tmp_path / "demo3"
    shutil.copytree(FIXTURES / "reports" / "demo3", run_dir)
    doc = _valid(schema, regenerate.regenerate(run_dir)["junit"])
    cases = doc.findall(".//testcase")
    assert len(cases) == 30
    assert len(doc.findall(".//failure")) == 2 and len(doc.findall(".//error")) == 1
    assert len(doc.findall(".//skipped")) == 1
    names = [(c.get("classname"), c.get("name")) for c in cases]
    assert len(set(names)) == len(names)
    attachments = [line.removeprefix("[[ATTACHMENT|").removesuffix("]]")
                   for c in cases for line in (c.findtext("system-out") or "").splitlines()
                   if line.startswith("[[ATTACHMENT|")]
    assert len(attachments) == 29 * 3  # source, destination, reproduce.sh; the skipped has none
    assert all((run_dir / a).is_file() for a in attachments)  # relative to the run directory


def test_the_disabled_attribute_is_dropped(schema: etree.XMLSchema, tmp_path: Path,
                                           make_result: MakeResult) -> None:
    """junit-xml 1.9 writes disabled="0", which junit-10.xsd rejects; junit.py drops it."""
    run = RunResults("r", {}, [make_result("pc-q35-6.0", "a-none", "b-v2", "passed", "passed")],
                     "2024-01-01T00:00:00")
    text = junit.to_xml(run, tmp_path)
    assert "disabled=" not in text
    doc = etree.fromstring(text.encode())
    doc.set("disabled", "0")
    assert not schema.validate(doc)  # the schema really does reject it: keep dropping it


def test_hostile_content_validates(schema: etree.XMLSchema, tmp_path: Path,
                                   make_result: MakeResult) -> None:
    run_dir = tmp_path / "run"
    logdir = run_dir / "cases" / "x"
    logdir.mkdir(parents=True)
    (logdir / "destination.log").write_text(
        "\n".join(f"line {i} \x1b[1m<bold> & \"quoted\"\x1b[0m \x00\x07 " + "y" * 500
                  for i in range(5000)) + "\n")
    forced = "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"
    cases = [
        make_result("pc-q35-6.0", "a-none", "b-v2", "failed", "passed", seconds=0.00001,
                    destination_error="x\x1b[0m <&>", message="]]> <!-- -->",
                    logs={"destination": str(logdir / "destination.log"),
                          "console": "/nowhere/console.log"}),
        make_result("pc-q35-6.0", "a-none", "b-v2", "error", "passed", guest="none",
                    seconds=12345.678),
        make_result("pc-q35-6.0", "a-none", "b-v2", "skipped", "skipped", globals=[forced]),
        make_result("pc-q35-6.0", "a-none", "b-v2", "passed", "passed", globals=[forced]),
    ]
    run = RunResults("r<&>", {"b": {"source": "git:<x>", "fix": {"state": "v2"}}}, cases,
                     "2024-01-01T00:00:00+00:00", partial=True)
    path = junit.write(run, run_dir)
    doc = _valid(schema, path)
    out = doc.findtext(".//system-out") or ""
    assert len(out) < junit.TAIL_CHARS + 2000  # a 2.5 MB log keeps only its tail
    assert "line 4999" in out and "line 4900 " not in out
    assert "[[ATTACHMENT|cases/x/destination.log]]" in out
    assert "[[ATTACHMENT|/nowhere/console.log]]" in out  # not found: kept as recorded
    names = [(c.get("classname"), c.get("name")) for c in doc.findall(".//testcase")]
    assert len(set(names)) == len(names) == 4
    assert path.stat().st_size < 20_000


def test_colliding_names_are_made_unique(make_result: MakeResult, tmp_path: Path) -> None:
    same = [make_result("pc-q35-6.0", "a-none", "b-v2", "passed", "passed") for _ in range(3)]
    doc = etree.fromstring(junit.to_xml(RunResults("r", {}, same, ""), tmp_path).encode())
    names = [c.get("name") for c in doc.findall(".//testcase")]
    assert names == ["a-none->b-v2[synthetic]", "a-none->b-v2[synthetic] #2",
                     "a-none->b-v2[synthetic] #3"]


def test_schema_fixture_keeps_its_licence() -> None:
    head = (FIXTURES / "junit-10.xsd").read_text()[:2000]
    assert "The MIT License (MIT)" in head and "Gregory Boissinot" in head
