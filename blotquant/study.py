"""Studies: a folder of blot images plus a sample sheet and a lane layout, run end to end.

A study is described by ``study.toml`` (images, blots, targets, roles, band windows),
``samples.csv`` (one row per tissue sample with its dosing and collection times) and
``layout.csv`` (which sample sits in which lane of which blot). :func:`load_study`
reads and checks all three and raises one :class:`~blotquant.errors.StudyError`
naming the file, the row and the fix for the first problem it finds.
:func:`run_study` quantifies every image (lanes are found once per blot and carried
to the blot's other images, registered for a re-probed membrane that was imaged
shifted or turned), then normalises, times, summarises, flags, plots and reports.
"""

from __future__ import annotations

import csv
import math
import os
import re
import sys
import tomllib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from . import __version__
from ._shared import block_mean
from .errors import BlotQuantError, StudyError
from .flags import (
    collect_flags,
    flag_band_quality,
    flag_collection_drift,
    flag_cross_blot_without_calibrator,
    flag_image_warnings,
    flag_loading_variation,
    flag_no_time_matched_control,
    flag_outside_kinetic_window,
    flag_outside_linear_range,
    flag_peak_not_sampled,
    flag_reference_ambiguous,
    flag_time_order,
)
from .kinetics import kinetics_for_targets, load_expected_kinetics
from .normalise import (
    LOADING_ROLES,
    SPECIAL_LANES,
    label_lane_signals,
    normalise_lane_signals,
    sample_values,
)
from .output import environment_record, locked_output_dir, results_subfolder, sha256_of_file, write_json, write_table
from .lanes import MAX_LANES
from .statistics import P_ADJUST_METHODS, calibrator_linear_range, peak_and_return, summarise_timecourse
from .timing import TIME_REFERENCES, collection_drift, post_dose_minutes

#: Roles an image may play in a blot.
IMAGE_ROLES = ("target", "total", "loading_control", "total_protein")

SAMPLE_COLUMNS = ("sample_id", "subject", "group", "dose_mg_kg", "dose_start", "collected_at",
                  "infusion_min", "nominal_min")
LAYOUT_COLUMNS = ("blot", "lane", "sample_id")
#: Columns blotquant adds to each sample's row; a sample sheet may not use these names itself.
RESULT_COLUMNS = ("actual_min", "reference_time", "time_problem", "target", "role", "total_target", "blot",
                  "lane", "n_lanes", "volume", "loading_volume", "loading_factor", "normalised",
                  "total_normalised", "ratio_to_total", "calibrator_value", "value", "value_kind", "saturated",
                  "snr", "detected")

_STUDY_KEYS = {"name", "description", "time_reference", "control_group", "samples", "layout", "image",
               "kinetics", "kinetics_file", "thresholds", "quantify", "statistics"}
_IMAGE_KEYS = {"file", "blot", "target", "role", "band_rows", "band_rows_mode", "total", "channel", "note"}
#: Tunable limits of the flags, with their defaults; a study's ``[thresholds]`` overrides them.
DEFAULT_THRESHOLDS = {
    "collection_drift_min": 5.0,
    "collection_drift_fraction": 0.10,
    "max_bolus_min": 5.0,
    "min_snr": 10.0,
    "band_max_overlap": 0.3,
    "loading_max_cv": 0.20,
    "loading_max_lane_ratio": 1.5,
    "loading_group_p": 0.05,
    "linear_min_r_squared": 0.98,
    "linear_max_residual": 0.15,
}
_QUANTIFY_KEYS = {"background": str, "polarity": str, "max_pixels": int, "min_snr": (int, float),
                  "band_rows_mode": str}
_STATISTICS_KEYS = {"p_adjust": str, "bootstrap": int, "seed": int}
#: Upper limits that keep a typo (``bootstrap = 2000000000``) from hanging or overflowing a run;
#: lanes and strips share :data:`blotquant.lanes.MAX_LANES` with ``--lanes``.
MAX_BOOTSTRAP = 1_000_000
MAX_SEED = 2**32 - 1
#: Longest sample, group, blot or target name; longer is a pasting accident, and unreadable in plots.
MAX_NAME_LENGTH = 200


# ---------------------------------------------------------------------------
# Loading and checking a study


@dataclass
class Study:
    """A checked study: its settings and its three tables.

    Attributes
    ----------
    path : pathlib.Path
        The study file.
    name, description : str
    time_reference : {"dose_start", "infusion_end"}
    time_reference_given : bool
        False when study.toml does not say (``dose_start`` is then assumed).
    control_group : str
    samples : pandas.DataFrame
        The sample sheet with parsed date-times (NaT when a cell is empty).
    layout : pandas.DataFrame
        ``blot``, ``strip``, ``lane``, ``sample_id``, ``load_ug`` and extra columns.
    images : pandas.DataFrame
        One row per ``[[image]]``: ``number``, ``file``, ``path``, ``blot``, ``target``,
        ``role``, ``band_top``, ``band_bottom``, ``total_target``, ``channel``, ``note``.
    expected_kinetics : pandas.DataFrame
        The expected-kinetics table with the study's overrides applied.
    thresholds : dict
        Flag limits (:data:`DEFAULT_THRESHOLDS` updated by ``[thresholds]``).
    quantify_options : dict
        Keyword arguments passed to :func:`blotquant.quantify` for every image.
    p_adjust : str
    bootstrap : int
    seed : int
    input_files : dict
        ``{role: path}`` of the study file and the two tables, for provenance.
    """

    path: Path
    name: str
    description: str
    time_reference: str
    time_reference_given: bool
    control_group: str
    samples: pd.DataFrame
    layout: pd.DataFrame
    images: pd.DataFrame
    expected_kinetics: pd.DataFrame
    thresholds: dict
    quantify_options: dict
    p_adjust: str = "holm"
    bootstrap: int = 2000
    seed: int = 0
    input_files: dict = field(default_factory=dict)

    @property
    def folder(self):
        """The folder relative paths in the study are resolved against."""
        return self.path.parent


def _csv_row(index):
    """Row number of a data row as a spreadsheet shows it (the header is row 1)."""
    return int(index) + 2


def _check_field_counts(path):
    """Refuse a row with more cells than the header, naming its row.

    pandas would either stop with a C-parser message or, when the first data row
    is the long one, silently turn the first column into an index and shift
    every column by one.
    """
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, skipinitialspace=True)
        header = next(reader, None)
        if header is None:
            return
        for fields in reader:
            if len(fields) > len(header):
                raise StudyError(f"{Path(path).name}: row {reader.line_num}: {len(fields)} cells but the header "
                                 f"has {len(header)}; remove the extra commas or quote cells that contain one")


