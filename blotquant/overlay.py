"""Overlay images: the blot with its lanes and bands drawn on, for a glance check.

Drawn with Pillow on a size-capped copy of the image and saved with fast PNG
compression: an overlay is a picture to look at, not a plot, so it needs no
plotting library (matplotlib took half of a batch worker's time here).
"""

from __future__ import annotations

import io as _io

import numpy as np

from ._shared import block_mean
from .output import atomic_write_bytes, printable

_MAX_DISPLAY_SIDE = 1600
#: Small images are enlarged by whole pixels until their long side reaches this, so labels stay legible.
_MIN_DISPLAY_SIDE = 1200
#: zlib level 1: about five times faster than the default level 6 on a blot, for a file about 1.3x larger.
_PNG_COMPRESS_LEVEL = 1

#: The image is a palette PNG: grey levels first, then the drawing colours. One byte a pixel and no
#: PNG filtering make it about three times faster to write than RGB, at no visible cost.
_GREY_LEVELS = 240
_COLOURS = {
    "excluded": (153, 153, 153),
    "lane": (23, 190, 207),
    "saturated": (255, 0, 0),
    "band": (255, 215, 0),
    "weak band": (255, 165, 0),
    "size": (148, 103, 189),
    "marker": (255, 0, 255),
    "title": (0, 0, 0),
    "paper": (255, 255, 255),
    "mark": (214, 39, 40),
}
_INDEX = {name: _GREY_LEVELS + i for i, name in enumerate(_COLOURS)}
_PALETTE = [round(level * 255 / (_GREY_LEVELS - 1)) for level in range(_GREY_LEVELS) for _ in range(3)]
_PALETTE += [channel for colour in _COLOURS.values() for channel in colour]

# Text heights in pixels of the drawn image.
_TITLE_SIZE = 16
_LANE_SIZE = 12
_KDA_SIZE = 11
_MARKER_SIZE = 10


