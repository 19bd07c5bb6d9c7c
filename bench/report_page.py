"""The report at scale, as ``make build`` writes it.

The time to write ``index.html`` and the PNGs, the page's size, and how long headless Chromium
takes to open it and draw every chart.

``python -m bench.report_page DATABASE OUT_DIR`` prints the figures as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Headless as root: no sandbox, and none of the background connections a closed network
# refuses (the browser test starts Chromium the same way).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def seconds_to_render(page: Path, browser: str, runs: int = 3) -> float:
    """The median time from opening ``page`` to every chart drawn, over ``runs`` fresh tabs."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser, args=CHROMIUM_ARGS)
        for _ in range(runs):
            tab = chromium.new_page(viewport={"width": 1400, "height": 900})
            started = time.perf_counter()
            tab.goto(page.resolve().as_uri())
            tab.wait_for_function("document.body.dataset.rendered === 'true'", timeout=120_000)
            times.append(time.perf_counter() - started)
            tab.close()
        chromium.close()
    return sorted(times)[len(times) // 2]


def measure_report(database: Path, out: Path) -> dict[str, object]:
    """Write the report of ``database`` under ``out`` the way ``make build`` does; measure it."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    written = subprocess.run(
        [
            sys.executable,
            "-m",
            "customer_segmentation.report",
            "--database",
            str(database),
            "--out",
            str(out),
        ],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "python")},
        capture_output=True,
        text=True,
        check=False,
    )
    result: dict[str, object] = {"report_s": time.perf_counter() - started}
    if written.returncode != 0:
        return result | {"report_error": written.stderr[-2000:]}
    page = out / "index.html"
    result["page_mb"] = page.stat().st_size / 1e6
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    result["browser_s"] = seconds_to_render(page, browser) if browser else None
    return result


if __name__ == "__main__":
    print(json.dumps(measure_report(Path(sys.argv[1]), Path(sys.argv[2]))))