def read_table(path, *, required, what, noun):
    """Read a CSV file as text cells, with stripped headers and values.

    Raises
    ------
    StudyError
        If the file is missing, unreadable, empty, or lacks a required column.
    """
    try:
        _check_field_counts(path)
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                            skipinitialspace=True)
    except FileNotFoundError:
        raise StudyError(f"{path}: file not found; fix the {what} path in study.toml") from None
    except OSError as exc:  # a folder, no permission, a name too long
        raise StudyError(f"{path}: cannot be opened ({exc.strerror or exc}); fix the {what} path in "
                         "study.toml") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        raise StudyError(f"{path}: cannot be read as CSV ({str(exc).splitlines()[0]}); "
                         "save it as comma-separated UTF-8 text") from None
    table.columns = [str(c).strip() for c in table.columns]
    table = table.apply(lambda column: column.str.strip())
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise StudyError(f"{path.name}: row 1: missing column(s) {', '.join(missing)}; "
                         f"the header must contain {', '.join(required)}")
    duplicated = table.columns[table.columns.duplicated()].tolist()
    if duplicated:
        raise StudyError(f"{path.name}: row 1: column {duplicated[0]!r} appears twice; rename or remove one")
    if table.empty:
        raise StudyError(f"{path.name}: has a header but no rows; add one row per {noun}")
    return table


def _first_bad(mask):
    """Index of the first True entry of a boolean Series, or None."""
    hits = mask[mask]
    return None if hits.empty else hits.index[0]


def _check_name_lengths(table, columns, path):
    for column in columns:
        bad = _first_bad(table[column].str.len() > MAX_NAME_LENGTH)
        if bad is not None:
            raise StudyError(f"{path.name}: row {_csv_row(bad)}: {column} is {len(table.at[bad, column])} "
                             f"characters long; names must be at most {MAX_NAME_LENGTH} characters")


def _require_filled(table, columns, path):
    for column in columns:
        bad = _first_bad(table[column] == "")
        if bad is not None:
            raise StudyError(f"{path.name}: row {_csv_row(bad)}: {column} is empty; fill it in")


def _parse_numbers(table, column, path, *, minimum=None, maximum=None, integer=False, allow_empty=False,
                   hint=""):
    """Convert a text column to numbers, naming the first bad row."""
    text = table[column]
    values = pd.to_numeric(text, errors="coerce")
    # "1e400" parses as infinity: as unusable as text.
    values = values.where(np.isfinite(values.astype(float)))
    bad = _first_bad(values.isna() & ((text != "") | (not allow_empty)))
    if bad is None and minimum is not None:
        bad = _first_bad(values < minimum)
    if bad is None and maximum is not None:
        bad = _first_bad(values > maximum)
    if bad is None and integer:
        bad = _first_bad(values.notna() & (values != values.round()))
    if bad is not None:
        kind = "a whole number" if integer else "a number"
        limit = f" >= {minimum:g}" if minimum is not None else ""
        if maximum is not None:
            limit += f" and <= {maximum:g}"
        raise StudyError(f"{path.name}: row {_csv_row(bad)}: {column} is {text[bad]!r}, not {kind}{limit}; "
                         f"write {kind}{limit}{hint}")
    return values


_ISO_PATTERN = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_ZONE_PATTERN = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")


def _parse_datetimes(table, columns, path):
    """Parse ISO 8601 date-time columns; empty cells become NaT (flagged later, not an error).

    Times with a zone offset are converted to UTC; times without one are taken as
    written. Mixing the two, in one column or across columns, would silently shift some
    samples by hours, so it is refused.
    """
    texts = table[list(columns)]
    filled = texts != ""
    zoned = filled & texts.apply(lambda column: column.str.contains(_ZONE_PATTERN))
    any_zoned = bool(zoned.to_numpy().any())
    if any_zoned and not zoned.to_numpy()[filled.to_numpy()].all():
        for row in texts.index:  # first offending cell in reading order
            for column in columns:
                if filled.at[row, column] and not zoned.at[row, column]:
                    raise StudyError(
                        f"{path.name}: row {_csv_row(row)}: {column} {texts.at[row, column]!r} has no time zone "
                        "while other times do; give every time the same kind of zone offset "
                        "(e.g. 2024-03-05T09:30:00+01:00) or none at all")
    parsed = {}
    for column in columns:
        text = texts[column]
        values = pd.to_datetime(text.where(filled[column]), format="ISO8601", errors="coerce", utc=any_zoned)
        bad = _first_bad(filled[column] & (~text.str.match(_ISO_PATTERN) | values.isna()))
        if bad is not None:
            raise StudyError(f"{path.name}: row {_csv_row(bad)}: {column} {text[bad]!r} is not an ISO 8601 "
                             "date-time; write it like 2024-03-05T09:30:00 (date, 'T', 24-hour time)")
        parsed[column] = values.dt.tz_convert(None) if any_zoned else values
    return parsed


def read_samples(path, *, control_group=None):
    """Read and check ``samples.csv``.

    Returns
    -------
    pandas.DataFrame
        One row per sample; ``dose_mg_kg``, ``infusion_min`` and ``nominal_min`` numeric,
        ``dose_start`` and ``collected_at`` as date-times (NaT when empty), every further
        column kept as text.
    """
    path = Path(path)
    samples = read_table(path, required=SAMPLE_COLUMNS, what="samples", noun="tissue sample")
    clashing = [c for c in samples.columns if c in RESULT_COLUMNS]
    if clashing:
        raise StudyError(f"{path.name}: row 1: column {clashing[0]!r} is a name blotquant uses for its results; "
                         f"rename it (e.g. '{clashing[0]}_note')")
    _require_filled(samples, ("sample_id", "subject", "group"), path)
    _check_name_lengths(samples, ("sample_id", "subject", "group"), path)
    duplicate = _first_bad(samples["sample_id"].duplicated())
    if duplicate is not None:
        first = _first_bad(samples["sample_id"] == samples.loc[duplicate, "sample_id"])
        raise StudyError(f"{path.name}: row {_csv_row(duplicate)}: sample_id {samples.loc[duplicate, 'sample_id']!r} "
                         f"is already used in row {_csv_row(first)}; give every tissue sample its own id")
    reserved = _first_bad(samples["sample_id"].str.lower().isin(SPECIAL_LANES))
    if reserved is not None:
        raise StudyError(f"{path.name}: row {_csv_row(reserved)}: sample_id {samples.loc[reserved, 'sample_id']!r} "
                         f"is reserved for layout lanes ({', '.join(SPECIAL_LANES)}); rename the sample")
    samples["dose_mg_kg"] = _parse_numbers(samples, "dose_mg_kg", path, minimum=0, hint=" (0 for vehicle)")
    samples["infusion_min"] = _parse_numbers(samples, "infusion_min", path, minimum=0, hint=" (0 for a bolus)")
    samples["nominal_min"] = _parse_numbers(samples, "nominal_min", path, minimum=0,
                                            hint=" (the planned minutes after the dose)")
    for column, values in _parse_datetimes(samples, ("dose_start", "collected_at"), path).items():
        samples[column] = values
    if control_group is not None and not (samples["group"] == control_group).any():
        groups = ", ".join(sorted(samples["group"].unique()))
        raise StudyError(f"study.toml: control_group {control_group!r} is not a group of {path.name} "
                         f"(groups: {groups}); set control_group to one of them")
    return samples


