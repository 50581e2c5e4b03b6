"""Labels, handwriting and pen marks: signal on a blot image that is not a band.

Film scans and exported panels carry typed labels ("MOCK", "GAPDH"),
handwriting ("MS4") and pen marks next to, below and even inside the lanes.
They are as dark as the strongest bands, so lane finding takes them for
lanes and band detection for saturated bands. They differ from bands in
shape: a band is a compact blob wider than tall whose thickness is its
height, while a glyph is a stroke (a few pixels thick) that turns, so it is
several strokes tall and about as wide as tall. Text comes in lines of such
glyphs, so the small pieces next to a glyph (dots, underscores, the bar of
a letter) are marks too.

:func:`find_marks` returns the boxes of those marks; lane finding leaves
them out of its evidence and :func:`blotquant.quantify` excludes any band
that lies on one (``exclusion_reason``), and the overlay draws them, so a
person can check what was set aside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

MARK_COLUMNS = ["x_left", "x_right", "y_top", "y_bottom", "kind"]

_LEVEL = 0.25  # share of the residual's top (99.9th percentile) that outlines a blob
_MIN_AREA = 20  # working-copy pixels: smaller specks are dust, judged as bands are
_STROKES_TALL = 2.2  # a glyph is at least this many stroke widths tall ...
_AS_WIDE_AS_TALL = 1.5  # ... no wider than this many times its height ...
_HOLLOW = 0.55  # ... and its thickest stroke is under this share of its shorter side
_TEXT_GAP = 4  # working-copy pixels between the pieces of one line of text
_RIM_FILL = 0.3  # a scan's rim fills less of its bounding box than this
_TEXT_STEPS = 8  # glyphs a line of text may run on from a clear one
_PAIRS_PER_BLOCK = 1_000_000  # blob-box pairs compared at once


def glyph_mask(residual):
    """Pixels of the working copy that belong to labels, handwriting or pen marks.

    Parameters
    ----------
    residual : (M, N) array
        Band signal above the membrane background (bands positive), at the
        lane finder's working size (about 1000 px on the long side).

    Returns
    -------
    mask : (M, N) bool array
    boxes : list of (int, int, int, int, str)
        ``(top, bottom, left, right, kind)`` of each mark, inclusive, in
        working-copy pixels; ``kind`` is "label or mark", or "image edge" for
        the thin dark rim of a scan or panel along the image's edges.
    """
    residual = np.asarray(residual, float)
    empty = np.zeros(residual.shape, bool), []
    top = float(np.percentile(residual, 99.9)) if residual.size else 0.0
    if top <= 0:
        return empty
    # Pixel noise would pit a strong band with holes that thin it to strokes.
    blobs = ndi.gaussian_filter(residual, 1.0) > _LEVEL * top
    labels, count = ndi.label(blobs)
    if count == 0:
        return empty
    index = np.arange(1, count + 1)
    slices = ndi.find_objects(labels)
    box = np.array([(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in slices])
    heights, widths = box[:, 1] - box[:, 0], box[:, 3] - box[:, 2]
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    # Only blobs shaped like a glyph's outline need their thickness (the
    # widest disc inside the blob, holes filled): a cheap test on each one's box.
    candidate = ((areas >= _MIN_AREA) & (heights <= 0.5 * residual.shape[0])
                 & (widths < _AS_WIDE_AS_TALL * heights))
    thickness = np.full(count, np.inf)
    for label in index[candidate]:
        window = slices[label - 1]
        inside = ndi.binary_fill_holes(np.pad(labels[window] == label, 1))
        thickness[label - 1] = max(1.0, 2.0 * ndi.distance_transform_edt(inside).max())
    glyph = (candidate & (heights > _STROKES_TALL * thickness)
             & (thickness < _HOLLOW * np.minimum(heights, widths)))
    # The dark rim of a scan or a cropped panel: thin lines along the image's
    # edges, reaching over half of a side.
    n_rows, n_cols = residual.shape
    at_edge = (box[:, 0] == 0) | (box[:, 2] == 0) | (box[:, 1] == n_rows) | (box[:, 3] == n_cols)
    rim = at_edge & ((widths > 0.5 * n_cols) | (heights > 0.5 * n_rows)) & (areas < _RIM_FILL * heights * widths)
    if not (glyph | rim).any():
        return empty
    marked = glyph.copy()
    if glyph.any():
        # The small pieces of a line of text next to a glyph, or next to such
        # a piece, are marks too (boxes within a few pixels); never a blob
        # larger than twice the typical glyph (a band beside a label).
        small = (areas <= 2.0 * np.median(areas[glyph])) & (areas >= _MIN_AREA / 4)
        for _ in range(_TEXT_STEPS):
            grown_box = box[marked] + np.array([-_TEXT_GAP, _TEXT_GAP, -_TEXT_GAP, _TEXT_GAP])
            candidates = np.flatnonzero(small & ~marked)
            near = np.zeros(candidates.size, bool)
            # In blocks, so that thousands of specks never make a huge pairwise table.
            step = max(1, _PAIRS_PER_BLOCK // max(1, grown_box.shape[0]))
            for start in range(0, candidates.size, step):
                part = box[candidates[start : start + step]]
                near[start : start + step] = (
                    (part[:, None, 0] < grown_box[None, :, 1]) & (part[:, None, 1] > grown_box[None, :, 0])
                    & (part[:, None, 2] < grown_box[None, :, 3]) & (part[:, None, 3] > grown_box[None, :, 2])
                ).any(axis=1)
            if not near.any():
                break
            marked = marked.copy()
            marked[candidates[near]] = True
    marks = index[marked | rim]
    kinds = ["image edge" if rim[label - 1] and not marked[label - 1] else "label or mark" for label in marks]
    return np.isin(labels, marks), _boxes(slices, marks, kinds)


def _boxes(slices, marks, kinds):
    """``(top, bottom, left, right, kind)`` (inclusive) of the labelled blobs ``marks``."""
    return [(slices[m - 1][0].start, slices[m - 1][0].stop - 1, slices[m - 1][1].start, slices[m - 1][1].stop - 1, kind)
            for m, kind in zip(marks, kinds)]


@dataclass
class MarkMap:
    """The marks found on an image: their boxes and the pixels they cover.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per mark (columns :data:`MARK_COLUMNS`, full-resolution pixels, inclusive).
    mask : (M, N) bool array
        Mark pixels of the working copy (``factor`` times smaller), their
        soft rims included.
    factor : int
        Block size of the working copy.
    """

    table: pd.DataFrame
    mask: np.ndarray
    factor: int

    def share_of(self, bands):
        """Share of each band's box (``x_left``, ``x_right``, ``y_top``, ``y_bottom``) covered by mark pixels.

        Measured on the pixels, not the boxes: the rim of a gel runs round
        its bands, and its box would hold them all.
        """
        if bands.empty or not self.mask.any():
            return np.zeros(len(bands))
        integral = np.pad(np.cumsum(np.cumsum(self.mask, axis=0), axis=1), ((1, 0), (1, 0)))
        n_rows, n_cols = self.mask.shape
        top = np.clip(bands["y_top"].to_numpy(int) // self.factor, 0, n_rows - 1)
        bottom = np.clip(bands["y_bottom"].to_numpy(int) // self.factor, top, n_rows - 1) + 1
        left = np.clip(bands["x_left"].to_numpy(float).astype(int) // self.factor, 0, n_cols - 1)
        right = np.clip(bands["x_right"].to_numpy(float).astype(int) // self.factor, left, n_cols - 1) + 1
        covered = integral[bottom, right] - integral[top, right] - integral[bottom, left] + integral[top, left]
        return covered / ((bottom - top) * (right - left))


def mark_map(residual, factor, shape):
    """The :class:`MarkMap` of a working copy's residual (block size ``factor``, full-resolution ``shape``)."""
    mask, boxes = glyph_mask(residual)
    if boxes:
        # The glyphs' soft rims too, so that no stump of a letter is left.
        mask = ndi.binary_dilation(mask, iterations=2)
    height, width = shape
    rows = [{"x_left": float(left * factor), "x_right": float(min(width - 1, (right + 1) * factor - 1)),
             "y_top": int(top * factor), "y_bottom": int(min(height - 1, (bottom + 1) * factor - 1)),
             "kind": kind} for top, bottom, left, right, kind in boxes]
    return MarkMap(pd.DataFrame(rows, columns=MARK_COLUMNS), mask, factor)


def find_marks(signal):
    """Labels, handwriting, pen marks and the rim of the scan on a blot image.

    Parameters
    ----------
    signal : (M, N) array
        The image with signal positive (:func:`blotquant.io.to_signal`).

    Returns
    -------
    MarkMap
    """
    from .lanes import working_copy  # lanes imports this module

    factor, _, residual = working_copy(signal)
    return mark_map(residual, factor, np.asarray(signal).shape)
