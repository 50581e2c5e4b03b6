"""Study files: reading and checking ``study.toml``, ``samples.csv`` and ``layout.csv``.

:func:`load_study` reads all three and raises one :class:`~blotquant.errors.StudyError`
naming the file, the row and the fix for the first problem it finds; the checked
:class:`Study` is what every later stage of a study run takes.
"""

from __future__ import annotations

import csv
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import StudyError
from .kinetics import load_expected_kinetics
from .lanes import MAX_LANES
from .normalise import (
    LOADING_ROLES,
    SPECIAL_LANES,
)
from .policy import TIMEPOINT_MODES
from .statistics import P_ADJUST_METHODS
from .timing import TIME_REFERENCES

#: Roles an image may play in a blot.
IMAGE_ROLES = ("target", "total", "loading_control", "total_protein")

SAMPLE_COLUMNS = ("sample_id", "subject", "group", "dose_mg_kg", "dose_start", "collected_at",
                  "infusion_min", "nominal_min")
LAYOUT_COLUMNS = ("blot", "lane", "sample_id")
#: Columns blotquant adds to each sample's row; a sample sheet may not use these names itself.
RESULT_COLUMNS = ("actual_min", "reference_time", "time_problem", "target", "role", "total_target", "blot",
                  "lane", "n_lanes", "volume", "loading_volume", "loading_factor", "normalised",
                  "total_normalised", "ratio_to_total", "calibrator_value", "value", "value_sd", "value_kind",
                  "saturated", "snr", "detected", "timepoint_min", "included", "exclusion_reason")

_STUDY_KEYS = {"name", "description", "time_reference", "control_group", "samples", "layout", "image",
               "kinetics", "kinetics_file", "thresholds", "quantify", "statistics"}
_IMAGE_KEYS = {"file", "blot", "target", "role", "band_rows", "band_rows_mode", "total", "channel", "note",
               "band_kda", "band_kda_tolerance", "ladder"}
#: Default tolerance of ``band_kda``: a band within +-15 % of the size is the band of interest.
DEFAULT_BAND_KDA_TOLERANCE = 0.15
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
_STATISTICS_KEYS = {"p_adjust": str, "bootstrap": int, "seed": int, "timepoint": str, "exclude_flagged": bool}
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
    timepoint : {"actual", "nominal"}
        Where drifted samples are analysed (see :mod:`blotquant.policy`).
    exclude_flagged : bool
        Leave values with an error flag out of the statistics (see :mod:`blotquant.policy`).
    time_reference_inferred : bool
        True once an analysis has read the time reference from the time stamps
        (``time_reference`` then holds the one they fit).
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
    timepoint: str = "actual"
    exclude_flagged: bool = True
    time_reference_inferred: bool = False
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
        for key in ("file", "blot", "target", "role"):
            if key not in entry:
                raise StudyError(f"{where}: {key} is missing; add {key} = ...")
        if "band_rows" not in entry and "band_kda" not in entry:
            raise StudyError(f"{where}: band_rows is missing; add band_rows = [top, bottom] (pixel rows of the "
                             "band of interest) or band_kda = its size in kDa (with a ladder lane in the layout)")
        band_kda, tolerance, ladder = _band_size_entry(entry, where)
        for key in ("file", "target", "role"):
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise StudyError(f"{where}: {key} must be a non-empty text in quotes")
        for key in ("blot", "target", "total"):
            if len(str(entry.get(key, ""))) > MAX_NAME_LENGTH:
                raise StudyError(f"{where}: {key} is {len(str(entry[key]))} characters long; names must be at "
                                 f"most {MAX_NAME_LENGTH} characters")
        if entry["role"] not in IMAGE_ROLES:
            raise StudyError(f"{where}: role {entry['role']!r} is unknown; use one of {', '.join(IMAGE_ROLES)}")
        band_rows = entry.get("band_rows", [0, 1] if band_kda is not None else None)
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
        # Made absolute but not resolved: a symlinked image keeps the lane review saved beside
        # the link, the one `blotquant quantify` on the same path uses.
        path = Path(os.path.abspath(folder / entry["file"]))
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
                     "total_target": total.strip(), "channel": channel, "note": str(entry.get("note", "")),
                     "band_kda": band_kda, "band_kda_tolerance": tolerance, "ladder": ladder,
                     "band_rows_given": "band_rows" in entry})
    images = pd.DataFrame(rows)
    # Keep channel numbers as given (None, 0, "700nm"): a float column would turn 0 into 0.0.
    images["channel"] = pd.Series([row["channel"] for row in rows], dtype=object)
    images["ladder"] = pd.Series([row["ladder"] for row in rows], dtype=object)
    return images


def _band_size_entry(entry, where):
    """``(band_kda, tolerance, ladder)`` of an ``[[image]]``, checked; NaN, default, "" when not given."""
    band_kda = entry.get("band_kda")
    if band_kda is not None and (isinstance(band_kda, bool) or not isinstance(band_kda, (int, float))
                                 or not math.isfinite(band_kda) or not 0.5 <= band_kda <= 5000):
        raise StudyError(f"{where}: band_kda = {band_kda!r}; write the size of the band of interest in kDa "
                         "(e.g. band_kda = 289)")
    tolerance = entry.get("band_kda_tolerance", DEFAULT_BAND_KDA_TOLERANCE)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0.01 <= tolerance <= 1:
        raise StudyError(f"{where}: band_kda_tolerance = {tolerance!r}; write a fraction between 0.01 and 1 "
                         "(0.15 means +-15 %)")
    if "band_kda_tolerance" in entry and band_kda is None:
        raise StudyError(f"{where}: band_kda_tolerance is given without band_kda; add band_kda = ...")
    ladder = entry.get("ladder", "")
    if not isinstance(ladder, (str, list)) or (isinstance(ladder, list) and not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in ladder)):
        raise StudyError(f"{where}: ladder must be a ladder's name in quotes or its sizes in kDa, "
                         "e.g. ladder = \"precision-plus-dual\" or ladder = [250, 150, 100, 75, 50]")
    return (None if band_kda is None else float(band_kda)), float(tolerance), ladder


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
        sized = entries[entries["band_kda"].notna()]
        if not sized.empty and not ((layout["blot"] == blot) & (layout["sample_id"] == "ladder")).any():
            row = sized.iloc[0]
            raise StudyError(f"{study_name}: [[image]] {row['number']} ({row['file']}): band_kda needs a ladder "
                             f"lane on blot {blot}; mark the marker lane 'ladder' in {layout_name}")
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
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
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
    timepoint = statistics_options.get("timepoint", "actual")
    if timepoint not in TIMEPOINT_MODES:
        raise StudyError(f"{name}: [statistics] timepoint = {timepoint!r}; write \"actual\" (analyse each sample "
                         "at the planned timepoint nearest its real time) or \"nominal\" (at its planned time)")
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
        p_adjust=p_adjust, bootstrap=int(bootstrap), seed=int(seed), timepoint=timepoint,
        exclude_flagged=bool(statistics_options.get("exclude_flagged", True)),
        input_files={"study": path, "samples": samples_path, "layout": layout_path},
    )