def read_layout(path, *, samples):
    """Read and check ``layout.csv`` against the sample sheet.

    Returns
    -------
    pandas.DataFrame
        ``blot``, ``strip`` (1 when the column is absent), ``lane``, ``sample_id``,
        ``load_ug`` (NaN when absent) and any further columns.
    """
    path = Path(path)
    layout = read_table(path, required=LAYOUT_COLUMNS, what="layout", noun="lane")
    _require_filled(layout, ("blot", "lane", "sample_id"), path)
    _check_name_lengths(layout, ("blot", "sample_id"), path)
    layout["lane"] = _parse_numbers(layout, "lane", path, minimum=1, maximum=MAX_LANES, integer=True,
                                    hint=" (lanes are counted from 1, left to right)").astype(int)
    if "strip" in layout:
        layout["strip"] = _parse_numbers(layout, "strip", path, minimum=1, maximum=MAX_LANES, integer=True,
                                         hint=" (strips are counted from 1, top to bottom)").astype(int)
    else:
        layout["strip"] = 1
    if "load_ug" in layout:
        layout["load_ug"] = _parse_numbers(layout, "load_ug", path, minimum=0, allow_empty=True,
                                           hint=" (micrograms of protein loaded)")
    else:
        layout["load_ug"] = np.nan
    duplicate = _first_bad(layout.duplicated(["blot", "strip", "lane"]))
    if duplicate is not None:
        row = layout.loc[duplicate]
        first = _first_bad((layout["blot"] == row["blot"]) & (layout["strip"] == row["strip"])
                           & (layout["lane"] == row["lane"]))
        raise StudyError(f"{path.name}: row {_csv_row(duplicate)}: blot {row['blot']} lane {row['lane']} is "
                         f"already given in row {_csv_row(first)}; each lane holds one sample, fix the lane number")
    special = layout["sample_id"].str.lower().isin(SPECIAL_LANES)
    layout.loc[special, "sample_id"] = layout.loc[special, "sample_id"].str.lower()
    unknown = _first_bad(~special & ~layout["sample_id"].isin(samples["sample_id"]))
    if unknown is not None:
        raise StudyError(f"{path.name}: row {_csv_row(unknown)}: sample_id {layout.loc[unknown, 'sample_id']!r} "
                         f"is not in the sample sheet; add it to samples.csv, fix the id, or write one of "
                         f"{', '.join(SPECIAL_LANES)}")
    return layout


def _short(text, limit=120):
    """``text`` cut to ``limit`` characters, so a pasted essay cannot flood an error line."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _image_entries(document, folder, study_name):
    """Check the ``[[image]]`` tables and return them as a table."""
    entries = document.get("image")
    if not isinstance(entries, list) or not entries:
        raise StudyError(f"{study_name}: no [[image]] tables; add one per blot image with file, blot, "
                         "target, role and band_rows")
    rows = []
    for number, entry in enumerate(entries, start=1):
        where = f"{study_name}: [[image]] {number}"
        if not isinstance(entry, dict):
            raise StudyError(f"{where}: must be a table; write [[image]] followed by key = value lines")
        if "file" in entry:
            where += f" ({_short(entry['file'])})"
        unknown = sorted(set(entry) - _IMAGE_KEYS)
        if unknown:
            raise StudyError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed keys are "
                             f"{', '.join(sorted(_IMAGE_KEYS))}")
        for key in ("file", "blot", "target", "role", "band_rows"):
            if key not in entry:
                raise StudyError(f"{where}: {key} is missing; add {key} = ...")
        for key in ("file", "target", "role"):
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise StudyError(f"{where}: {key} must be a non-empty text in quotes")
        for key in ("blot", "target", "total"):
            if len(str(entry.get(key, ""))) > MAX_NAME_LENGTH:
                raise StudyError(f"{where}: {key} is {len(str(entry[key]))} characters long; names must be at "
                                 f"most {MAX_NAME_LENGTH} characters")
        if entry["role"] not in IMAGE_ROLES:
            raise StudyError(f"{where}: role {entry['role']!r} is unknown; use one of {', '.join(IMAGE_ROLES)}")
        band_rows = entry["band_rows"]
        if (not isinstance(band_rows, list) or len(band_rows) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in band_rows)
                or band_rows[0] >= band_rows[1]):
            raise StudyError(f"{where}: band_rows = {band_rows!r}; write band_rows = [top, bottom], the first "
                             "and last pixel rows (from 0 at the top) of the band of interest")
        total = entry.get("total", "")
        if not isinstance(total, str):
            raise StudyError(f"{where}: total must be the target name of the total protein, in quotes")
        if total and entry["role"] != "target":
            raise StudyError(f"{where}: total is given but role is {entry['role']!r}; only a role = \"target\" "
                             "image (a phospho target) names its total")
        band_rows_mode = entry.get("band_rows_mode")
        if band_rows_mode is not None and band_rows_mode not in ("band", "window"):
            raise StudyError(f"{where}: band_rows_mode = {band_rows_mode!r}; write \"band\" (the strongest band "
                             "in the rows) or \"window\" (the whole window, e.g. a doublet)")
        channel = entry.get("channel")
        if channel is not None and (isinstance(channel, bool) or not isinstance(channel, (int, str))):
            raise StudyError(f"{where}: channel must be a channel number (from 0) or name")
        path = (folder / entry["file"]).resolve() if not Path(entry["file"]).is_absolute() else Path(entry["file"])
        try:
            found = path.is_file()
        except OSError:  # e.g. a file name longer than the system allows
            found = False
        if not found:
            raise StudyError(f"{where}: image file {_short(entry['file'])!r} does not exist (looked for "
                             f"{_short(path, 300)}); "
                             "fix the path, relative to the study file")
        rows.append({"number": number, "file": entry["file"], "path": path, "blot": str(entry["blot"]),
                     "target": entry["target"].strip(), "role": entry["role"], "band_top": band_rows[0],
                     "band_bottom": band_rows[1], "band_rows_mode": band_rows_mode,
                     "total_target": total.strip(), "channel": channel, "note": str(entry.get("note", ""))})
    images = pd.DataFrame(rows)
    # Keep channel numbers as given (None, 0, "700nm"): a float column would turn 0 into 0.0.
    images["channel"] = pd.Series([row["channel"] for row in rows], dtype=object)
    return images


def _check_images_against_layout(images, layout, study_name, layout_name):
    duplicate = _first_bad(images.duplicated(["blot", "target"]))
    if duplicate is not None:
        row = images.loc[duplicate]
        raise StudyError(f"{study_name}: [[image]] {row['number']} ({row['file']}): blot {row['blot']} already has "
                         f"an image of {row['target']}; give each target one image per blot")
    duplicate = _first_bad(images.duplicated(["file", "channel"]))
    if duplicate is not None:
        row = images.loc[duplicate]
        raise StudyError(f"{study_name}: [[image]] {row['number']} ({row['file']}): the same file and channel is "
                         "used twice; for a two-colour image give each target its own channel = ...")
    for blot, entries in images.groupby("blot", sort=False):
        first = entries.iloc[0]
        loading = entries[entries["role"].isin(LOADING_ROLES)]
        if len(loading) != 1:
            found = "none" if loading.empty else ", ".join(loading["target"])
            raise StudyError(f"{study_name}: blot {blot}: needs exactly one image with role \"loading_control\" "
                             f"or \"total_protein\" (found {found}); every target is normalised to it")
        for _, entry in entries[entries["total_target"] != ""].iterrows():
            totals = entries[(entries["target"] == entry["total_target"]) & (entries["role"] == "total")]
            if totals.empty:
                raise StudyError(f"{study_name}: [[image]] {entry['number']} ({entry['file']}): total = "
                                 f"{entry['total_target']!r} but blot {blot} has no image with target = "
                                 f"{entry['total_target']!r} and role = \"total\"; add that image or fix the name")
        if not (layout["blot"] == blot).any():
            raise StudyError(f"{study_name}: [[image]] {first['number']} ({first['file']}): blot {blot!r} has no "
                             f"lanes in {layout_name}; add its lanes there or fix the blot name")
    orphan = _first_bad(~layout["blot"].isin(images["blot"]))
    if orphan is not None:
        raise StudyError(f"{layout_name}: row {_csv_row(orphan)}: blot {layout.loc[orphan, 'blot']!r} has no "
                         f"[[image]] in {study_name}; add its images or fix the blot name")


def _typed_table(document, key, allowed, study_name):
    table = document.get(key, {})
    if not isinstance(table, dict):
        raise StudyError(f"{study_name}: [{key}] must be a table of key = value lines")
    for name, value in table.items():
        if name not in allowed:
            raise StudyError(f"{study_name}: [{key}] {name} is unknown; allowed keys are {', '.join(sorted(allowed))}")
        expected = allowed[name]
        if isinstance(value, bool) or not isinstance(value, expected):
            raise StudyError(f"{study_name}: [{key}] {name} = {value!r} has the wrong type; fix the value")
        if isinstance(value, float) and not math.isfinite(value):
            raise StudyError(f"{study_name}: [{key}] {name} = {value!r} is not a finite number; write a number")
    return dict(table)


def _non_finite(value, key=""):
    """``(key, value)`` of the first NaN or infinite float in a TOML value, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return key, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, item in items:
        found = _non_finite(item, key if isinstance(name, int) else name)
        if found is not None:
            return found
    return None


