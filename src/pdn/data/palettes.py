"""Colour palettes: the PASCAL VOC colour map, which also colours the datasets without an official one."""

from __future__ import annotations

Color = tuple[int, int, int]


def voc_colormap(n: int = 256) -> list[Color]:
    """The first ``n`` colours of the PASCAL VOC colour map (the one stored in VOC's palette PNGs).

    Entry ``i`` spreads the bits of ``i`` over the high bits of R, G and B: 0 is black, 1 is
    ``(128, 0, 0)``, 15 (person) is ``(192, 128, 128)``, 255 (VOC's ignore border) is
    ``(224, 224, 192)``.
    """
    colors = []
    for index in range(n):
        r = g = b = 0
        c = index
        for bit in range(7, -1, -1):
            r |= (c & 1) << bit
            g |= ((c >> 1) & 1) << bit
            b |= ((c >> 2) & 1) << bit
            c >>= 3
        colors.append((r, g, b))
    return colors


def flat_palette(colors: list[Color]) -> list[int]:
    """``[(r, g, b), ...]`` -> ``[r, g, b, ...]`` padded to 256 entries, for ``Image.putpalette``."""
    flat = [v for color in colors for v in color]
    return flat + [0] * (768 - len(flat))
