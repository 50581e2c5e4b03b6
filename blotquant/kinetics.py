"""Expected post-dose kinetics of each target: when an effect is visible at all.

The numbers live in a data file (``blotquant/data/kinetics.toml``), not in code,
each with its literature source; a study overrides or adds targets from its own
``study.toml``. The flags stage asks two questions of this table: is a sample's
real post-dose time inside the target's window of change, and did the study
sample that window at all.
"""

from __future__ import annotations

import math
import re
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from ._shared import read_toml
from .errors import StudyError

#: Columns of the expected-kinetics table, one row per target.
KINETICS_COLUMNS = (
    "target",
    "aliases",
    "direction",
    "onset_min",
    "peak_first_min",
    "peak_last_min",
    "baseline_min",
    "approximate",
    "source",
    "note",
    "origin",
)

#: Where a post-dose time lies relative to a target's expected window.
TIME_CLASSES = ("before_onset", "in_window", "after_baseline", "unknown")

_KNOWN_KEYS = {"name", "aliases", "direction", "onset_min", "peak_min", "baseline_min",
               "approximate", "source", "note"}


def default_kinetics_path():
    """Path of the kinetics file shipped with blotquant."""
    return Path(str(files("blotquant") / "data" / "kinetics.toml"))


def target_key(name):
    """Normalise a target name for matching: case, spaces, dashes and dots are ignored.

    Examples
    --------
    >>> target_key("p-mTOR (Ser2448)") == target_key("P mTOR Ser2448")
    True
    """
    return re.sub(r"[^0-9a-z/]+", "", str(name).lower())


def _entry_to_row(entry, *, where, origin):
    """Validate one kinetics entry (a dict from TOML) and return a table row."""
    unknown = sorted(set(entry) - _KNOWN_KEYS)
    if unknown:
        raise StudyError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                         f"allowed keys are {', '.join(sorted(_KNOWN_KEYS))}")
    direction = entry.get("direction")
    if direction not in ("up", "down"):
        raise StudyError(f"{where}: direction is {direction!r}; write direction = \"up\" or \"down\"")

    def minutes(key, required):
        value = entry.get(key)
        if value is None:
            if required:
                raise StudyError(f"{where}: {key} is missing; give it in minutes after the dose")
            return math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise StudyError(f"{where}: {key} = {value!r} is not a number of minutes >= 0; fix the value")
        return float(value)

    onset = minutes("onset_min", True)
    baseline = minutes("baseline_min", False)
    peak = entry.get("peak_min")
    if peak is None:
        peak_first = peak_last = math.nan
    else:
        if isinstance(peak, (int, float)) and not isinstance(peak, bool):
            peak = [peak, peak]
        if (not isinstance(peak, list) or len(peak) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in peak)
                or peak[0] > peak[1]):
            raise StudyError(f"{where}: peak_min = {peak!r}; write peak_min = [first, last] in minutes")
        peak_first, peak_last = float(peak[0]), float(peak[1])
    if not math.isnan(baseline) and baseline <= onset:
        raise StudyError(f"{where}: baseline_min ({baseline:g}) is not after onset_min ({onset:g}); "
                         "fix one of the two")
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise StudyError(f"{where}: aliases must be a list of names, e.g. aliases = [\"pmTOR\"]")
    return {
        "target": str(entry["name"]),
        "aliases": tuple(aliases),
        "direction": direction,
        "onset_min": onset,
        "peak_first_min": peak_first,
        "peak_last_min": peak_last,
        "baseline_min": baseline,
        "approximate": bool(entry.get("approximate", False)),
        "source": str(entry.get("source", "")),
        "note": str(entry.get("note", "")),
        "origin": origin,
    }