def load_study(study_file):
    """Read and check a study: ``study.toml`` and the two tables it names.

    Parameters
    ----------
    study_file : str or Path
        The study's TOML file.

    Returns
    -------
    Study

    Raises
    ------
    StudyError
        For the first problem found, naming the file, the row and the fix.
    """
    path = Path(study_file)
    if path.is_dir():
        path = path / "study.toml"
    path = path.resolve()
    name = path.name
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"{path}: study file not found; give the path of the study's .toml file") from None
    except UnicodeDecodeError:
        raise StudyError(f"{path}: is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise StudyError(f"{path}: cannot be opened ({exc.strerror or exc}); give the path of the study's "
                         ".toml file") from None
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{name}: not valid TOML ({exc}); fix the syntax") from None
    except RecursionError:
        raise StudyError(f"{name}: could not read the study file: arrays or tables are nested too deep; "
                         "fix the syntax") from None
    unknown = sorted(set(document) - _STUDY_KEYS)
    if unknown:
        raise StudyError(f"{name}: unknown key(s) {', '.join(unknown)}; "
                         f"allowed keys are {', '.join(sorted(_STUDY_KEYS))}")
    for key in ("control_group", "samples", "layout"):
        if not isinstance(document.get(key), str) or not document[key].strip():
            raise StudyError(f"{name}: {key} is missing; add {key} = \"...\" at the top of the file")
    if len(document["control_group"]) > MAX_NAME_LENGTH:
        raise StudyError(f"{name}: control_group is {len(document['control_group'])} characters long; names must "
                         f"be at most {MAX_NAME_LENGTH} characters")
    time_reference = document.get("time_reference")
    if time_reference is not None and time_reference not in TIME_REFERENCES:
        raise StudyError(f"{name}: time_reference = {time_reference!r}; write \"dose_start\" or \"infusion_end\"")
    folder = path.parent
    samples_path = (folder / document["samples"]).resolve()
    layout_path = (folder / document["layout"]).resolve()
    samples = read_samples(samples_path, control_group=document["control_group"])
    layout = read_layout(layout_path, samples=samples)
    images = _image_entries(document, folder, name)
    _check_images_against_layout(images, layout, name, layout_path.name)

    thresholds = dict(DEFAULT_THRESHOLDS)
    thresholds.update(_typed_table(document, "thresholds", {k: (int, float) for k in DEFAULT_THRESHOLDS}, name))
    for key, value in thresholds.items():
        # Every limit is a size, a fraction or a p-value: a negative one would flag everything or nothing.
        if value < 0:
            raise StudyError(f"{name}: [thresholds] {key} = {value!r} is negative; write a number >= 0")
    quantify_options = _typed_table(document, "quantify", _QUANTIFY_KEYS, name)
    if quantify_options.get("min_snr", 0) < 0:
        raise StudyError(f"{name}: [quantify] min_snr = {quantify_options['min_snr']!r} is negative; write a "
                         "number of noise sigmas >= 0 (e.g. 4)")
    statistics_options = _typed_table(document, "statistics", _STATISTICS_KEYS, name)
    p_adjust = statistics_options.get("p_adjust", "holm")
    bootstrap = statistics_options.get("bootstrap", 2000)
    if not 1 <= bootstrap <= MAX_BOOTSTRAP:
        raise StudyError(f"{name}: [statistics] bootstrap = {bootstrap}; write a whole number of resamples "
                         f"between 1 and {MAX_BOOTSTRAP} (e.g. 2000)")
    seed = statistics_options.get("seed", 0)
    if not 0 <= seed <= MAX_SEED:
        raise StudyError(f"{name}: [statistics] seed = {seed}; write a whole number between 0 and {MAX_SEED}")
    if p_adjust not in P_ADJUST_METHODS:
        raise StudyError(f"{name}: [statistics] p_adjust = {p_adjust!r}; write \"holm\" or \"bh\"")
    kinetics_file = document.get("kinetics_file")
    overrides = document.get("kinetics", {})
    if not isinstance(overrides, dict):
        raise StudyError(f"{name}: kinetics must be tables like [kinetics.\"p-mTOR\"]")
    for target, override in overrides.items():
        bad = _non_finite(override)
        if bad is not None:
            raise StudyError(f"{name}: [kinetics.\"{target}\"] {bad[0]} = {bad[1]!r} is not a finite number; "
                             "write minutes after the dose")
    kinetics_path = folder / kinetics_file if kinetics_file else None
    try:
        expected = load_expected_kinetics(kinetics_path, overrides=overrides, overrides_source=name)
    except RecursionError:
        raise StudyError(f"{kinetics_path}: could not read the kinetics file: nested too deep; "
                         "fix the syntax") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"{kinetics_path}: cannot be read as a UTF-8 kinetics file ({exc}); "
                         "fix kinetics_file") from None
    # A kinetics file's own NaN reads as "not given"; an infinite time, or no onset, is never meant.
    numeric = expected[["onset_min", "peak_first_min", "peak_last_min", "baseline_min"]].astype(float)
    bad = _first_bad(np.isinf(numeric).any(axis=1) | numeric["onset_min"].isna())
    if bad is not None:
        raise StudyError(f"{expected.at[bad, 'origin']}: expected kinetics of {expected.at[bad, 'target']!r}: "
                         "a time is infinite or onset_min is not a number; write minutes after the dose")
    return Study(
        path=path, name=str(document.get("name") or folder.name), description=str(document.get("description", "")),
        time_reference=time_reference or "dose_start", time_reference_given=time_reference is not None,
        control_group=document["control_group"], samples=samples, layout=layout, images=images,
        expected_kinetics=expected, thresholds=thresholds, quantify_options=quantify_options,
        p_adjust=p_adjust, bootstrap=int(bootstrap), seed=int(seed),
        input_files={"study": path, "samples": samples_path, "layout": layout_path},
    )