def render_overlay(signal, result, path, *, title=None):
    """Draw lanes and bands over a signal image and save it as a PNG.

    Lanes are outlined in cyan with their number; bands are boxed in
    yellow, bands found below the detection threshold in orange, saturated
    bands in red, excluded lanes and bands in grey; labels and pen marks set
    aside (:mod:`blotquant.marks`) are outlined with dashes in dark red. With a size calibration,
    each band row is labelled with its size (the median ``kda`` of its bands)
    right of the strip, and the ladder's markers are ticked in magenta with
    their sizes. Text is drawn as given (a file name is never read as markup).

    Parameters
    ----------
    signal : (M, N) array
        The analysed image with signal positive (bands bright).
    result : QuantResult
        What :func:`blotquant.quantify` returned for that image.
    path : str or pathlib.Path
        Where to write the PNG (atomically).
    title : str, optional
        A line drawn above the image (undecodable file-name bytes as ``\\xNN``).
    """
    height, width = signal.shape
    factor = max(1, int(np.ceil(max(height, width) / _MAX_DISPLAY_SIDE)))
    shown = block_mean(signal, factor)
    zoom = max(1, _MIN_DISPLAY_SIDE // max(shown.shape))
    grey = _display_grey(shown)
    if zoom > 1:
        grey = np.repeat(np.repeat(grey, zoom, axis=0), zoom, axis=1)
    canvas = _Canvas(grey, scale=zoom / factor, title=printable(title) if title else None)

    lanes = result.lanes
    one_strip = len(lanes) == 0 or lanes["strip"].max() == 1
    for lane in lanes.to_dict("records"):
        y_mid = (lane["y_top"] + lane["y_bottom"]) / 2.0
        corners = [(x + lane["slope"] * (y - y_mid), y)
                   for y, x in ((lane["y_top"], lane["x_left"]), (lane["y_top"], lane["x_right"]),
                                (lane["y_bottom"], lane["x_right"]), (lane["y_bottom"], lane["x_left"]))]
        colour = _INDEX["excluded"] if lane["excluded"] else _INDEX["lane"]
        canvas.polygon(corners, colour)
        label = f"{lane['lane']}" if one_strip else f"{lane['strip']}.{lane['lane']}"
        canvas.text(corners[0], label, colour, _LANE_SIZE, offset=(3, 2))

    for band in result.bands.to_dict("records"):
        if band["excluded"]:
            colour = _INDEX["excluded"]
        elif band["saturated"]:
            colour = _INDEX["saturated"]
        else:
            colour = _INDEX["band"] if band["detected"] else _INDEX["weak band"]
        canvas.rectangle(band["x_left"], band["y_top"], band["x_right"], band["y_bottom"], colour)
    _draw_marks(canvas, result.marks)
    _draw_sizes(canvas, result)

    buffer = _io.BytesIO()
    canvas.image.save(buffer, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)
    atomic_write_bytes(path, buffer.getvalue())


def _draw_marks(canvas, marks):
    """Labels and pen marks set aside, outlined and named once, so a person can check them."""
    shown = marks[marks["kind"] == "label or mark"]
    for mark in shown.itertuples():
        canvas.dashed_rectangle(mark.x_left, mark.y_top, mark.x_right, mark.y_bottom, _INDEX["mark"])
    if not shown.empty:
        first = shown.sort_values(["y_top", "x_left"]).iloc[0]
        canvas.text((first["x_left"], first["y_top"]), "ignored: label/mark", _INDEX["mark"], _MARKER_SIZE,
                    offset=(0, -2), vertical="bottom")


def _display_grey(shown):
    """Grey palette indices of ``shown``: bands dark on light (as most people read blots), 1st-99.8th percentile."""
    is_finite = np.isfinite(shown)
    finite = shown if is_finite.all() else shown[is_finite]
    top = _GREY_LEVELS - 1
    if finite.size == 0:
        return np.full(shown.shape, top, np.uint8)
    low, high = (float(v) for v in np.percentile(finite, [1, 99.8]))
    if not high > low:
        high = low + 1.0
    scaled = np.nan_to_num(shown, nan=low, posinf=high, neginf=low)
    scaled = np.clip((scaled - np.float32(low)) * np.float32(top / (high - low)), 0, top)
    return (np.float32(top) - scaled).round().astype(np.uint8)


class _Canvas:
    """An RGB image of the blot with a title strip, drawn on in the blot's pixel coordinates.

    Pixel ``(x, y)`` of the full-resolution image (centres at whole numbers)
    is drawn at ``((x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5 + top)``.
    """

    def __init__(self, grey, *, scale, title):
        from PIL import Image, ImageDraw

        self.scale = scale
        title_font = None
        self.top = 0
        if title:
            title_font = _font(_TITLE_SIZE)
            # A narrow image gets a smaller title rather than a cut one (down to half size).
            fits = _text_width(title_font, title)
            if fits > grey.shape[1] - 8:
                title_font = _font(max(_TITLE_SIZE // 2, int(_TITLE_SIZE * (grey.shape[1] - 8) / fits)))
            self.top = int(round(_TITLE_SIZE * 1.8))
        pixels = np.full((grey.shape[0] + self.top, grey.shape[1]), _INDEX["paper"], np.uint8)
        pixels[self.top:] = grey
        image = Image.frombytes("P", (pixels.shape[1], pixels.shape[0]), pixels.tobytes())
        image.putpalette(_PALETTE)
        self.image = image
        self.draw = ImageDraw.Draw(image)
        if title:
            self._place((grey.shape[1] / 2.0, self.top / 2.0), title, _INDEX["title"], title_font, "center", "middle")

    def point(self, x, y):
        return ((float(x) + 0.5) * self.scale - 0.5, (float(y) + 0.5) * self.scale - 0.5 + self.top)

    def polygon(self, corners, colour):
        points = [self.point(x, y) for x, y in corners]
        self.draw.line(points + points[:1], fill=colour, width=1)

    def rectangle(self, x_left, y_top, x_right, y_bottom, colour):
        (x0, y0), (x1, y1) = self.point(x_left, y_top), self.point(x_right, y_bottom)
        self.draw.rectangle((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=colour, width=1)

    def dashed_rectangle(self, x_left, y_top, x_right, y_bottom, colour, dash=3):
        (x0, y0), (x1, y1) = self.point(x_left, y_top), self.point(x_right, y_bottom)
        x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        for start in np.arange(x0, x1, 2 * dash):
            end = min(start + dash, x1)
            self.draw.line(((start, y0), (end, y0)), fill=colour)
            self.draw.line(((start, y1), (end, y1)), fill=colour)
        for start in np.arange(y0, y1, 2 * dash):
            end = min(start + dash, y1)
            self.draw.line(((x0, start), (x0, end)), fill=colour)
            self.draw.line(((x1, start), (x1, end)), fill=colour)

    def tick(self, x, y, colour, half_width=6):
        cx, cy = self.point(x, y)
        self.draw.line(((cx - half_width, cy), (cx + half_width, cy)), fill=colour, width=1)

    def text(self, at, text, colour, size, *, offset=(0, 0), horizontal="left", vertical="top"):
        """``text`` beside blot pixel ``at``, moved by ``offset`` drawn pixels."""
        x, y = self.point(*at)
        self._place((x + offset[0], y + offset[1]), text, colour, _font(size), horizontal, vertical)

    def _place(self, xy, text, colour, font, horizontal, vertical):
        # Placed from the text's own box, so a bitmap font (no anchors) is placed the same way.
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=font)
        x, y = xy
        x -= {"left": left, "center": (left + right) / 2.0, "right": right}[horizontal]
        y -= {"top": top, "middle": (top + bottom) / 2.0, "bottom": bottom}[vertical]
        self.draw.text((x, y), text, fill=colour, font=font)


_FONTS = {}


def _font(size):
    """Pillow's own font at ``size`` pixels (its bitmap font where FreeType is missing)."""
    if size not in _FONTS:
        from PIL import ImageFont

        try:
            _FONTS[size] = ImageFont.load_default(size=size)
        except (TypeError, ImportError, OSError):  # Pillow < 10.1, or built without FreeType
            _FONTS[size] = ImageFont.load_default()
    return _FONTS[size]


def _text_width(font, text):
    left, _, right, _ = font.getbbox(text)
    return right - left


def _draw_sizes(canvas, result):
    """Label band rows with their size and tick the ladders' markers (nothing without a calibration)."""
    calibration = getattr(result, "calibration", None)
    if calibration is None or "kda" not in result.bands:
        return
    bands = result.bands
    if len(bands):
        bands = bands[(bands["channel"] == bands["channel"].iloc[0]) & ~bands["excluded"] & bands["kda"].notna()]
    for strip, members in bands.groupby("strip"):
        members = members.sort_values("y")
        # A band row: bands of neighbouring lanes at nearly the same row.
        gap = max(3.0, 0.5 * float(members["height"].median()))
        row_id = np.cumsum(np.r_[0, np.diff(members["y"].to_numpy()) > gap])
        right = float(members["x_right"].max())
        for _, row in members.groupby(row_id):
            canvas.text((right, float(row["y"].median())), f"{row['kda'].median():.0f} kDa", _INDEX["size"], _KDA_SIZE,
                        offset=(5, 0), vertical="middle")
    lanes = result.lanes
    for strip, sizes in calibration.strips.items():
        left = float(lanes.loc[lanes["strip"] == strip, "x_left"].min())
        for curve, column in zip(sizes.curves, sizes.columns):
            x = left - 2 if column is None else column
            for row, kda in zip(curve.rows, curve.kda):
                canvas.tick(x, row, _INDEX["marker"])
                canvas.text((x, row), f"{kda:g}", _INDEX["marker"], _MARKER_SIZE, offset=(-8, 0),
                            horizontal="right", vertical="middle")
