"""``report.html``: one self-contained page a PI can open, print and quote from.

Plots are embedded as base64 PNG, styles are inline, and a Content-Security-Policy
forbids scripts and every network load. Every piece of text that came from the
study folder (names, ids, groups, notes, file names) goes through
:func:`html.escape`, so a sample sheet cannot inject markup into the report.
"""

from __future__ import annotations

import base64
import html
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .flags import FLAG_CODES, SEVERITY_ORDER, group_flags
from .kinetics import describe_window
from .output import atomic_write_text

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.error{background:#fde2e2}.warning{background:#fff4d6}.info{background:#eef4fb}
.summary span{display:inline-block;margin-right:1.2em;padding:.2em .6em;border-radius:4px}
img{max-width:100%;height:auto}pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em}
.methods{background:#fafafa;border-left:4px solid #999;padding:.6em 1em}
.muted{color:#666;font-size:.9em}
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def escape(value):
    """Text of any value, HTML-escaped (quotes included); NaN and None become empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=True)


def _format_number(value, digits=3):
    if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return str(value)


def html_table(table, columns=None, *, row_class=None, digits=3):
    """Render a DataFrame as an HTML table with every cell escaped.

    Parameters
    ----------
    table : pandas.DataFrame
    columns : dict or list, optional
        Columns to show, optionally ``{column: header}``.
    row_class : str, optional
        A column whose value becomes each row's CSS class (e.g. ``severity``).
    digits : int
        Significant digits of floating-point cells.
    """
    if columns is None:
        columns = list(table.columns)
    headers = columns if isinstance(columns, dict) else {c: c for c in columns}
    head = "".join(f"<th>{escape(h)}</th>" for h in headers.values())
    body = []
    for record in table.to_dict("records"):
        cells = []
        for column in headers:
            value = record.get(column)
            numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            text = _format_number(value, digits) if numeric else value
            cells.append(f"<td class=\"num\">{escape(text)}</td>" if numeric else f"<td>{escape(text)}</td>")
        css = f" class=\"{escape(record.get(row_class))}\"" if row_class else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _loading_description(study):
    loading = study.images[study.images["role"].isin(["loading_control", "total_protein"])]
    names = sorted(set(loading["target"]))
    roles = set(loading["role"])
    kind = "total-protein stain" if roles == {"total_protein"} else "loading control"
    return kind, ", ".join(names)


def methods_text(result):
    """A methods paragraph (plain text) describing exactly what was done, with the parameters used."""
    study = result.study
    kind, loading_names = _loading_description(study)
    parameters = [r.get("parameters", {}) for r in result.images]
    methods = sorted({p.get("background_method", "") for p in parameters} - {""})
    background = ", ".join(methods) if methods else "the default method"
    has_total = (study.images["total_target"] != "").any()
    calibrated = bool(result.normalised_lanes.get("calibrator_value", pd.Series(dtype=float)).notna().any())
    reference = ("the end of the infusion" if study.time_reference == "infusion_end"
                 else "the start of dosing")
    correction = "Holm" if study.p_adjust == "holm" else "Benjamini-Hochberg"
    text = [
        f"Western blot images were quantified with blotquant {__version__}.",
        "Lanes were detected automatically on each blot's loading image, using the number of lanes in "
        "the lane layout, and transferred to the other images of the same blot after rigid registration "
        "(rotation from the lane tilt, shift by phase correlation of gradient images).",
        "In each lane the band of interest was measured inside a fixed row window per image as the sum of "
        f"background-subtracted pixel values (background: {background}); a band with at least 1% (and at "
        "least 4) of its pixels at 99% of the detector's full scale or more was treated as saturated.",
        f"Each target signal was divided by the lane's {kind} signal ({loading_names}), expressed relative "
        "to the median of the blot's sample lanes.",
    ]
    reviewed = [r for r in result.images if r.get("review")]
    if reviewed:
        text.append(f"For {len(reviewed)} of {len(result.images)} images, lanes, bands or exclusions were "
                    "corrected by hand in a saved lane review (blotquant-review files, tied to each image by "
                    "its SHA-256), which was applied before measurement.")
    if has_total:
        text.append("Phosphorylated proteins are reported as the ratio of the normalised phospho signal to "
                    "the normalised total protein in the same lane.")
    if calibrated:
        text.append("To compare blots, every value was divided by the value of the blot's calibrator lane "
                    "(a pooled reference lysate loaded on every blot).")
    text += [
        "Technical replicate lanes of a sample were averaged.",
        f"Post-dose time was computed from the recorded dosing and collection times, counted from {reference}"
        + (" (study.toml does not name the reference; the time stamps fit this one and not the other)."
           if study.time_reference_inferred else "."),
        policy_text(study),
        "Each band's measurement uncertainty (from the noise of its lane and, for fitted bands, the spread "
        "between the fit and the box sum) was carried through normalisation as relative variances and is "
        "reported per sample (value_sd) and per timepoint (measurement SD) beside the between-animal SD.",
        "For each target, group and analysed time point, the mean and standard error of the mean (SEM) are "
        f"reported; each treated group was compared with the time-matched {study.control_group} group by "
        f"Welch's two-sample t-test, with {correction} correction across the time points of each target.",
        "The peak was taken as the time point of the largest fold change over control; its uncertainty as the "
        f"95% range of peak times over {study.bootstrap} bootstrap resamples of animals within each time point "
        f"(seed {study.seed}). Return to baseline was placed between the last time point that still differed "
        "from control and the first whose change was below half the peak's and no longer significant "
        "(Welch p >= 0.05).",
        "The SHA-256 hash of every image analysed is listed in the report and in run.json.",
    ]
    return " ".join(text)


def policy_text(study):
    """The analysis policy in one or two sentences, as applied."""
    if study.timepoint == "actual":
        timing = ("Each sample was analysed at the planned time point nearest its real post-dose time, when "
                  "within the collection tolerance of it (max of "
                  f"{study.thresholds['collection_drift_min']:g} min and "
                  f"{100 * study.thresholds['collection_drift_fraction']:g}% of the time point); samples "
                  "collected within the tolerance of no planned time point were left out.")
    else:
        timing = "Each sample was analysed at its planned (nominal) time point, whatever its real time."
    if study.exclude_flagged:
        flagged = ("Values whose measurement is known to be wrong (an error flag: a saturated band of the "
                   "target, its total or the lane's loading control; a collection time before the dose; a band "
                   "missing where the blot's other lanes show one) were left out of the means, tests and peak "
                   "estimates of the targets they affect.")
    else:
        flagged = "Flagged values were kept in the analysis ([statistics] exclude_flagged = false)."
    return (f"{flagged} {timing} Every value left out is listed with its reason in normalized.csv (included, "
            "exclusion_reason); sensitivity.csv repeats the comparisons with every sample included at its "
            "planned time point.")


def _summary(result):
    study = result.study
    counts = result.flags["severity"].value_counts()
    badges = "".join(
        f"<span class=\"{severity}\">{escape(counts.get(severity, 0))} {severity}"
        f"{'s' if counts.get(severity, 0) != 1 else ''}</span>"
        for severity in SEVERITY_ORDER)
    grouped = group_flags(result.flags)
    grouped = grouped[grouped["severity"] != "info"]
    items = "".join(
        f"<li class=\"{escape(r.severity)}\"><b>{escape(r.code)}</b>"
        f"{' (' + escape(r.target) + ')' if r.target else ''}: {escape(FLAG_CODES.get(r.code, ''))}"
        f"{'; ' + escape(r.samples) if r.samples else ''}</li>" for r in grouped.itertuples())
    left_out = result.normalized[~result.normalized["included"].astype(bool)] \
        if "included" in result.normalized else result.normalized.iloc[:0]
    changed = result.sensitivity[result.sensitivity["conclusion_changes"].astype(bool)] \
        if not result.sensitivity.empty else result.sensitivity
    if not left_out.empty:
        items += (f"<li>{len(left_out)} of {len(result.normalized)} sample values were left out of the analysis "
                  f"({escape(', '.join(sorted(left_out['sample_id'].astype(str).unique())))}); "
                  + (f"<b>with them included, {len(changed)} comparison(s) would change their conclusion</b> "
                     "(see Sensitivity)" if not changed.empty else
                     "including them changes no conclusion (see Sensitivity)") + ".</li>")
    samples = result.normalized["sample_id"].nunique()
    groups = ", ".join(sorted(study.samples["group"].unique()))
    facts = (f"{samples} samples ({escape(groups)}), {study.images['blot'].nunique()} blots, "
             f"{len(study.images)} images, targets: {escape(', '.join(result.timecourse['target'].unique()))}.")
    return (f"<p>{facts}</p><p class=\"summary\">{badges}</p>"
            + (f"<ul>{items}</ul>" if items else "<p>No warnings or errors.</p>"))


def _target_section(result, target, figure):
    parts = [f"<h3>{escape(target)}</h3>"]
    if figure is not None:
        encoded = base64.b64encode(figure["png_bytes"]).decode("ascii")
        parts.append(f"<img alt=\"time course of {escape(target)}\" src=\"data:image/png;base64,{encoded}\">")
    kinetics = result.kinetics[result.kinetics["target"] == target]
    if not kinetics.empty:
        row = kinetics.iloc[0]
        parts.append(f"<p class=\"muted\">Expected: {escape(describe_window(row))}. Source: "
                     f"{escape(row['source'])}.</p>")
    rows = result.timecourse[result.timecourse["target"] == target]
    parts.append(html_table(rows, {"group": "group", "nominal_min": "timepoint min", "n": "n", "mean": "mean",
                                   "sd": "SD (animals)", "measurement_sd": "SD (measurement)", "sem": "SEM",
                                   "actual_min_mean": "mean real min", "fold_change": "fold change",
                                   "p_value": "p", "p_adjusted": "p adjusted"}))
    normalized = result.normalized
    if "included" in normalized:
        left_out = normalized[(normalized["target"] == target) & ~normalized["included"].astype(bool)]
        if not left_out.empty:
            listed = "; ".join(f"{r.sample_id} ({r.group}, {r.nominal_min:g} min): {r.exclusion_reason}"
                               for r in left_out.itertuples())
            parts.append(f"<p class=\"muted\">Left out of this target's means and tests (drawn hollow): "
                         f"{escape(listed)}.</p>")
    peaks = result.peaks[result.peaks["target"] == target]
    for row in peaks.itertuples():
        if np.isfinite(row.peak_min):
            text = (f"{row.group}: largest change ({row.direction}, {row.peak_fold_change:.2f}-fold, p = "
                    f"{row.peak_p_value:.3g}, adjusted p = {row.peak_p_adjusted:.3g}) at {row.peak_min:g} min "
                    f"(95% bootstrap range {row.peak_min_low:g}-{row.peak_min_high:g} min)")
            if np.isfinite(row.return_min):
                text += f"; back at baseline between {row.return_min_low:g} and {row.return_min:g} min"
            if row.note:
                text += f"; {row.note}"
        else:
            text = f"{row.group}: {row.note}"
        parts.append(f"<p>{escape(text)}.</p>")
    return "".join(parts)


def build_report_html(result, *, run=None):
    """The whole report as one HTML string.

    Parameters
    ----------
    result : blotquant.study.StudyResult
        With ``figures`` from :func:`blotquant.plots.save_timecourse_figures` (optional).
    run : dict, optional
        The ``run.json`` record, shown as the parameters section.
    """
    study = result.study
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        f"<h1>{escape(study.name)}</h1>",
        f"<p class=\"muted\">blotquant {escape(__version__)} · study file {escape(study.path.name)} · {created}</p>",
    ]
    if study.description:
        sections.append(f"<p>{escape(study.description)}</p>")
    sections += ["<h2>Summary</h2>", _summary(result), "<h2>Time courses</h2>"]
    for target in result.timecourse["target"].unique():
        sections.append(_target_section(result, target, result.figures.get(target)))

    sections += ["<h2>Sensitivity</h2>",
                 "<p class=\"muted\">The primary comparisons beside the same comparisons with every sample "
                 "included at its planned time point (sensitivity.csv). A conclusion changes when significance "
                 "(adjusted p &lt; 0.05) or direction differs, or the fold change moves by more than 20%.</p>",
                 html_table(result.sensitivity, {
                     "target": "target", "group": "group", "nominal_min": "timepoint min",
                     "n_primary": "n", "fold_change_primary": "fold change", "p_adjusted_primary": "p adjusted",
                     "n_all": "n (all)", "fold_change_all": "fold change (all)",
                     "p_adjusted_all": "p adjusted (all)", "conclusion_changes": "conclusion changes"})
                 if not result.sensitivity.empty else "<p>No comparisons.</p>"]
    flags = result.flags
    grouped = group_flags(flags)
    sections += ["<h2>Flags</h2>",
                 "<p class=\"muted\">One entry per problem; flags.csv has one row per sample. Points of samples "
                 "with an error or warning are ringed in the plots.</p>",
                 html_table(grouped, {"severity": "severity", "code": "code", "target": "target",
                                      "samples": "samples", "blots": "blots", "message": "message",
                                      "action": "what to do"},
                            row_class="severity") if not grouped.empty else "<p>No flags.</p>"]
    if not result.linearity.empty:
        sections += ["<h2>Calibrator linearity</h2>", html_table(result.linearity)]

    normalized_columns = ["sample_id", "subject", "group", "dose_mg_kg", "nominal_min", "actual_min",
                          "timepoint_min", "target", "blot", "lane", "volume", "loading_factor", "normalised",
                          "ratio_to_total", "value", "value_sd", "included", "exclusion_reason"]
    sections += ["<h2>Values per sample</h2>", "<details><summary>normalized.csv "
                 f"({len(result.normalized)} rows)</summary>",
                 html_table(result.normalized, [c for c in normalized_columns if c in result.normalized]),
                 "</details>"]

    images = pd.DataFrame([{
        "file": r["file"], "blot": r["blot"], "target": r["target"], "role": r["role"],
        "band rows": "-".join(map(str, r.get("band_rows", []))), "lanes from": r.get("lanes_from", ""),
        "shift dy, dx (px), turn (deg)": "" if not r.get("offset") else
        f"{r['offset']['dy']:.1f}, {r['offset']['dx']:.1f}, {r['offset']['rotation_deg']:.2f}",
        "overlay": f"overlays/{r['overlay']}" if r.get("overlay") else "",
        "lane review": Path(r["review"]).name if r.get("review") else "",
        "SHA-256": r.get("sha256", ""),
    } for r in result.images])
    sections += ["<h2>Methods</h2>", f"<p class=\"methods\">{escape(methods_text(result))}</p>",
                 "<h3>Images</h3>", html_table(images) if not images.empty else "<p>No image records.</p>"]
    if not study.expected_kinetics.empty:
        used = result.kinetics if not result.kinetics.empty else study.expected_kinetics
        sections += ["<h3>Expected kinetics used</h3>",
                     html_table(used, ["target", "direction", "onset_min", "peak_first_min", "peak_last_min",
                                       "baseline_min", "approximate", "source", "origin"])]
    sections += ["<h3>Flag codes</h3>",
                 html_table(pd.DataFrame(list(FLAG_CODES.items()), columns=["code", "meaning"]))]
    if run:
        shown = {key: run[key] for key in ("blotquant_version", "study", "inputs", "environment") if key in run}
        sections += ["<h3>Parameters</h3>",
                     f"<pre>{escape(json.dumps(shown, indent=2, default=str))}</pre>"]
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(study.name)} - blotquant report</title><style>{_STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def write_report(result, path, *, run=None):
    """Write :func:`build_report_html` to ``path`` atomically."""
    atomic_write_text(path, build_report_html(result, run=run))
    return path