# ---------------------------------------------------------------------------
# Registration of a blot's images onto one lane geometry

_REGISTRATION_SIZE = 384  # longer side of the working copies, in pixels


def _registration_features(plane, factor):
    """Polarity-free, background-free structure of an image for registration.

    The gradient magnitude of a smoothed, block-averaged copy: lane edges and band
    edges survive, the membrane's slow background and the sign of the signal do not.
    """
    small = block_mean(np.asarray(plane, dtype=np.float32), factor)
    small = ndi.gaussian_filter(small, 1.0)
    magnitude = np.hypot(ndi.sobel(small, axis=0), ndi.sobel(small, axis=1))
    return magnitude / (magnitude.std() + 1e-12)


def _rotation_matrix(angle_deg):
    """Rotation acting on (row, col) coordinates."""
    a = math.radians(angle_deg)
    return np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])


def _windowed_phase_correlation(reference, moving, max_shift):
    """Shift of ``moving`` relative to ``reference`` (moving = reference shifted by it), and peak height.

    Phase correlation restricted to shifts of at most ``max_shift`` (rows, cols), so that
    images whose bands lie at different rows cannot pull the match a whole band away.
    """
    window = np.outer(np.hanning(reference.shape[0]), np.hanning(reference.shape[1]))
    spectrum = np.fft.fft2(moving * window) * np.conj(np.fft.fft2(reference * window))
    spectrum /= np.abs(spectrum) + 1e-12
    surface = np.fft.fftshift(np.fft.ifft2(spectrum).real)
    centre = np.array(surface.shape) // 2
    rows = slice(centre[0] - max_shift[0], centre[0] + max_shift[0] + 1)
    cols = slice(centre[1] - max_shift[1], centre[1] + max_shift[1] + 1)
    local = surface[rows, cols]
    peak = np.unravel_index(int(np.argmax(local)), local.shape)
    shift = []
    for axis, position in enumerate(peak):
        offset = float(position)
        line = local[:, peak[1]] if axis == 0 else local[peak[0], :]
        if 0 < position < line.size - 1:
            left, mid, right = line[position - 1 : position + 2]
            curvature = left - 2 * mid + right
            if curvature < 0:
                offset += 0.5 * (left - right) / curvature
        shift.append(offset - max_shift[axis])
    return np.array(shift), float(local[peak])


def estimate_image_offset(reference, moving, *, rotation_deg=None, max_rotation_deg=2.0,
                          rotation_step_deg=0.25, max_shift_fraction=0.08):
    """Estimate how a re-probed membrane moved between two images of the same blot.

    The model is a rotation about the image centre followed by a shift: the membrane
    point at ``p`` in ``reference`` is at ``R(angle) (p - c) + c + (dy, dx)`` in ``moving``.
    Both images are reduced to about 384 pixels and turned into gradient-magnitude maps
    (so polarity, exposure and background do not matter); the shift is the peak of
    their phase correlation. The angle is best given (``rotation_deg``, e.g. from the
    difference of the two images' lane tilts, which bands across the whole blot measure
    precisely); otherwise the angle whose correlation peaks highest is taken, which is
    coarse when the two images show bands at different rows.

    Parameters
    ----------
    reference, moving : (M, N) array
        One channel of each image, in any units; same shape.
    rotation_deg : float, optional
        The rotation, when known; then only the shift is searched.
    max_rotation_deg, rotation_step_deg : float
        Angles searched when ``rotation_deg`` is not given.
    max_shift_fraction : float
        Largest shift searched, as a fraction of each image side.

    Returns
    -------
    dict
        ``dy``, ``dx`` (pixels), ``rotation_deg`` and ``score`` (height of the
        correlation peak; about 0.05 and more for a clear match).
    """
    reference = np.asarray(reference, dtype=np.float32)
    moving = np.asarray(moving, dtype=np.float32)
    if reference.shape != moving.shape:
        raise ValueError(f"images differ in shape: {reference.shape} and {moving.shape}")
    factor = max(1, int(math.ceil(max(reference.shape) / _REGISTRATION_SIZE)))
    ref_small = _registration_features(reference, factor)
    mov_small = _registration_features(moving, factor)
    centre = (np.array(mov_small.shape) - 1) / 2.0
    max_shift = np.maximum(2, (np.array(mov_small.shape) * max_shift_fraction).astype(int))
    best = None
    if rotation_deg is not None:
        angles = [float(rotation_deg)]
    else:
        angles = np.arange(-max_rotation_deg, max_rotation_deg + rotation_step_deg / 2, rotation_step_deg)
    for angle in angles:  # ~17 small FFTs
        rotation = _rotation_matrix(angle)
        # Resample moving back onto the reference's orientation: out[p] = moving[R (p - c) + c].
        unturned = ndi.affine_transform(mov_small, rotation, offset=centre - rotation @ centre,
                                        order=1, mode="nearest")
        shift, score = _windowed_phase_correlation(ref_small, unturned, max_shift)
        if best is None or score > best[2]:
            best = (angle, shift, score)
    angle, shift, score = best
    # The residual translation was measured in the unturned frame; turn it into the moving frame.
    dy, dx = _rotation_matrix(angle) @ shift * factor
    return {"dy": float(dy), "dx": float(dx), "rotation_deg": float(angle), "score": score}


