"""Overlay images: the blot with its lanes and bands drawn on, for a glance check."""

from __future__ import annotations

import io as _io

import numpy as np

from ._shared import block_mean
from .output import atomic_write_bytes, printable

_MAX_DISPLAY_SIDE = 1600


def render_overlay(signal, result, path, *, title=None):
    """Draw lanes and bands over a signal image and save it as a PNG.

    Lanes are outlined in cyan with their number; bands are boxed in
    yellow, saturated bands in red, excluded lanes and bands in grey. With a
    size calibration, each band row is labelled with its size (the median
    ``kda`` of its bands) right of the strip, and the ladder's markers are
    ticked in magenta with their sizes.

    Parameters
    ----------
    signal : (M, N) array
        The analysed image with signal positive (bands bright).
    result : QuantResult
        What :func:`blotquant.quantify` returned for that image.
    path : str or pathlib.Path
        Where to write the PNG (atomically).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Polygon

    factor = max(1, int(np.ceil(max(signal.shape) / _MAX_DISPLAY_SIDE)))
    shown = block_mean(signal, factor)
    low, high = np.percentile(shown, [1, 99.8])
    height, width = signal.shape
    # 8 inches wide, but no side over 16: a 2 x 1000 px sliver must not ask for a 20 GB canvas.
    aspect = height / width
    size = (8.0, 8.0 * aspect) if aspect <= 2 else (max(16.0 / aspect, 1.0), 16.0)
    figure = Figure(figsize=(size[0], size[1] + 0.5), dpi=150)
    axes = figure.add_axes((0, 0, 1, 0.95 if title else 1))
    # Bands are drawn dark on light, as most people read blots.
    axes.imshow(shown, cmap="gray_r", vmin=low, vmax=high if high > low else low + 1,
                extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="nearest")
    axes.set_axis_off()
    if title:
        figure.suptitle(printable(title), fontsize=8)

    for lane in result.lanes.to_dict("records"):
        y_mid = (lane["y_top"] + lane["y_bottom"]) / 2.0
        corners = []
        for y, x in ((lane["y_top"], lane["x_left"]), (lane["y_top"], lane["x_right"]),
                     (lane["y_bottom"], lane["x_right"]), (lane["y_bottom"], lane["x_left"])):
            corners.append((x + lane["slope"] * (y - y_mid), y))
        colour = "0.6" if lane["excluded"] else "tab:cyan"
        axes.add_patch(Polygon(corners, closed=True, fill=False, edgecolor=colour, linewidth=0.8))
        label = f"{lane['lane']}" if result.lanes["strip"].max() == 1 else f"{lane['strip']}.{lane['lane']}"
        axes.text(corners[0][0] + 2, lane["y_top"] + 2, label, color=colour, fontsize=6, va="top")

    for band in result.bands.to_dict("records"):
        if band["excluded"]:
            colour = "0.6"
        elif band["saturated"]:
            colour = "red"
        else:
            colour = "gold" if band["detected"] else "orange"
        axes.add_patch(
            Polygon(
                [(band["x_left"], band["y_top"]), (band["x_right"], band["y_top"]),
                 (band["x_right"], band["y_bottom"]), (band["x_left"], band["y_bottom"])],
                closed=True, fill=False, edgecolor=colour, linewidth=0.7,
            )
        )
    _draw_sizes(axes, result)
    buffer = _io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


def _draw_sizes(axes, result):
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
        right = float(members["x_right"].max()) + 3
        for _, row in members.groupby(row_id):
            axes.text(right, float(row["y"].median()), f"{row['kda'].median():.0f} kDa", color="tab:purple",
                      fontsize=5, va="center", ha="left")
    lanes = result.lanes
    for strip, sizes in calibration.strips.items():
        left = float(lanes.loc[lanes["strip"] == strip, "x_left"].min())
        for curve, column in zip(sizes.curves, sizes.columns):
            x = left - 2 if column is None else column
            axes.plot(np.full(curve.rows.size, x), curve.rows, linestyle="none", marker="_", markersize=6,
                      color="magenta", markeredgewidth=0.8)
            for row, kda in zip(curve.rows, curve.kda):
                axes.text(x - 4, row, f"{kda:g}", color="magenta", fontsize=4, va="center", ha="right")
