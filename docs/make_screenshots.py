"""Screenshots of a run's report.html for the README: the verdict and leaderboard, the learning curves, the costs and
the per-example viewer (filtered to disagreements), taken with Debian's chromium through Playwright.

    .venv/bin/python docs/make_screenshots.py runs/curves_sst2 docs/screenshots
"""

from __future__ import annotations

import sys
from pathlib import Path

TALL = 1400
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def main(run_dir: Path, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((run_dir / "report.html").resolve().as_uri())

        def shot(name: str, selector: str) -> None:  # the section's top, at most TALL pixels of it
            section = page.locator(selector)
            section.scroll_into_view_if_needed()
            box = section.bounding_box()  # in the viewport; the clip is in the page
            scroll = page.evaluate("[window.scrollX, window.scrollY]")
            clip = {**box, "x": box["x"] + scroll[0], "y": box["y"] + scroll[1], "height": min(box["height"], TALL)}
            page.screenshot(path=str(out / f"{name}.png"), clip=clip, full_page=True)

        shot("report-top", "#overview")
        shot("report-curve", "#section-curve")
        shot("report-costs", "#section-costs")
        page.select_option("#filter", "disagree")
        shot("report-viewer", "#section-viewer")
        browser.close()
    print("\n".join(str(out / f"report-{n}.png") for n in ("top", "curve", "costs", "viewer")))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
