"""index.html in a real browser: headless Chromium (Debian `chromium`) loads the page from
file://, its DOM must show exactly the cases of results.json, and its screenshot is kept in
reports/test-artifacts/ for a person to look at."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import lxml.html
import pytest

from patchcheck.report import html, regenerate
from patchcheck.result.model import RunResults
from patchcheck.verdict.decision import decide_dir, task_of

PROJECT = Path(__file__).resolve().parents[2]
FIXTURE = PROJECT / "tests" / "fixtures" / "reports" / "demo3"
ARTIFACTS = PROJECT / "reports" / "test-artifacts"
CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(scripts/setup-tests installs it)")


def chromium(profile: Path, *args: str) -> str:
    proc = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, lxml.html.HtmlElement]:
    run_dir = tmp_path_factory.mktemp("report") / "demo3"
    shutil.copytree(FIXTURE, run_dir)
    index = regenerate.regenerate(run_dir)["html"]
    dom = chromium(tmp_path_factory.mktemp("profile"), "--dump-dom", index.as_uri())
    return run_dir, lxml.html.fromstring(dom)


def test_dom_cells_equal_results(page: tuple[Path, lxml.html.HtmlElement]) -> None:
    run_dir, dom = page
    cases = json.loads((run_dir / "results.json").read_text())["cases"]
    cells = dom.xpath("//table[contains(@class, 'grid')]//td[@data-case-id]")
    assert len(cells) == len(cases)
    seen = {c.get("data-case-id"): (c.get("data-observed"), c.get("data-expected"),
                                    c.get("data-deviates"), html.DEVIATES in c.text_content())
            for c in cells}
    def deviates(c: dict) -> bool:  # an error or a skipped case observed nothing
        return c["observed"] not in ("error", "skipped", c["expected"])

    assert seen == {c["id"]: (c["observed"], c["expected"], str(deviates(c)).lower(),
                              deviates(c)) for c in cases}
    run = RunResults.load(run_dir / "results.json")
    decision = decide_dir(run, run_dir)
    verdict = dom.get_element_by_id("verdict")
    assert verdict.text_content() == "".join(decision.lines(task_of(run)))
    assert verdict.get("data-exit") == str(decision.exit_code(task_of(run)))


def test_dom_links_resolve_from_file_url(page: tuple[Path, lxml.html.HtmlElement]) -> None:
    run_dir, dom = page
    hrefs = [h for h in dom.xpath("//a/@href") if not h.startswith("#")]
    assert len(hrefs) == 29 * 3
    assert all((run_dir / h).is_file() for h in hrefs)
    assert not dom.xpath("//script | //link | //img | //*[@src]")  # self-contained


def test_screenshot_and_print(page: tuple[Path, lxml.html.HtmlElement],
                              tmp_path: Path) -> None:
    run_dir, _ = page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report-index.png"
    shot.unlink(missing_ok=True)
    chromium(tmp_path / "p1", f"--screenshot={shot}", "--window-size=1600,1200",
             (run_dir / "index.html").as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1600, 1200)
    pdf = ARTIFACTS / "report-index.pdf"
    pdf.unlink(missing_ok=True)
    chromium(tmp_path / "p2", f"--print-to-pdf={pdf}", "--no-pdf-header-footer",
             (run_dir / "index.html").as_uri())
    assert pdf.read_bytes()[:5] == b"%PDF-"