def transform_lane_geometry(lanes, offset, image_shape):
    """Carry a lane table onto an image of the same membrane that moved by ``offset``.

    Parameters
    ----------
    lanes : pandas.DataFrame
        ``strip``, ``lane``, ``x_left``, ``x_right``, ``y_top``, ``y_bottom``, ``slope``
        (columns at the strip's middle row; see :mod:`blotquant.lanes`).
    offset : dict
        ``dy``, ``dx``, ``rotation_deg`` from :func:`estimate_image_offset`.
    image_shape : (int, int)
        Shape of the moved image.

    Returns
    -------
    pandas.DataFrame
        The same lanes in the moved image's coordinates, clipped to it.
    """
    height, width = image_shape
    centre = np.array([(height - 1) / 2.0, (width - 1) / 2.0])
    rotation = _rotation_matrix(offset["rotation_deg"])
    shift = np.array([offset["dy"], offset["dx"]])
    y_mid = (lanes["y_top"] + lanes["y_bottom"]).to_numpy(float) / 2.0
    slope = lanes["slope"].to_numpy(float)
    moved = lanes[["strip", "lane"]].copy()
    ends = {}
    for edge in ("x_left", "x_right"):
        for end in ("y_top", "y_bottom"):
            y = lanes[end].to_numpy(float)
            x = lanes[edge].to_numpy(float) + slope * (y - y_mid)
            points = (rotation @ (np.vstack([y, x]) - centre[:, None])) + (centre + shift)[:, None]
            ends[edge, end] = points
    new_top = np.minimum(ends["x_left", "y_top"][0], ends["x_right", "y_top"][0])
    new_bottom = np.maximum(ends["x_left", "y_bottom"][0], ends["x_right", "y_bottom"][0])
    moved["y_top"] = np.clip(np.rint(new_top), 0, height - 2).astype(int)
    moved["y_bottom"] = np.clip(np.rint(new_bottom), moved["y_top"] + 1, height - 1).astype(int)
    new_mid = (moved["y_top"] + moved["y_bottom"]).to_numpy(float) / 2.0
    slopes = []
    for edge in ("x_left", "x_right"):
        top, bottom = ends[edge, "y_top"], ends[edge, "y_bottom"]
        edge_slope = (bottom[1] - top[1]) / (bottom[0] - top[0])
        moved[edge] = top[1] + edge_slope * (new_mid - top[0])
        slopes.append(edge_slope)
    moved["slope"] = (slopes[0] + slopes[1]) / 2.0
    moved["x_left"] = moved["x_left"].clip(lower=0.0, upper=width - 2.0)
    moved["x_right"] = np.maximum(moved["x_right"].clip(upper=width - 1.0), moved["x_left"] + 1.0)
    return moved


# ---------------------------------------------------------------------------
# Quantifying the images of one blot

_GEOMETRY_COLUMNS = ["strip", "lane", "x_left", "x_right", "y_top", "y_bottom", "slope"]
#: Below this correlation peak a registration is not trusted and the images are assumed aligned.
MIN_REGISTRATION_SCORE = 0.02


def _rotation_from_tilts(*, geometry_slope, plane, full_scale, n_lanes):
    """Rotation (degrees, :func:`estimate_image_offset` convention) between a reference lane tilt
    and the tilt the lane finder measures on ``plane``; None when it finds no lanes there."""
    from .errors import LaneDetectionError
    from .io import to_signal
    from .lanes import detect_lanes

    try:
        signal, _ = to_signal(plane, full_scale=full_scale)
        moving_slope = float(detect_lanes(signal, n_lanes=n_lanes)["slope"].median())
    except LaneDetectionError:
        return None
    # A lane running straight down, (1, 0) in (row, col), leaves R(angle) with slope -tan(angle).
    return math.degrees(math.atan(geometry_slope) - math.atan(moving_slope))


def loaded_lane_span(layout_of_blot):
    """First and last lane of a blot that is not marked ``empty`` in the layout.

    An empty lane at the edge of a blot shows nothing, so the lane finder cannot tell
    whether it lies left or right of the loaded lanes; lanes are therefore detected over
    the loaded span only (empty lanes inside it are placed by the regular lane grid).
    """
    loaded = layout_of_blot.loc[layout_of_blot["sample_id"] != "empty", "lane"]
    if loaded.empty:
        return int(layout_of_blot["lane"].min()), int(layout_of_blot["lane"].max())
    return int(loaded.min()), int(loaded.max())


def quantify_blot(images_of_blot, layout_of_blot, quantify_options, overlay_dir=None):
    """Quantify every image of one blot on one shared lane layout.

    Lanes are detected once, on the blot's loading image (the number of lanes taken
    from the layout); every other image gets that geometry moved by the offset
    :func:`estimate_image_offset` finds between the two images (channels of one file
    share it unchanged).

    Parameters
    ----------
    images_of_blot : pandas.DataFrame
        Rows of :attr:`Study.images` for one blot.
    layout_of_blot : pandas.DataFrame
        Rows of :attr:`Study.layout` for that blot.
    quantify_options : dict
        Extra keyword arguments for :func:`blotquant.quantify`.
    overlay_dir : str or Path, optional
        Where to draw each image with the lanes and bands used
        (``<blot>_<target>.overlay.png``), so a person can check the lanes at a glance.

    Returns
    -------
    bands : pandas.DataFrame
        The quantification bands of every image (one per lane), with the study columns
        ``file``, ``blot``, ``target``, ``role``, ``total_target`` in front.
    lanes : pandas.DataFrame
        The lane geometry used on every image, with ``file``, ``blot``, ``target``.
    records : list of dict
        Per image: file, target, role, SHA-256, shape, polarity, warnings, the offset
        used, the overlay file, and the parameters of the quantification.
    """
    from .io import read_image, to_signal
    from .overlay import render_overlay
    from .plots import plain_text
    from .pipeline import quantify

    options = dict(quantify_options)
    max_pixels = options.pop("max_pixels", None)
    images_of_blot = images_of_blot.copy()
    images_of_blot["is_reference"] = images_of_blot["role"].isin(LOADING_ROLES)
    images_of_blot = images_of_blot.sort_values("is_reference", ascending=False, kind="stable")
    first_lane, last_lane = loaded_lane_span(layout_of_blot)
    n_lanes = last_lane - first_lane + 1
    opened = {}

    def plane_of(entry):
        where = f"study.toml: [[image]] {entry['number']} ({entry['file']})"
        if entry["path"] not in opened:
            opened[entry["path"]] = read_image(entry["path"], max_pixels=max_pixels)
        image = opened[entry["path"]]
        channel = entry["channel"]
        if channel is None and len(image.default_channels) > 1:
            names = ", ".join(image.channel_names[i] for i in image.default_channels)
            raise StudyError(f"{where}: the image holds {len(image.default_channels)} channels ({names}); "
                             "say which one shows this target with channel = <number from 0 or name>")
        try:
            plane = image.channel(image.default_channels[0] if channel is None else channel)
        except BlotQuantError as exc:
            raise StudyError(f"{where}: {exc}; fix channel") from None
        if entry["band_bottom"] >= plane.shape[0]:
            raise StudyError(f"{where}: band_rows [{entry['band_top']}, {entry['band_bottom']}] reach below the "
                             f"image, which has rows 0-{plane.shape[0] - 1}; fix band_rows")
        return image, plane

    band_tables, lane_tables, records = [], [], []
    reference = None
    for _, entry in images_of_blot.iterrows():
        image, plane = plane_of(entry)
        channel = entry["channel"]
        offset = None
        try:
            if reference is None:
                result = quantify(image, lanes=n_lanes, channel=channel,
                                  band_rows=(entry["band_top"], entry["band_bottom"]),
                                  **_image_options(options, entry))
                # Detected lanes are numbered from 1; the layout numbers them from its first loaded lane.
                result.lanes["lane"] += first_lane - 1
                result.bands["lane"] += first_lane - 1
                geometry = result.lanes[_GEOMETRY_COLUMNS]
                reference = (entry, plane, geometry)
            else:
                ref_entry, ref_plane, ref_geometry = reference
                if entry["path"] == ref_entry["path"]:
                    offset = {"dy": 0.0, "dx": 0.0, "rotation_deg": 0.0, "score": None,
                              "method": "same file"}
                    geometry = ref_geometry
                elif plane.shape != ref_plane.shape:
                    raise StudyError(
                        f"{entry['file']} (blot {entry['blot']}): is {plane.shape[1]}x{plane.shape[0]} pixels but "
                        f"{ref_entry['file']} of the same blot is {ref_plane.shape[1]}x{ref_plane.shape[0]}; "
                        "export every image of a blot at the same size (no cropping)")
                else:
                    rotation = _rotation_from_tilts(geometry_slope=float(ref_geometry["slope"].median()),
                                                    plane=plane, full_scale=image.full_scale, n_lanes=n_lanes)
                    offset = estimate_image_offset(ref_plane, plane, rotation_deg=rotation)
                    offset["method"] = ("lane tilt + phase correlation" if rotation is not None
                                        else "phase correlation")
                    if offset["score"] < MIN_REGISTRATION_SCORE:
                        offset.update(dy=0.0, dx=0.0, rotation_deg=0.0, method="assumed aligned (weak match)")
                    geometry = transform_lane_geometry(ref_geometry, offset, plane.shape)
                result = quantify(image, lane_geometry=geometry, channel=channel,
                                  band_rows=(entry["band_top"], entry["band_bottom"]),
                                  **_image_options(options, entry))
        except StudyError:
            raise
        except BlotQuantError as exc:
            raise type(exc)(f"{entry['file']} (blot {entry['blot']}, {entry['target']}): {exc}") from None
        overlay = None
        if overlay_dir is not None:
            overlay = f"{safe_file_stem(entry['blot'])}_{safe_file_stem(entry['target'])}.overlay.png"
            signal, _ = to_signal(plane, polarity=result.image["polarity"], full_scale=image.full_scale)
            render_overlay(signal, result, Path(overlay_dir) / overlay,
                           title=plain_text(f"{entry['file']}: {entry['target']} (blot {entry['blot']})"))
        study_columns = {"file": entry["file"], "blot": entry["blot"], "target": entry["target"],
                         "role": entry["role"], "total_target": entry["total_target"]}
        band_tables.append(result.bands.assign(**study_columns)[[*study_columns, *result.bands.columns]])
        lane_tables.append(result.lanes.assign(file=entry["file"], blot=entry["blot"], target=entry["target"]))
        records.append({
            "number": int(entry["number"]), "file": entry["file"], "blot": entry["blot"],
            "target": entry["target"], "role": entry["role"], "channel": channel,
            "band_rows": [int(entry["band_top"]), int(entry["band_bottom"])],
            "band_rows_mode": result.parameters.get("band_rows_mode"),
            "sha256": result.image.get("sha256"), "shape": result.image.get("shape"),
            "bit_depth": result.image.get("bit_depth"), "polarity": result.image.get("polarity"),
            "warnings": list(result.image.get("warnings", [])),
            "lanes_from": "detected" if offset is None else f"{reference[0]['file']} ({offset['method']})",
            "offset": offset, "overlay": overlay, "parameters": result.parameters,
            "review": result.parameters.get("review"),
        })
    return pd.concat(band_tables, ignore_index=True), pd.concat(lane_tables, ignore_index=True), records