def load_expected_kinetics(path=None, *, overrides=None, overrides_source="study.toml"):
    """Read the expected-kinetics table and apply a study's overrides.

    Parameters
    ----------
    path : str or Path, optional
        A kinetics TOML file with ``[[target]]`` tables; the shipped defaults when None.
    overrides : dict, optional
        ``{target name: {key: value}}`` from a study's ``[kinetics."<target>"]`` tables. An
        override replaces the keys it gives for a known target (matched by name or alias)
        and adds a target that is not known (then ``direction`` and ``onset_min`` are required).
    overrides_source : str
        File name used in error messages about the overrides.

    Returns
    -------
    pandas.DataFrame
        One row per target with the columns of :data:`KINETICS_COLUMNS`; ``origin`` says
        whether the row comes from the defaults, the file or the study.

    Raises
    ------
    StudyError
        If the file or an override is malformed.
    """
    path = Path(path) if path is not None else default_kinetics_path()
    document = read_toml(path, StudyError, missing="kinetics file not found; fix the path in kinetics_file")
    entries = document.get("target", [])
    if not isinstance(entries, list) or not entries:
        raise StudyError(f"{path}: no [[target]] tables; add one per target")
    origin = "default" if path == default_kinetics_path() else path.name
    rows = []
    for number, entry in enumerate(entries, start=1):
        if "name" not in entry:
            raise StudyError(f"{path}: [[target]] {number}: name is missing; add name = \"...\"")
        rows.append(_entry_to_row(entry, where=f"{path.name}: [[target]] {number} ({entry['name']})",
                                  origin=origin))
    by_key = {}
    for row in rows:
        for name in (row["target"], *row["aliases"]):
            by_key[target_key(name)] = row

    for name, changes in (overrides or {}).items():
        where = f"{overrides_source}: [kinetics.\"{name}\"]"
        if not isinstance(changes, dict):
            raise StudyError(f"{where}: must be a table of keys such as onset_min = 15")
        known = by_key.get(target_key(name))
        if known is None:
            new_row = _entry_to_row({"name": name, **changes}, where=where, origin="study")
            rows.append(new_row)
            by_key[target_key(name)] = new_row
            continue
        merged = {
            "name": known["target"],
            "aliases": list(known["aliases"]),
            "direction": known["direction"],
            "onset_min": known["onset_min"],
            "approximate": known["approximate"],
            "source": known["source"],
            "note": known["note"],
        }
        if not math.isnan(known["baseline_min"]):
            merged["baseline_min"] = known["baseline_min"]
        if not math.isnan(known["peak_first_min"]):
            merged["peak_min"] = [known["peak_first_min"], known["peak_last_min"]]
        merged.update(changes)
        if "source" not in changes:
            merged["source"] = f"{overrides_source} (overrides {known['source'] or 'the default'})"
            merged["approximate"] = bool(changes.get("approximate", False))
        replacement = _entry_to_row(merged, where=where, origin="study")
        rows[rows.index(known)] = replacement
        for alias in (replacement["target"], *replacement["aliases"]):
            by_key[target_key(alias)] = replacement
    return pd.DataFrame(rows, columns=list(KINETICS_COLUMNS))


def kinetics_for_targets(targets, kinetics):
    """Look up the expected kinetics of each study target by name or alias.

    Parameters
    ----------
    targets : iterable of str
        Target names as written in the study.
    kinetics : pandas.DataFrame
        A table from :func:`load_expected_kinetics`.

    Returns
    -------
    pandas.DataFrame
        One row per study target that is known, with the study's spelling in ``target``
        and the table's own name in ``kinetics_name``. Unknown targets are left out.
    """
    lookup = {}
    for index, row in kinetics.iterrows():  # a few dozen rows: building a name index
        for name in (row["target"], *row["aliases"]):
            lookup.setdefault(target_key(name), index)
    targets = list(dict.fromkeys(targets))
    found = [(t, lookup[target_key(t)]) for t in targets if target_key(t) in lookup]
    if not found:
        return pd.DataFrame(columns=["kinetics_name", *KINETICS_COLUMNS])
    matched = kinetics.loc[[index for _, index in found]].reset_index(drop=True)
    matched.insert(0, "kinetics_name", matched["target"])
    matched["target"] = [t for t, _ in found]
    return matched


def classify_post_dose_time(minutes, onset_min, baseline_min):
    """Say where post-dose times lie relative to an expected window of change.

    Parameters
    ----------
    minutes : array_like
        Post-dose times in minutes (NaN when unknown).
    onset_min, baseline_min : float or array_like
        Start of the window and the time back at baseline (NaN: no return expected).

    Returns
    -------
    numpy.ndarray of str
        ``"before_onset"``, ``"in_window"``, ``"after_baseline"`` or ``"unknown"``.

    Examples
    --------
    >>> classify_post_dose_time([10, 30, 240, float("nan")], 15, 120).tolist()
    ['before_onset', 'in_window', 'after_baseline', 'unknown']
    """
    minutes = np.asarray(minutes, dtype=float)
    onset = np.broadcast_to(np.asarray(onset_min, dtype=float), minutes.shape)
    baseline = np.broadcast_to(np.asarray(baseline_min, dtype=float), minutes.shape)
    result = np.full(minutes.shape, "in_window", dtype=object)
    result[minutes < onset] = "before_onset"
    result[~np.isnan(baseline) & (minutes >= baseline)] = "after_baseline"
    result[np.isnan(minutes) | np.isnan(onset)] = "unknown"
    return result


def describe_window(row):
    """One plain-words sentence for a kinetics row, used in flag messages and the report."""
    change = "elevated" if row["direction"] == "up" else "reduced"
    if math.isnan(row["baseline_min"]):
        window = f"{change} from about {row['onset_min']:g} min on"
    else:
        window = f"{change} from about {row['onset_min']:g} to {row['baseline_min']:g} min"
    if not math.isnan(row["peak_first_min"]):
        if row["peak_first_min"] == row["peak_last_min"]:
            window += f", largest change near {row['peak_first_min']:g} min"
        else:
            window += f", largest change near {row['peak_first_min']:g}-{row['peak_last_min']:g} min"
    if row["approximate"]:
        window += " (approximate)"
    return f"{row['target']} is expected to be {window} after the dose"
