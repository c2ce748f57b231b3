"""Screenshots of a run's report.html for the README: the verdict and leaderboard, the learning curves, the costs and
the per-example viewer (filtered to disagreements), taken with Debian's chromium through Playwright.

    .venv/bin/python docs/make_screenshots.py runs/curves_sst2 docs/screenshots
    .venv/bin/python docs/make_screenshots.py runs/curves_sst2_lm docs/screenshots --only curve --prefix sst2-lm

The first writes report-top.png, report-curve.png, report-costs.png and report-viewer.png; the second only
sst2-lm-curve.png (the README's first figure).
"""

from __future__ import annotations

import argparse
from pathlib import Path

TALL = 1400
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
SECTIONS = {"top": "#overview", "curve": "#section-curve", "costs": "#section-costs", "viewer": "#section-viewer"}


def main(run_dir: Path, out: Path, only: list[str], prefix: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((run_dir / "report.html").resolve().as_uri())
        for name in only:
            if name == "viewer":
                page.select_option("#filter", "disagree")
            section = page.locator(SECTIONS[name])  # the section's top, at most TALL pixels of it
            section.scroll_into_view_if_needed()
            box = section.bounding_box()  # in the viewport; the clip is in the page
            scroll = page.evaluate("[window.scrollX, window.scrollY]")
            clip = {**box, "x": box["x"] + scroll[0], "y": box["y"] + scroll[1], "height": min(box["height"], TALL)}
            path = out / f"{prefix}-{name}.png"
            page.screenshot(path=str(path), clip=clip, full_page=True)
            written.append(path)
        browser.close()
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a run folder holding report.html")
    parser.add_argument("out", type=Path, help="the folder the PNG files go to")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help="comma-separated sections, from: " + ", ".join(SECTIONS)
    )
    parser.add_argument("--prefix", default="report", help="file names are PREFIX-SECTION.png")
    args = parser.parse_args()
    sections = [s for s in args.only.split(",") if s]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"--only: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    print("\n".join(str(p) for p in main(args.run_dir, args.out, sections, args.prefix)))
