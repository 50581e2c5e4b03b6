"""Time-course figures: mean and SEM per group, every animal at its real post-dose time.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state), so
they are safe in worker processes and never open a window. Each is written as PNG
(for the report and slides) and SVG (for editing).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ._shared import safe_file_stem
from .flags import flagged_samples
from .output import atomic_write_bytes

CONTROL_COLOUR = "#555555"
GROUP_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")
WINDOW_COLOUR = "#f2c14e"
FLAG_COLOUR = "#c00000"


def plain_text(text):
    """``text`` with every ``$`` escaped, so matplotlib draws names as written.

    Matplotlib reads text between two ``$`` as mathtext and refuses to draw
    invalid mathtext (``$x^$``); a sample, group or target name is never math.
    """
    return str(text).replace("$", r"\$")


def group_colours(groups, control_group):
    """A stable colour per group: grey for the control, distinct colours for the others."""
    treated = [g for g in groups if g != control_group]
    colours = {g: GROUP_COLOURS[i % len(GROUP_COLOURS)] for i, g in enumerate(treated)}
    colours[control_group] = CONTROL_COLOUR
    return colours


def value_label(target_rows):
    """Y-axis label saying what the plotted number is, from ``normalized`` rows of one target."""
    first = target_rows.iloc[0]
    kind = str(first.get("value_kind", "normalised"))
    if kind.startswith("ratio_to_total"):
        label = f"{plain_text(first['target'])} / {plain_text(first['total_target'])}"
    else:
        label = f"{plain_text(first['target'])} / loading"
    return label + (" (relative to calibrator)" if kind.endswith("/calibrator") else " (normalised)")


def plot_timecourse(target, timecourse, normalized, *, control_group, kinetics=None, flags=None,
                    time_reference="dose_start"):
    """Draw one target's time course.

    Parameters
    ----------
    target : str
    timecourse : pandas.DataFrame
        Rows of ``timecourse.csv`` (any targets; this one is selected).
    normalized : pandas.DataFrame
        Rows of ``normalized.csv`` (any targets).
    control_group : str
    kinetics : pandas.Series or dict, optional
        The target's expected kinetics (``onset_min``, ``baseline_min``, ``peak_first_min``,
        ``peak_last_min``, ``approximate``); its window is shaded.
    flags : pandas.DataFrame, optional
        ``flags.csv`` rows; samples with a warning or error for this target (or for
        every target) are ringed and labelled.
    time_reference : str
        Used in the x-axis label.

    Returns
    -------
    matplotlib.figure.Figure
    """
    summary = timecourse[timecourse["target"] == target]
    animals = normalized[(normalized["target"] == target) & normalized["value"].notna()].copy()
    groups = list(dict.fromkeys([control_group, *sorted(animals["group"].unique())]))
    groups = [g for g in groups if g in set(animals["group"])]
    colours = group_colours(groups, control_group)

    figure = Figure(figsize=(7.0, 4.4), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    handles = []

    times = np.concatenate([animals["nominal_min"].to_numpy(float), animals["actual_min"].to_numpy(float)])
    times = times[np.isfinite(times)]
    x_max = float(times.max()) if times.size else 60.0
    if kinetics is not None:
        onset = float(kinetics["onset_min"])
        baseline = float(kinetics["baseline_min"])
        end = baseline if math.isfinite(baseline) else max(x_max * 1.05, onset + 1)
        approximate = " (approx.)" if bool(kinetics.get("approximate", False)) else ""
        axes.axvspan(onset, end, color=WINDOW_COLOUR, alpha=0.22, lw=0, zorder=0)
        handles.append(Patch(color=WINDOW_COLOUR, alpha=0.4, label=f"expected window{approximate}"))
        first, last = float(kinetics["peak_first_min"]), float(kinetics["peak_last_min"])
        if math.isfinite(first):
            if last > first:
                axes.axvspan(first, last, color=WINDOW_COLOUR, alpha=0.35, lw=0, zorder=0)
            else:
                axes.axvline(first, color=WINDOW_COLOUR, lw=2, zorder=0)

    # Animals at their real time (nominal when the real one is unknown); those the analysis
    # policy left out are drawn hollow, and the means are of the others only.
    animals["x"] = animals["actual_min"].where(animals["actual_min"].notna(), animals["nominal_min"])
    included = animals["included"].astype(bool) if "included" in animals else pd.Series(True, index=animals.index)
    for group in groups:
        in_group = animals["group"] == group
        rows, left_out = animals[in_group & included], animals[in_group & ~included]
        axes.scatter(rows["x"], rows["value"], s=18, color=colours[group], alpha=0.55, lw=0, zorder=3)
        axes.scatter(left_out["x"], left_out["value"], s=22, facecolors="none", edgecolors=colours[group],
                     lw=1.1, zorder=3)
        means = summary[summary["group"] == group].sort_values("nominal_min")
        axes.errorbar(means["nominal_min"], means["mean"], yerr=means["sem"], color=colours[group],
                      lw=1.6, marker="o", ms=5, capsize=3, zorder=4)
        handles.append(Line2D([], [], color=colours[group], marker="o", lw=1.6,
                              label=f"{plain_text(group)} (mean ± SEM)"))
    handles.append(Line2D([], [], color="0.4", marker="o", lw=0, alpha=0.55, ms=4,
                          label="animals at real time"))
    if not included.all():
        handles.append(Line2D([], [], marker="o", lw=0, markerfacecolor="none", markeredgecolor="0.4", ms=5,
                              label="left out of the mean (see report)"))

    if flags is not None and not flags.empty:
        marked = flagged_samples(flags)
        marked = marked[(marked["target"] == target) | (marked["target"] == "")]
        hits = animals[animals["sample_id"].isin(marked["sample_id"])]
        if not hits.empty:
            axes.scatter(hits["x"], hits["value"], s=90, facecolors="none", edgecolors=FLAG_COLOUR, lw=1.4,
                         zorder=5)
            for _, row in hits.iterrows():  # a handful of labels
                axes.annotate(plain_text(row["sample_id"]), (row["x"], row["value"]), xytext=(5, 4),
                              textcoords="offset points", fontsize=7, color=FLAG_COLOUR, zorder=6)
            handles.append(Line2D([], [], marker="o", lw=0, markerfacecolor="none",
                                  markeredgecolor=FLAG_COLOUR, ms=9, label="flagged (see flags)"))

    # Say where a treated timepoint has no control to compare with (no fold change there).
    control_times = set(summary.loc[summary["group"] == control_group, "nominal_min"])
    unmatched = sorted(set(summary.loc[summary["group"] != control_group, "nominal_min"]) - control_times)
    for minutes in unmatched:
        axes.annotate(f"no {plain_text(control_group)}", (minutes, 0), xycoords=("data", "axes fraction"),
                      xytext=(0, 4),
                      textcoords="offset points", ha="center", fontsize=7, color="0.35")

    reference = "infusion end" if time_reference == "infusion_end" else "dose"
    axes.set_xlabel(f"minutes after {reference}")
    axes.set_ylabel(value_label(animals) if not animals.empty else plain_text(target))
    axes.set_title(plain_text(target))
    if x_max > 600:
        axes.set_xscale("symlog", linthresh=30)
    axes.set_xlim(left=min(0.0, float(times.min()) if times.size else 0.0) - 0.02 * x_max)
    axes.grid(alpha=0.25, lw=0.5)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(handles=handles, fontsize=7.5, frameon=False, loc="best")
    return figure


def figure_bytes(figure, fmt):
    """Render a figure to PNG or SVG bytes (SVG without a date, so reruns are identical)."""
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}
    figure.savefig(buffer, format=fmt, metadata=metadata, dpi=110)
    return buffer.getvalue()


def save_timecourse_figures(result, folder):
    """Write one PNG and one SVG time-course figure per target of a study result.

    Returns
    -------
    dict
        ``{target: {"png": path, "svg": path, "png_bytes": bytes}}``.
    """
    import matplotlib


    folder = Path(folder)
    kinetics = result.kinetics.set_index("target") if not result.kinetics.empty else None
    written = {}
    used_stems = set()
    with matplotlib.rc_context({"svg.hashsalt": "blotquant", "svg.fonttype": "path"}):
        for target in result.timecourse["target"].unique():
            expected = kinetics.loc[target] if kinetics is not None and target in kinetics.index else None
            figure = plot_timecourse(target, result.timecourse, result.normalized,
                                     control_group=result.study.control_group, kinetics=expected,
                                     flags=result.flags, time_reference=result.study.time_reference)
            stem = "timecourse_" + safe_file_stem(target)
            while stem in used_stems:
                stem += "_"
            used_stems.add(stem)
            png = figure_bytes(figure, "png")
            atomic_write_bytes(folder / f"{stem}.png", png)
            atomic_write_bytes(folder / f"{stem}.svg", figure_bytes(figure, "svg"))
            written[target] = {"png": folder / f"{stem}.png", "svg": folder / f"{stem}.svg", "png_bytes": png}
    return written
