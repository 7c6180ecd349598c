"""Render an fff-report page in headless Chromium: a full-page screenshot, and the page's width
against the window's, so layout regressions (a table wider than the page) are seen, not guessed.

    python bench/render_report.py report/index.html --out shots/ [--width 1400]

Prints the page's scroll width, the window's width and every element that reaches past the
window's right edge; exit code 1 when something does. Needs Chromium (Debian: apt-get install
chromium) on PATH. tests/test_report_layout.py runs the same check on a synthetic report.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")

# Runs in the page once it has loaded: the page's width and what sticks out past the window.
MEASURE = r"""<script>
window.addEventListener("load", () => {
  const limit = document.documentElement.clientWidth;
  const over = [];
  for (const element of document.body.querySelectorAll("*")) {
    const right = element.getBoundingClientRect().right;
    const parent = element.parentElement;
    if (right > limit + 1 && !(parent && parent.getBoundingClientRect().right > limit + 1))  // the outermost only
      over.push(element.tagName.toLowerCase() + " " + Math.round(right) + "px: "
                + (element.textContent || element.getAttribute("src") || "").replace(/\s+/g, " ").trim().slice(0, 60));
  }
  const out = document.createElement("pre");
  out.id = "fff-layout";
  out.textContent = JSON.stringify({scroll_width: document.documentElement.scrollWidth, client_width: limit,
                                    page_height: document.documentElement.scrollHeight, overflowing: over.slice(0, 20)});
  document.body.appendChild(out);
});
</script>"""


def browser() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def _run(command: list[str]) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=10000"]
    result = subprocess.run([command[0], *flags, *command[1:]], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} exited with {result.returncode}: {result.stderr.strip()[-300:]}")
    return result.stdout


def render(page: Path, out: Path, width: int = 1400) -> dict:
    """Measure ``page`` at ``width`` px; write ``out/page-<width>.png`` (the whole page) and return
    ``{"scroll_width", "client_width", "page_height", "overflowing", "screenshot"}``."""
    chrome = browser()
    if chrome is None:
        raise RuntimeError(f"no Chromium on PATH (looked for {', '.join(BROWSERS)})")
    page = Path(page).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # A copy beside the page (its figures are linked relatively) with the measuring script in it.
    with tempfile.NamedTemporaryFile("w", suffix=".html", dir=page.parent, delete=False) as probe:
        probe.write(page.read_text().replace("</body>", MEASURE + "</body>"))
    try:
        dom = _run([chrome, f"--window-size={width},1000", "--dump-dom", Path(probe.name).as_uri()])
    finally:
        Path(probe.name).unlink()
    found = re.search(r'<pre id="fff-layout">(.*?)</pre>', dom, re.S)
    if not found:
        raise RuntimeError("the measuring script did not run (no layout in the dumped page)")
    layout = json.loads(found[1].replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"'))
    screenshot = out / f"page-{width}.png"
    _run([chrome, f"--window-size={width},{layout['page_height']}", f"--screenshot={screenshot}", page.as_uri()])
    return {**layout, "screenshot": str(screenshot)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("page", type=Path, help="an fff-report index.html")
    parser.add_argument("--out", type=Path, required=True, help="directory for the screenshot")
    parser.add_argument("--width", type=int, default=1400, help="window width in px (default 1400)")
    args = parser.parse_args(argv)
    layout = render(args.page, args.out, args.width)
    print(f"page {layout['scroll_width']} px wide in a {layout['client_width']} px window, "
          f"{layout['page_height']} px tall; screenshot {layout['screenshot']}")
    for element in layout["overflowing"]:
        print(f"  past the right edge: {element}")
    return 1 if layout["scroll_width"] > layout["client_width"] else 0


if __name__ == "__main__":
    sys.exit(main())
