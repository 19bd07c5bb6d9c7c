"""The report in a real browser: headless Chromium (Debian's package) opens the page written from
the bundled build, waits for Vega to draw every chart, and checks what a reader sees: no console
error or warning, marks in every chart, the segment cards and the customers' table, and a click
on a segment highlighting it in every chart. It saves a full-page screenshot to
reports/screenshot.png.

Skipped, with a message, when no Chromium is on the PATH (`.ci/run` installs it)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bench.report_page import CHROMIUM_ARGS

from conftest import PROJECT_ROOT, DbtRun
from customer_segmentation.report import page as report

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = PROJECT_ROOT / "reports" / "screenshot.png"
pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="no chromium on the PATH: the browser test needs it (Debian: apt-get install -y "
    "chromium; .ci/run installs it)",
)

# Marks drawn in a view, walking its scenegraph (renderer-agnostic: canvas or SVG).
COUNT_MARKS = """(view) => {
  let marks = 0;
  const walk = (node) => {
    for (const item of node.items || []) {
      if (item.mark && item.mark.marktype !== 'group' && item.mark.role === 'mark') marks += 1;
      if (item.items) walk(item);
    }
  };
  walk(view.scenegraph().root);
  return marks;
}"""

# Of the marks of a view that belong to a segment: how many are drawn faint (opacity < 0.5).
FAINT_SEGMENT_MARKS = """(view) => {
  let faint = 0, total = 0;
  const walk = (node) => {
    for (const item of node.items || []) {
      if (item.mark && item.mark.role === 'mark' && item.datum
          && typeof item.datum.segment_name === 'string') {
        total += 1;
        if ((item.opacity ?? 1) < 0.5) faint += 1;
      }
      if (item.items) walk(item);
    }
  };
  walk(view.scenegraph().root);
  return [faint, total];
}"""

# Window coordinates of a legend entry's symbol, by its label, in one chart (scrolled into view).
LEGEND_ENTRY = """([name, label]) => {
  const view = views[name];
  document.querySelector('#chart-' + name).scrollIntoView({block: 'center'});
  const canvas = document.querySelector('#chart-' + name + ' canvas');
  const box = canvas.getBoundingClientRect();
  let found = null;
  const walk = (node, x, y) => {
    for (const item of node.items || []) {
      if (item.mark && item.mark.role === 'legend-symbol' && item.datum
          && item.datum.value === label && !found) {
        found = [box.left + x + (item.bounds.x1 + item.bounds.x2) / 2,
                 box.top + y + (item.bounds.y1 + item.bounds.y2) / 2];
      }
      if (item.items) walk(item, x + (item.x || 0), y + (item.y || 0));
    }
  };
  walk(view.scenegraph().root, view.origin()[0], view.origin()[1]);
  return found;
}"""


@dataclass
class OpenedPage:
    """The report open in Chromium, with what its console said while it rendered."""

    page: object
    messages: list[tuple[str, str]] = field(default_factory=list)
    seconds_to_render: float = 0.0


@pytest.fixture(scope="module")
def report_file(bundled_build: DbtRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser_report")
    assert report.main(["--database", str(bundled_build.database), "--out", str(out),
                        "--no-png"]) == 0  # fmt: skip
    return out / "index.html"


@pytest.fixture(scope="module")
def opened(report_file: Path) -> Iterator[OpenedPage]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=BROWSER, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        result = OpenedPage(page)
        page.on("console", lambda m: result.messages.append((m.type, m.text)))
        page.on("pageerror", lambda e: result.messages.append(("pageerror", str(e))))
        started = time.perf_counter()
        page.goto(report_file.as_uri())
        page.wait_for_function("document.body.dataset.rendered !== undefined", timeout=60_000)
        result.seconds_to_render = time.perf_counter() - started
        print(f"\nthe report rendered in Chromium in {result.seconds_to_render:.2f} s")
        yield result
        browser.close()


@pytest.mark.dbt
def test_every_chart_renders_without_a_console_error_or_warning(opened: OpenedPage) -> None:
    page = opened.page
    assert page.evaluate("document.body.dataset.rendered") == "true", opened.messages
    problems = [m for m in opened.messages if m[0] in {"error", "warning", "pageerror"}]
    assert problems == []
    charts = page.evaluate("[...document.querySelectorAll('.chart')].map(c => c.id)")
    assert len(charts) == 26
    for chart in charts:
        name = chart.removeprefix("chart-")
        assert page.locator(f"#{chart} canvas, #{chart} svg").count() >= 1, name
        assert page.evaluate(f"({COUNT_MARKS})(views[{name!r}])") > 0, name


@pytest.mark.dbt
def test_the_cards_and_the_customers_table_are_there(
    opened: OpenedPage, bundled_build: DbtRun
) -> None:
    page = opened.page
    names = [r[0] for r in bundled_build.query(
        "select segment_name from segment_profiles order by cluster_id")]  # fmt: skip
    assert page.locator(".card h3").all_inner_texts() == names
    rows = bundled_build.scalar("select sum(least(n_customers, 200)) from segment_profiles")
    assert page.locator("#customer-table tbody tr").count() == rows
    page.fill("#customer-search", "netherlands")
    shown = page.locator("#customer-table tbody tr:not([hidden])")
    assert shown.count() > 0
    assert all("Netherlands" in text for text in shown.all_inner_texts())
    # Cell by cell: a customer id finds its row only, not a rank followed by another id.
    customer = page.locator("#customer-table tbody tr td:nth-child(3)").nth(5).inner_text()
    page.fill("#customer-search", customer)
    found = page.locator("#customer-table tbody tr:not([hidden]) td:nth-child(3)")
    assert all(customer in text for text in found.all_inner_texts())
    page.fill("#customer-search", "")
    assert page.locator("#customer-table tbody tr:not([hidden])").count() == rows


@pytest.mark.dbt
def test_clicking_a_segment_highlights_it_in_every_chart(
    opened: OpenedPage, bundled_build: DbtRun
) -> None:
    page = opened.page
    name = bundled_build.scalar("select segment_name from segment_profiles where cluster_id = 2")
    quoted = name.replace("'", "''")
    in_segment = bundled_build.scalar(
        f"select count(*) from rpt_pca_sample where segment_name = '{quoted}'"
    )
    in_table = bundled_build.scalar(
        f"select count(*) from rpt_top_customers where segment_name = '{quoted}'"
    )
    assert page.evaluate(f"({FAINT_SEGMENT_MARKS})(views.pca_scatter)")[0] == 0
    page.locator(f'.card[data-segment="{name}"]').click()
    page.wait_for_timeout(300)
    faint, total = page.evaluate(f"({FAINT_SEGMENT_MARKS})(views.pca_scatter)")
    assert (faint, total) == (total - in_segment, total)
    linked = page.evaluate(
        "Object.entries(views).filter(([n, v]) => hasSignal(v, 'highlight'))"
        ".map(([n, v]) => [n, v.signal('highlight')])"
    )
    assert len(linked) >= 10
    assert all(value == name for _, value in linked), linked
    assert page.locator("#customer-table tbody tr:not([hidden])").count() == in_table
    assert page.locator(".card.dimmed").count() == len(page.locator(".card").all()) - 1

    # A legend entry of another chart switches the highlight to its segment, everywhere.
    other = bundled_build.scalar("select segment_name from segment_profiles where cluster_id = 1")
    x, y = page.evaluate(LEGEND_ENTRY, ["segment_sizes_over_time", other])
    page.mouse.click(x, y)
    page.wait_for_timeout(300)
    assert page.evaluate("views.pca_scatter.signal('highlight')") == other
    # Escape shows every segment again.
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)
    assert page.evaluate(f"({FAINT_SEGMENT_MARKS})(views.pca_scatter)")[0] == 0


@pytest.mark.dbt
def test_the_page_prints_without_navigation_and_with_every_row(opened: OpenedPage) -> None:
    page = opened.page
    page.fill("#customer-search", "no customer matches this")
    # About an A4 page's width with 1 cm margins, narrower than the widest charts.
    page.set_viewport_size({"width": 1000, "height": 900})
    page.emulate_media(media="print")
    try:
        assert not page.locator("nav#toc").is_visible()
        assert not page.locator(".controls").first.is_visible()
        assert page.evaluate("getComputedStyle(document.querySelector('.grid')).display") == "block"
        # A filtered table still prints whole, and every chart fits the page's width.
        assert page.locator("#customer-table tbody tr").first.is_visible()
        overflowing = page.evaluate(
            "[...document.querySelectorAll('.chart canvas')]"
            ".filter(c => c.getBoundingClientRect().right > document.body.clientWidth + 1)"
            ".map(c => c.closest('.chart').id)"
        )
        assert overflowing == []
    finally:
        page.emulate_media(media="screen")
        page.set_viewport_size({"width": 1400, "height": 900})
        page.fill("#customer-search", "")
    assert page.locator("nav#toc").is_visible()


@pytest.mark.dbt
def test_the_page_is_screenshotted_for_the_readme(opened: OpenedPage) -> None:
    SCREENSHOT.parent.mkdir(exist_ok=True)
    opened.page.evaluate("window.scrollTo(0, 0)")
    opened.page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    height = opened.page.evaluate("document.body.scrollHeight")
    print(f"\nfull page: {height} px tall at 1,400 px wide; screenshot {SCREENSHOT}")