def _image_options(options, entry):
    """The study's [quantify] options, with this image's own band_rows_mode.

    An image's own ``band_rows_mode`` wins; a total-protein stain is a whole
    lane's worth of bands, so its window is integrated whole unless the
    image says otherwise.
    """
    mode = entry.get("band_rows_mode")
    if isinstance(mode, str):
        return {**options, "band_rows_mode": mode}
    if entry.get("role") == "total_protein":
        return {**options, "band_rows_mode": "window"}
    return options


def _quantify_blot_task(arguments):
    return quantify_blot(*arguments)


def quantify_study_images(study, *, jobs=None, progress=False, overlay_dir=None):
    """Quantify every blot of a study, in parallel across blots.

    Returns ``(bands, lanes, records)`` as :func:`quantify_blot` does, for all blots.
    """
    tasks = [(entries, study.layout[study.layout["blot"] == blot], study.quantify_options, overlay_dir)
             for blot, entries in study.images.groupby("blot", sort=False)]
    workers = min(len(tasks), jobs or os.cpu_count() or 1)
    bar = None
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(study.images), desc="images", unit="image", file=sys.stderr)
    results = []
    try:
        if workers <= 1:
            for task in tasks:
                results.append(quantify_blot(*task))
                if bar is not None:
                    bar.update(len(task[0]))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for task, result in zip(tasks, pool.map(_quantify_blot_task, tasks)):
                    results.append(result)
                    if bar is not None:
                        bar.update(len(task[0]))
    finally:
        if bar is not None:
            bar.close()
    bands = pd.concat([r[0] for r in results], ignore_index=True)
    lanes = pd.concat([r[1] for r in results], ignore_index=True)
    records = [record for r in results for record in r[2]]
    return bands, lanes, records


# ---------------------------------------------------------------------------
# Analysis (pure: bands in, tables out)


@dataclass
class StudyResult:
    """Every table a study run produced; the same tables are written to ``out_dir``.

    Attributes
    ----------
    study : Study
    bands, lanes : pandas.DataFrame
        Quantification of every image (``bands.csv``, ``lanes.csv``).
    lane_signals : pandas.DataFrame
        Per image and lane: the band with its layout label (sample, calibrator).
    normalised_lanes : pandas.DataFrame
        Per target and lane: loading factor, normalised value, ratio, calibration.
    normalized : pandas.DataFrame
        One row per sample and target (``normalized.csv``).
    timecourse : pandas.DataFrame
        Per target, group and nominal time (``timecourse.csv``).
    peaks : pandas.DataFrame
        Observed peak and return-to-baseline times (``peaks.csv``).
    linearity : pandas.DataFrame
        Calibrator dilution-series linear ranges (``linearity.csv``).
    kinetics : pandas.DataFrame
        Expected kinetics of the study's targets.
    flags : pandas.DataFrame
        ``flags.csv``.
    images : list of dict
        Per image provenance (hash, offset, parameters).
    figures : dict
        ``{target: {"png": path, "svg": path}}`` once written.
    out_dir : pathlib.Path or None
    """

    study: Study
    bands: pd.DataFrame
    lanes: pd.DataFrame
    lane_signals: pd.DataFrame
    normalised_lanes: pd.DataFrame
    normalized: pd.DataFrame
    timecourse: pd.DataFrame
    peaks: pd.DataFrame
    linearity: pd.DataFrame
    kinetics: pd.DataFrame
    flags: pd.DataFrame
    images: list = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    out_dir: Path | None = None


def _where_loaded(layout):
    """Per sample: the blot(s) and lane(s) it was loaded in, as text."""
    lanes = layout[~layout["sample_id"].isin(SPECIAL_LANES)]
    return lanes.groupby("sample_id").agg(blot=("blot", lambda blots: ";".join(map(str, blots))),
                                          lane=("lane", lambda numbers: ";".join(map(str, numbers)))).reset_index()


