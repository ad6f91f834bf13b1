"""Draw the leaders' app icons (dispatcher/web/app/icons/*.png), with the standard library.

A white warning triangle with a red exclamation mark on the app's dark red. Run once after
changing the drawing; the PNGs are committed, so the service needs nothing to draw them:

    python tools/make_icons.py
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "dispatcher" / "web" / "app" / "icons"
RED = (142, 22, 22)
WHITE = (255, 255, 255)
SAMPLES = 4  # per axis: 16 samples a pixel smooth the edges

Shape = Callable[[float, float], bool]  # (x, y) in 0..1 -> inside?


def _triangle(scale: float) -> tuple[Shape, Shape]:
    """The triangle and its exclamation mark, `scale` of the icon's width, centred."""
    half = scale / 2
    top, bottom = 0.5 - half * 0.9, 0.5 + half * 0.8

    def triangle(x: float, y: float) -> bool:
        if not top <= y <= bottom:
            return False
        reach = half * (y - top) / (bottom - top)
        return abs(x - 0.5) <= reach

    def mark(x: float, y: float) -> bool:
        height = bottom - top
        bar = abs(x - 0.5) <= scale * 0.055 and top + height * 0.33 <= y <= top + height * 0.7
        dot_y = top + height * 0.84
        dot = (x - 0.5) ** 2 + (y - dot_y) ** 2 <= (scale * 0.065) ** 2
        return bar or dot

    return triangle, mark


def _rounded(radius: float) -> Shape:
    def inside(x: float, y: float) -> bool:
        dx = max(radius - x, 0.0, x - (1 - radius))
        dy = max(radius - y, 0.0, y - (1 - radius))
        return dx * dx + dy * dy <= radius * radius

    return inside


def draw(size: int, *, scale: float, background: Shape | None, badge: bool = False) -> bytes:
    """RGBA rows of the icon. `badge`: white on transparent, the mark cut out (Android's
    status bar shows only the alpha of a notification badge)."""
    triangle, mark = _triangle(scale)
    rows = bytearray()
    n = SAMPLES * SAMPLES
    for py in range(size):
        rows.append(0)  # PNG filter: none
        for px in range(size):
            r = g = b = a = 0.0
            for sy in range(SAMPLES):
                for sx in range(SAMPLES):
                    x = (px + (sx + 0.5) / SAMPLES) / size
                    y = (py + (sy + 0.5) / SAMPLES) / size
                    colour: tuple[int, int, int] | None = None
                    if triangle(x, y):
                        colour = None if (badge and mark(x, y)) else (RED if mark(x, y) else WHITE)
                        if badge and colour is not None:
                            colour = WHITE
                    elif background is not None and background(x, y):
                        colour = RED
                    if colour is not None:
                        r, g, b, a = r + colour[0], g + colour[1], b + colour[2], a + 1
            if a:
                rows += bytes((round(r / a), round(g / a), round(b / a), round(255 * a / n)))
            else:
                rows += b"\0\0\0\0"
    return bytes(rows)


def png(size: int, rgba: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rgba, 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    everything = _rounded(0.0)  # full bleed: maskable icons and Apple's (it rounds them)
    icons = {
        "icon-192.png": (192, 0.72, _rounded(0.18), False),
        "icon-512.png": (512, 0.72, _rounded(0.18), False),
        # Maskable: the mark inside the central 80 % circle every mask keeps.
        "maskable-512.png": (512, 0.56, everything, False),
        "apple-touch-icon.png": (180, 0.66, everything, False),
        "badge-96.png": (96, 0.9, None, True),
    }
    for name, (size, scale, background, badge) in icons.items():
        data = png(size, draw(size, scale=scale, background=background, badge=badge))
        (OUT / name).write_bytes(data)
        print(f"{name}: {size}x{size}, {len(data)} bytes")


if __name__ == "__main__":
    main()
