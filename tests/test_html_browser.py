"""The HTML report opened in a real headless Chromium: the DOM it builds and the pixels it paints.

Why a real browser: a report that parses in Python may still render blank or colourless (a CSS
typo, a bad escape swallowing the page). Chromium's DOM dump and screenshot show what a reader
sees. Skipped, with the reason, when Debian's `chromium` is not installed.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from collections import Counter
from html.parser import HTMLParser

import pytest

from harness import shell
from harness.reports import html_report
from tests.reports_examples import META, results as example_results

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium, or "
    "scripts/setup.sh --with-browser)")

WIDTH, HEIGHT = 1400, 1000
RED, GREEN = (0xD7, 0x26, 0x3D), (0x2E, 0x9D, 0x4F)      # --ne and --pass in report.css


def chromium(tmp_path, *args: str) -> shell.ExecResult:
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={WIDTH},{HEIGHT}", *args]
    return shell.run(argv, timeout=120, doing="rendering the report in headless chromium")


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """A tiny PNG decoder (8-bit RGB/RGBA, non-interlaced): (width, height, rows of raw pixels)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride, rows, prev = width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def pixels(rows: list[bytes], bpp: int) -> Counter:
    """How many pixels of each RGB colour."""
    return Counter(tuple(r[i:i + 3]) for r in rows for i in range(0, len(r), bpp))


class Dom(HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.classes: list[str] = []
        self.tags: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.classes += (dict(attrs).get("class") or "").split()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "report.html"
    html_report.write(example_results(), path, META)
    return path


def test_browser_builds_the_expected_dom(report, tmp_path):
    res = chromium(tmp_path, "--dump-dom", report.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = Dom(res.stdout)
    assert "table" in dom.tags and "details" in dom.tags and "script" not in dom.tags
    for cls in ("banner", "comparison", "matrix", "v-pass", "v-not-enforced", "v-not-asserted",
                "exp-deny", "outcome-passed", "outcome-xfailed", "canary"):
        assert cls in dom.classes, cls
    assert "CNI comparison" in res.stdout and "does not enforce them" in res.stdout


def test_screenshot_is_a_full_size_coloured_image(report, tmp_path):
    png = tmp_path / "shot.png"
    res = chromium(tmp_path, f"--screenshot={png}", report.as_uri())
    assert res.returncode == 0 and png.exists(), res.stderr[-2000:]
    width, height, rows = decode_png(png.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    bpp = len(rows[0]) // width
    colours = pixels(rows, bpp)
    assert len(colours) > 50, "the page looks blank"
    # The banner and the not-enforced cells are painted red, passing cells green: CSS applied.
    assert RED in colours and GREEN in colours
    # Not one flat background with specks: the most common colour covers well under the page.
    assert colours.most_common(1)[0][1] / (width * height) < 0.9