def analyse_study(study, bands, *, lanes=None, images=None):
    """Turn per-lane band measurements of a study into every result table.

    Pure: no file is read or written, so tests can feed hand-made bands.

    Parameters
    ----------
    study : Study
    bands : pandas.DataFrame
        One band per image and lane, with the study columns ``blot``, ``target``,
        ``role``, ``total_target`` (as :func:`quantify_blot` returns).
    lanes : pandas.DataFrame, optional
        Lane geometry, carried into the result.
    images : list of dict, optional
        Image records from :func:`quantify_blot`; their warnings become flags.

    Returns
    -------
    StudyResult
    """
    thresholds = study.thresholds
    lane_signals = label_lane_signals(bands, study.layout)
    timed = post_dose_minutes(study.samples, time_reference=study.time_reference)
    normalised_lanes = normalise_lane_signals(lane_signals)
    normalized = sample_values(normalised_lanes, timed)
    timecourse = summarise_timecourse(normalized, control_group=study.control_group, p_adjust=study.p_adjust)
    kinetics = kinetics_for_targets(normalized["target"].unique(), study.expected_kinetics)
    directions = dict(zip(kinetics["target"], kinetics["direction"]))
    peaks = peak_and_return(normalized, timecourse, control_group=study.control_group, directions=directions,
                            n_boot=study.bootstrap, seed=study.seed)
    linearity = calibrator_linear_range(lane_signals, min_r_squared=thresholds["linear_min_r_squared"],
                                        max_residual=thresholds["linear_max_residual"])
    where = _where_loaded(study.layout)
    drift = collection_drift(timed, tolerance_min=thresholds["collection_drift_min"],
                             tolerance_fraction=thresholds["collection_drift_fraction"])
    image_warnings = pd.DataFrame(
        [{"file": r["file"], "blot": r["blot"], "target": r["target"], "warning": w}
         for r in (images or []) for w in r.get("warnings", [])],
        columns=["file", "blot", "target", "warning"])
    flags = collect_flags([
        flag_time_order(timed, where),
        flag_reference_ambiguous(timed, where, reference_given=study.time_reference_given,
                                 max_bolus_min=thresholds["max_bolus_min"]),
        flag_collection_drift(timed, drift, where),
        flag_outside_kinetic_window(normalized, kinetics, control_group=study.control_group,
                                    margin_min=thresholds["collection_drift_min"],
                                    margin_fraction=thresholds["collection_drift_fraction"]),
        flag_no_time_matched_control(normalized, control_group=study.control_group),
        flag_peak_not_sampled(normalized, kinetics, control_group=study.control_group),
        flag_band_quality(lane_signals, min_snr=thresholds["min_snr"], max_overlap=thresholds["band_max_overlap"]),
        flag_loading_variation(lane_signals, study.samples, max_cv=thresholds["loading_max_cv"],
                               max_lane_ratio=thresholds["loading_max_lane_ratio"],
                               max_group_p=thresholds["loading_group_p"]),
        flag_cross_blot_without_calibrator(normalised_lanes),
        flag_outside_linear_range(lane_signals, linearity),
        flag_image_warnings(image_warnings),
    ])
    return StudyResult(
        study=study, bands=bands, lanes=lanes if lanes is not None else pd.DataFrame(),
        lane_signals=lane_signals, normalised_lanes=normalised_lanes, normalized=normalized,
        timecourse=timecourse, peaks=peaks, linearity=linearity, kinetics=kinetics, flags=flags,
        images=list(images or []),
    )


# ---------------------------------------------------------------------------
# Writing the results


def safe_file_stem(text):
    """A file-name-safe stem for a target name (``p-mTOR`` -> ``p-mTOR``, ``a/b c`` -> ``a_b_c``)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")
    return stem or "target"


def _csv_ready(table):
    """Date-times as ISO text so CSV readers everywhere agree."""
    table = table.copy()
    for column in table.columns:
        if pd.api.types.is_datetime64_any_dtype(table[column]):
            table[column] = table[column].map(lambda t: "" if pd.isna(t) else t.isoformat())
    return table


def run_record(result):
    """The ``run.json`` content: inputs with hashes, parameters, versions, per-image provenance."""
    study = result.study
    return {
        "blotquant_version": __version__,
        "command": "study",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "study": {
            "name": study.name,
            "file": str(study.path),
            "time_reference": study.time_reference,
            "time_reference_given": study.time_reference_given,
            "control_group": study.control_group,
            "p_adjust": study.p_adjust,
            "bootstrap": study.bootstrap,
            "seed": study.seed,
            "thresholds": study.thresholds,
            "quantify_options": study.quantify_options,
        },
        "inputs": {role: {"path": str(path), "sha256": sha256_of_file(path)}
                   for role, path in study.input_files.items()},
        "images": [{k: v for k, v in record.items()} for record in result.images],
        "environment": environment_record(),
    }


def write_study_outputs(result, out_dir):
    """Write every table, the plots, ``run.json`` and ``report.html`` of a study run.

    ``out_dir`` must already be prepared (see :func:`blotquant.output.prepare_output_dir`).
    """
    from .plots import save_timecourse_figures
    from .report import write_report

    out_dir = Path(out_dir)
    write_table(result.bands, out_dir / "bands.csv")
    if not result.lanes.empty:
        write_table(result.lanes, out_dir / "lanes.csv")
    write_table(_csv_ready(result.normalized), out_dir / "normalized.csv")
    write_table(result.timecourse, out_dir / "timecourse.csv")
    write_table(result.peaks, out_dir / "peaks.csv")
    if not result.linearity.empty:
        write_table(result.linearity, out_dir / "linearity.csv")
    write_table(result.flags, out_dir / "flags.csv")
    result.figures = save_timecourse_figures(result, results_subfolder(out_dir, "plots"))
    record = run_record(result)
    write_json(record, out_dir / "run.json")
    write_report(result, out_dir / "report.html", run=record)
    result.out_dir = out_dir
    return result


def run_study(study_file, out_dir, *, force=False, jobs=None, progress=True, overlays=True):
    """Run a whole study: quantify, normalise, time, summarise, flag, plot and report.

    Parameters
    ----------
    study_file : str or Path
        The study's ``study.toml`` (or its folder).
    out_dir : str or Path
        Output folder; must be new, empty, or ``force`` must be true.
    force : bool
        Replace results already in ``out_dir``.
    jobs : int, optional
        Blots quantified in parallel (default: one per CPU core, at most one per blot).
    progress : bool
        Show a progress bar when standard error is a terminal.
    overlays : bool
        Draw every image with its lanes and bands into ``out_dir/overlays``.

    Returns
    -------
    StudyResult

    Raises
    ------
    StudyError
        Malformed study file, sample sheet or layout.
    BlotQuantError
        An image cannot be read or quantified, or ``out_dir`` holds results.
    """
    study = load_study(study_file)
    with locked_output_dir(out_dir, force=force) as out_dir:
        # Checked before the images are quantified, not after minutes of work.
        overlay_dir = results_subfolder(out_dir, "overlays")
        results_subfolder(out_dir, "plots")
        bands, lanes, records = quantify_study_images(study, jobs=jobs, progress=progress,
                                                      overlay_dir=overlay_dir if overlays else None)
        result = analyse_study(study, bands, lanes=lanes, images=records)
        return write_study_outputs(result, out_dir)
