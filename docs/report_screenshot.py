"""Makes docs/report.png, the README's picture of the report: a real run on examples/sample_alpaca.json,
its report (`select --report`), rendered in headless chromium: the counts, the selecting score's histogram
with its threshold and cut-off, and the map with a tooltip.

    python docs/report_screenshot.py        # needs instructsift[report] and Debian's chromium
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = "examples/sample_alpaca.json"  # relative to ROOT, as the page shows it
WIDTH = 1100


def cli(*args: object) -> None:
    subprocess.run([sys.executable, "-m", "instructsift.cli", *map(str, args)], check=True, cwd=ROOT)


def main(target: Path = ROOT / "docs" / "report.png") -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cli("select", SAMPLE, "-m", "superfiltering", "--ratio", "0.25", "-o", d / "picked.json", "-q",
            "--report", d / "report.html")  # fmt: skip
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"], headless=True
            )
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.goto((d / "report.html").as_uri())
            page.wait_for_timeout(1500)
            shots = [page.locator("header").screenshot(), page.locator("#counts").screenshot()]
            shots.append(page.locator("#score-0 .figure").screenshot())
            page.locator("#fig-map").scroll_into_view_if_needed()
            box = page.locator("#fig-map .scatterlayer .point").nth(3).bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_selector("#fig-map .hoverlayer .hovertext")
            shots.append(page.locator("#map").screenshot())
            browser.close()
    images = [Image.open(io.BytesIO(s)).convert("RGB") for s in shots]
    out = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), "white")
    y = 0
    for im in images:
        out.paste(im, (0, y))
        y += im.height
    out.save(target, optimize=True)
    print(f"{target}: {out.width}x{out.height}")


if __name__ == "__main__":
    main()
