"""Molecular-weight ladders: band sizes in kDa from a marker lane or from marks made by hand.

A ladder lane is measured like any other lane (its bands are found on its
lane profile by :func:`blotquant.bands.find_band_peaks`), its bands are
matched to the sizes of a named ladder (``blotquant/data/ladders.toml``) or
to sizes the user gives, and log10(kDa) is fitted against the row
(migration) with a monotone curve. A user may also give sizes and rows
directly, for example the pen marks drawn at the 100, 75 and 50 kDa marker
positions on a membrane.

Sizes come with an uncertainty and are never extrapolated: a row above the
largest or below the smallest marker has no size (NaN, with the reason).

The stages are plain functions and small classes over arrays:

* :func:`find_ladder` / :func:`load_ladders`: the ladder table;
* :func:`ladder_band_rows`: band centres of a ladder lane's profile;
* :func:`match_ladder`: which detected band is which size;
* :class:`SizeCurve`: the fitted curve of one ladder (or one set of marks);
* :class:`SizeCalibration`: sizes anywhere on a strip from one ladder, or
  from ladders on both sides (interpolated across the lanes: smile, tilt).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
from scipy.interpolate import PchipInterpolator

from ._shared import read_csv_columns, read_toml
from .bands import band_centroid, find_band_peaks
from .errors import LadderError

#: Fewest bands of a named ladder that must be matched in a ladder lane.
MIN_LADDER_BANDS = 4
#: A size curve whose markers it misses by more than this share (a marker
#: left out and predicted from the others, or the fit's own residual) is
#: reported as a warning.
LADDER_FIT_TOLERANCE = 0.10
#: Standard uncertainty (rows) of a band centre found on a lane profile: the centre of a band
#: whose ends curve up, measured in a window shared by its row, is not known better than this
#: (on the synthetic blots of benchmarks/ladder.py, with 0.5 px the true size lay within two
#: ``kda_sd`` for about 60 % of the bands of the log-linear family; with 1 px for 80-90 %).
DETECTED_ROW_SD = 1.0
#: Standard uncertainty of the lanes' lean (dx/dy) along which a band's row is carried to a
#: single ladder's lane: its rows' uncertainty grows by this much per column of distance.
CARRY_SLOPE_SD = 0.002
#: Standard uncertainty (rows) of a mark given by hand (a pen mark read off the image).
MARK_ROW_SD = 1.5
#: Rows this close beyond the first or last marker still get the end marker's size: a band
#: centre measured a fraction of a pixel beyond a marker (the marker's own band, measured in a
#: harmonised window) is not an extrapolation.
EDGE_TOLERANCE_ROWS = 1.0
#: Curve methods of :class:`SizeCurve`.
CURVE_METHODS = ("auto", "pchip", "quadratic", "linear")

# Costs of a ladder assignment (lower is better; see match_ladder).
_MATCH_REWARD = 1.0  # each detected band given a size
_SKIPPED_SIZE_COST = 0.6  # a size missing between two matched bands (a band not seen)
_END_SIZE_COST = 0.1  # a size beyond the first or last matched band (run off the gel, cropped)
_BEND_WEIGHT = 2.0  # per (ln ratio of consecutive slopes)^2: how much the curve bends
#: A different assignment of any matched band must cost this much more, or the match is ambiguous.
_AMBIGUITY_MARGIN = 0.5
# Rescoring of the candidate assignments by how far each band is off its neighbours' curve.
_STENCIL_SD = 0.01  # log10 units (2.3 % in size): what a smooth migration curve allows
_STENCIL_WEIGHT = 0.1
_STENCIL_CAP = 16.0  # per band, so that one stray band cannot outweigh all the others
#: A matched band farther than this (log10) off the curve through its neighbours means no match.
_MAX_STENCIL_ERROR = 0.05


# --------------------------------------------------------------------------
# The ladder table
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Ladder:
    """A molecular-weight ladder: its band sizes from the top of the gel down.

    Attributes
    ----------
    key : str
        Short name in the ladder table (``"custom"`` for sizes given by the user).
    name : str
        Product name.
    kda : tuple of float
        Band sizes in kDa, strictly decreasing (top to bottom).
    catalog, aliases, uncertain : tuple
        Catalogue numbers, other names, and entries marked uncertain in the table.
    source, note : str
        Where the sizes come from; anything else.
    """

    key: str
    name: str
    kda: tuple
    catalog: tuple = ()
    aliases: tuple = ()
    uncertain: tuple = ()
    source: str = ""
    note: str = ""


def default_ladders_path():
    """Path of the ladder table shipped with blotquant."""
    return Path(str(files("blotquant") / "data" / "ladders.toml"))


def _name_key(text):
    """Normalise a ladder name for matching: case, spaces, dashes and dots are ignored."""
    return re.sub(r"[^0-9a-z]+", "", str(text).lower())


@functools.lru_cache(maxsize=8)
def _load_ladders_cached(path_text):
    path = Path(path_text)
    document = read_toml(path, LadderError, missing="ladder table not found")
    entries = document.get("ladder")
    if not isinstance(entries, dict) or not entries:
        raise LadderError(f"{path}: no [ladder.<key>] tables; add one per ladder")
    ladders = {}
    for key, entry in entries.items():
        where = f"{path.name}: [ladder.{key}]"
        if not isinstance(entry, dict) or "kda" not in entry:
            raise LadderError(f"{where}: kda is missing; give the band sizes top to bottom, kda = [250, 150, ...]")
        ladders[key] = Ladder(
            key=key,
            name=str(entry.get("name", key)),
            kda=_checked_sizes(entry["kda"], where=where),
            catalog=tuple(str(c) for c in entry.get("catalog", ())),
            aliases=tuple(str(a) for a in entry.get("aliases", ())),
            uncertain=tuple(entry.get("uncertain", ())),
            source=str(entry.get("source", "")),
            note=str(entry.get("note", "")),
        )
    return ladders


def load_ladders(path=None):
    """Read a ladder table.

    Parameters
    ----------
    path : str or pathlib.Path, optional
        A TOML file of ``[ladder.<key>]`` tables; by default the one shipped
        with blotquant (:func:`default_ladders_path`).

    Returns
    -------
    dict
        ``key -> Ladder``, in the file's order.

    Examples
    --------
    >>> ladders = load_ladders()
    >>> ladders["precision_plus_dual_color"].kda[:4]
    (250.0, 150.0, 100.0, 75.0)
    """
    return dict(_load_ladders_cached(str(Path(path) if path is not None else default_ladders_path())))


def find_ladder(spec, *, path=None):
    """The ladder a user means: a key, name, alias or catalogue number, or the sizes themselves.

    Parameters
    ----------
    spec : str, Ladder or sequence of float
        ``"precision_plus_dual_color"``, ``"PageRuler Plus"``, ``"26619"``;
        or sizes in kDa (``[100, 75, 50]``, or the text ``"100,75,50"``),
        which are sorted from the largest (top) down.
    path : path, optional
        Ladder table to look names up in.

    Returns
    -------
    Ladder

    Raises
    ------
    LadderError
        For a name that is in no table entry, or sizes that are not at
        least two different positive numbers.

    Examples
    --------
    >>> find_ladder("PageRuler Plus").key
    'pageruler_plus_prestained'
    >>> find_ladder("100, 75, 50").kda
    (100.0, 75.0, 50.0)
    """
    if isinstance(spec, Ladder):
        return spec
    if isinstance(spec, str):
        if re.fullmatch(r"[\d.\s,;]+", spec) and re.search(r"[,;]", spec):
            numbers = [float(part) for part in re.split(r"[,;\s]+", spec.strip()) if part]
            return _custom_ladder(numbers)
        wanted = _name_key(spec)
        ladders = load_ladders(path)
        for ladder in ladders.values():
            names = (ladder.key, ladder.name, *ladder.aliases, *ladder.catalog)
            if wanted in {_name_key(name) for name in names}:
                return ladder
        raise LadderError(f"unknown ladder {spec!r}; known ladders: {', '.join(ladders)} "
                          "(or give the sizes in kDa, top to bottom, e.g. 250,150,100,75,50)")
    try:
        numbers = [float(value) for value in spec]
    except (TypeError, ValueError):
        raise LadderError(f"a ladder is a name or a list of sizes in kDa, not {spec!r}") from None
    return _custom_ladder(numbers)


def _custom_ladder(numbers):
    sizes = _checked_sizes(sorted(numbers, reverse=True), where="ladder sizes")
    return Ladder(key="custom", name="sizes given (" + ", ".join(f"{s:g}" for s in sizes) + " kDa)", kda=sizes)


def _checked_sizes(values, *, where):
    try:
        sizes = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise LadderError(f"{where}: sizes must be numbers in kDa, got {values!r}") from None
    if len(sizes) < 2 or not all(np.isfinite(sizes)) or min(sizes) <= 0:
        raise LadderError(f"{where}: give at least two positive sizes in kDa, got {list(values)!r}")
    if np.any(np.diff(sizes) >= 0):
        raise LadderError(f"{where}: sizes must be different and decrease top to bottom, got {list(values)!r}")
    return sizes


# --------------------------------------------------------------------------
# The ladder lane's bands
# --------------------------------------------------------------------------


def ladder_band_rows(profile, *, min_snr=4.0, min_relative_height=0.05):
    """Centre rows of the bands of a ladder lane.

    The bands are found as in any lane (:func:`blotquant.bands.find_band_peaks`)
    and their centres taken as in ``bands.csv`` (:func:`blotquant.bands.band_centroid`);
    peaks under ``min_relative_height`` of the lane's strongest band are left
    out (ladders' bands differ in strength, but not twentyfold).

    Parameters
    ----------
    profile : blotquant.bands.LaneProfile
        The ladder lane's profile.
    min_snr : float
        Detection threshold of a band peak, in noise standard deviations.
    min_relative_height : float
        Share of the strongest band's peak below which a peak is dropped.

    Returns
    -------
    rows, heights : (k,) float arrays
        Centre rows (image coordinates, top to bottom) and peak heights.
    """
    found = find_band_peaks(profile, min_snr=min_snr)
    if not found:
        return np.empty(0), np.empty(0)
    peaks = np.array([peak for peak, _, _ in found])
    heights = profile.robust[peaks].astype(float)
    keep = heights >= min_relative_height * heights.max()
    rows = np.array([band_centroid(profile, top, bottom, peak) for (peak, top, bottom), kept in zip(found, keep)
                     if kept])
    return rows, heights[keep]


# --------------------------------------------------------------------------
# Matching detected bands to sizes
# --------------------------------------------------------------------------


@dataclass
class LadderMatch:
    """Which detected ladder band is which size.

    Attributes
    ----------
    rows, kda : (k,) float arrays
        Rows and sizes of the matched bands, top to bottom.
    band_index, size_index : (k,) int arrays
        Their indices into the detected rows and into the ladder's sizes.
    unmatched_rows : (float array)
        Detected bands given no size (extras: a smear, a non-ladder band).
    missing_kda : (float array)
        Ladder sizes no band was matched to.
    cost : float
        Cost of the assignment (lower is better; see :func:`match_ladder`).
    margin : float
        How much more the best assignment that sizes any matched band
        differently costs (``inf`` when there is none).
    """

    rows: np.ndarray
    kda: np.ndarray
    band_index: np.ndarray
    size_index: np.ndarray
    unmatched_rows: np.ndarray
    missing_kda: np.ndarray
    cost: float
    margin: float


def match_ladder(rows, kda, *, min_bands=MIN_LADDER_BANDS, name="the ladder"):
    """Match detected ladder bands to a ladder's sizes, allowing missing and extra bands.

    The sizes are known in their order down the lane, and so are the
    detected bands; some sizes may not have been found (faint, run off the
    gel, cropped) and some detected bands may not belong to the ladder.
    Among the order-preserving assignments of sizes to bands, the one that
    matches the most bands along the smoothest curve is chosen, in two
    stages. First a dynamic programme over (band, size) pairs, run down the
    lane and up it, finds the cheapest assignment through every pair; an
    assignment earns ``_MATCH_REWARD`` per matched band and costs
    ``_BEND_WEIGHT`` times the squared log ratio of each two consecutive
    slopes (log10 kDa per row), ``_SKIPPED_SIZE_COST`` per size missing
    between matched bands and ``_END_SIZE_COST`` per size beyond the first
    and last of them. These candidates are then scored again with the same
    rewards and skips, but with the bends replaced by how far each matched
    band lies from the cubic through its two neighbours on either side
    (``_STENCIL_*``): a real migration curve bends a lot (its slope can
    change several-fold from the top of a gel to the bottom) but smoothly,
    which this check allows, while a band given its neighbour's size sits
    well off it. The cheapest candidate wins; when one that sizes any of its
    bands differently costs less than ``_AMBIGUITY_MARGIN`` more, the lane is
    refused as ambiguous instead of decided by chance.

    Parameters
    ----------
    rows : (m,) array_like
        Centre rows of the detected bands (any order).
    kda : (n,) array_like
        The ladder's sizes, top to bottom (strictly decreasing).
    min_bands : int
        Fewest bands that must be matched.
    name : str
        The ladder's name, for messages.

    Returns
    -------
    LadderMatch

    Raises
    ------
    LadderError
        Too few bands, no assignment whose curve is smooth (the wrong ladder
        named, or a lane that is no ladder), or two nearly equal assignments.

    Examples
    --------
    >>> sizes = [250, 150, 100, 75, 50, 37, 25, 20, 15, 10]
    >>> rows = 900 - 400 * np.log10(sizes)            # log-linear migration
    >>> rows = np.delete(rows, 5)                     # the 37 kDa band not seen
    >>> rows = np.append(rows, 560.0)                 # and a band that is not the ladder's
    >>> found = match_ladder(rows, sizes)
    >>> found.missing_kda.tolist(), found.unmatched_rows.tolist()
    ([37.0], [560.0])
    """
    positions = np.sort(np.asarray(rows, dtype=float).ravel())
    sizes = np.asarray(_checked_sizes(kda, where=name))
    min_bands = max(2, int(min_bands))
    if positions.size < min_bands or sizes.size < min_bands:
        raise LadderError(f"{positions.size} band(s) found where {name} needs at least {min_bands} of its "
                          f"{sizes.size} to be matched; give the sizes and rows of the marks instead")
    if not np.all(np.isfinite(positions)) or np.any(np.diff(positions) <= 0):
        raise LadderError(f"ladder band rows must be finite and different, got {positions.tolist()}")
    log_sizes = np.log10(sizes)
    m, n = positions.size, sizes.size
    chains = _candidate_chains(_chain_table(positions, log_sizes), _chain_table(-positions[::-1], log_sizes[::-1]))
    if not chains:
        raise LadderError(f"the {m} bands found cannot be matched to {name}")
    scored = sorted((_assignment_cost(positions, log_sizes, bands, sizes_index), tuple(bands), tuple(sizes_index))
                    for bands, sizes_index in chains)
    best_total, best_bands, best_sizes = scored[0]
    band_index, size_index = np.array(best_bands), np.array(best_sizes)

    where = f"{len(band_index)} of the {m} bands found match {name}"
    if len(band_index) < min_bands:
        raise LadderError(f"only {where} (at least {min_bands} must); check the ladder's name, "
                          "or give the sizes and rows of the marks instead")
    errors, at_end = _stencil_errors(positions[band_index], log_sizes[size_index])
    misfit = float(np.nanmax(np.abs(errors[~at_end]), initial=0.0))
    if misfit > _MAX_STENCIL_ERROR:
        raise LadderError(f"{where}, but their spacing does not follow its sizes (a band is "
                          f"{10 ** misfit:.2f}-fold off the curve through its neighbours); "
                          f"the lane does not look like {name}: check the ladder's name")
    mapping = dict(zip(best_bands, best_sizes))
    margin = np.inf
    for cost, bands, sizes_index in scored[1:]:
        if any(mapping.get(band, size) != size for band, size in zip(bands, sizes_index)):
            margin = cost - best_total
            break
    if margin < _AMBIGUITY_MARGIN:
        raise LadderError(f"{where}, but another assignment of sizes fits about as well; the lane is "
                          f"ambiguous for {name}: give the sizes and rows of the marks instead")
    matched_bands = set(band_index.tolist())
    matched_sizes = set(size_index.tolist())
    return LadderMatch(
        rows=positions[band_index],
        kda=sizes[size_index],
        band_index=band_index,
        size_index=size_index,
        unmatched_rows=positions[[i for i in range(m) if i not in matched_bands]],
        missing_kda=sizes[[j for j in range(n) if j not in matched_sizes]],
        cost=best_total,
        margin=float(margin),
    )


def _candidate_chains(forward, backward):
    """Assignments worth scoring: the best chain through each (band, size) node.

    ``forward`` and ``backward`` are the chain tables of the lane and of the
    lane read bottom up; together they give the cheapest chain through every
    edge. Returns a set of (band indices, size indices) pairs.
    """
    k_nodes = forward.cost.shape[0]
    edges = np.isfinite(forward.step)
    reverse = backward.cost[::-1, ::-1].T
    through = np.where(edges, forward.cost + reverse - np.where(edges, forward.step, 0.0) + _MATCH_REWARD, np.inf)
    best_out, best_in = np.argmin(through, axis=1), np.argmin(through, axis=0)
    nodes = np.arange(k_nodes)
    picks = {(int(a), int(b)) for a, b in zip(nodes, best_out) if np.isfinite(through[a, b])}
    picks |= {(int(a), int(b)) for a, b in zip(best_in, nodes) if np.isfinite(through[a, b])}
    chains = set()
    for a, b in picks:
        head = _backtrack(forward.back, a, b)
        tail = (k_nodes - 1 - _backtrack(backward.back, k_nodes - 1 - b, k_nodes - 1 - a))[::-1]
        chain = np.concatenate([head[:-2], tail])
        chains.add((tuple(forward.band_of[chain]), tuple(forward.size_of[chain])))
    return chains


def _assignment_cost(positions, log_sizes, bands, sizes_index):
    """Cost of one assignment: rewards and skipped sizes, and how far each band is off its neighbours' curve."""
    bands, sizes_index = np.asarray(bands), np.asarray(sizes_index)
    cost = (-_MATCH_REWARD * bands.size + _SKIPPED_SIZE_COST * float(np.sum(np.diff(sizes_index) - 1))
            + _END_SIZE_COST * float(sizes_index[0] + log_sizes.size - 1 - sizes_index[-1]))
    errors, at_end = _stencil_errors(positions[bands], log_sizes[sizes_index])
    scale = np.where(at_end, 3.0, 1.0) * _STENCIL_SD
    terms = np.minimum((errors / scale) ** 2, _STENCIL_CAP)
    return cost + _STENCIL_WEIGHT * float(np.nansum(terms))


def _stencil_errors(rows, log_sizes):
    """Each marker's log size minus the polynomial through its neighbours, evaluated at its row.

    The neighbours are the two markers on each side (a cubic), fewer near
    the ends (a quadratic); the first and last markers are predicted from the
    three next to them (a quadratic, extrapolated: ``at_end`` true). A smooth
    migration curve passes close to every marker; a band given its
    neighbour's size sits far off. NaN where there are too few neighbours.
    """
    count = rows.size
    k = np.arange(count)[:, None]
    inner = k + np.array([-2, -1, 1, 2])
    at_end = ~(((inner[:, 1] >= 0) & (inner[:, 2] < count)))
    outer = np.where(inner[:, 1:2] >= 0, k + np.array([-3, -2, -1]), k + np.array([1, 2, 3]))
    errors = log_sizes - _lagrange_at(rows, log_sizes, inner, rows)
    errors[at_end] = (log_sizes - _lagrange_at(rows, log_sizes, outer, rows))[at_end]
    return errors, at_end


def _lagrange_at(x, y, index, at):
    """Value at ``at[k]`` of the polynomial through the points ``index[k]`` (those inside 0..n-1) of (x, y).

    NaN where fewer than two of the points exist (or for ends, three).
    """
    n = x.size
    mask = (index >= 0) & (index < n)
    clipped = np.clip(index, 0, n - 1)
    xs, ys = x[clipped], y[clipped]
    width = index.shape[1]
    same = np.eye(width, dtype=bool)[None, :, :]
    use = mask[:, None, :] & ~same  # (k, j, m): the factor for m in point j's basis polynomial
    numerator = at[:, None, None] - xs[:, None, :]
    denominator = xs[:, :, None] - xs[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        factors = np.where(use, numerator / np.where(use, denominator, 1.0), 1.0)
    weights = np.prod(factors, axis=2)
    value = np.sum(np.where(mask, ys * weights, 0.0), axis=1)
    enough = mask.sum(axis=1) >= (3 if width == 3 else 2)
    return np.where(enough, value, np.nan)


@dataclass
class _ChainTable:
    cost: np.ndarray  # (K, K): best chain ending with the edge a -> b
    back: np.ndarray  # (K, K): the node before a in that chain, -1 at its start
    step: np.ndarray  # (K, K): cost of the edge a -> b (reward of b, sizes skipped)
    band_of: np.ndarray  # (K,) band index of each node
    size_of: np.ndarray  # (K,) size index of each node


def _chain_table(positions, log_sizes):
    """Dynamic programme over chains of (band, size) nodes increasing in both.

    A node is a band given a size; an edge joins two nodes of a chain. The
    table holds, for every edge, the cheapest chain that ends with it, so
    the cost of a bend (three consecutive nodes) can be added as the chain
    grows. Nodes are processed in the order of their band, so every chain
    ending at a node is final before chains are continued from it.
    """
    m, n = positions.size, log_sizes.size
    band_of, size_of = np.divmod(np.arange(m * n), n)
    band_gap = band_of[None, :] - band_of[:, None]
    size_gap = size_of[None, :] - size_of[:, None]
    valid = (band_gap > 0) & (size_gap > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (log_sizes[size_of][None, :] - log_sizes[size_of][:, None]) / (
            positions[band_of][None, :] - positions[band_of][:, None])
        log_slope = np.where(valid, np.log(np.abs(slope)), np.nan)
    step = np.where(valid, _SKIPPED_SIZE_COST * (size_gap - 1) - _MATCH_REWARD, np.inf)
    start = _END_SIZE_COST * size_of - _MATCH_REWARD
    cost = start[:, None] + step
    back = np.full(cost.shape, -1, dtype=np.intp)
    for middle in np.argsort(band_of, kind="stable"):
        before = np.flatnonzero(valid[:, middle])
        after = np.flatnonzero(valid[middle, :])
        if before.size == 0 or after.size == 0:
            continue
        bend = _BEND_WEIGHT * (log_slope[middle, after][None, :] - log_slope[before, middle][:, None]) ** 2
        candidates = cost[before, middle][:, None] + bend
        best = np.argmin(candidates, axis=0)
        value = candidates[best, np.arange(after.size)] + step[middle, after]
        better = value < cost[middle, after]
        cost[middle, after[better]] = value[better]
        back[middle, after[better]] = before[best[better]]
    return _ChainTable(cost=cost, back=back, step=step, band_of=band_of, size_of=size_of)


def _backtrack(back, first, second):
    chain = [second, first]
    while back[first, second] >= 0:
        first, second = back[first, second], first
        chain.append(first)
    return np.array(chain[::-1], dtype=np.intp)


def identify_ladder(rows, *, ladders=None, min_bands=MIN_LADDER_BANDS):
    """The ladder of a table that best matches a ladder lane's bands.

    Every ladder is matched (:func:`match_ladder`); the cheapest match wins.
    Ladders with the same sizes (Bio-Rad's Precision Plus family) are one
    candidate. When two ladders with different sizes match about equally
    well, the lane cannot tell them apart and the ladder must be named.

    Parameters
    ----------
    rows : array_like
        Centre rows of the ladder lane's bands.
    ladders : dict, optional
        ``key -> Ladder``; by default :func:`load_ladders`.
    min_bands : int
        Fewest bands that must be matched.

    Returns
    -------
    (Ladder, LadderMatch)

    Raises
    ------
    LadderError
        When no ladder matches, or two different ladders match equally well.
    """
    ladders = load_ladders() if ladders is None else ladders
    results, errors, seen = [], [], set()
    for ladder in ladders.values():
        if ladder.kda in seen:
            continue
        seen.add(ladder.kda)
        try:
            results.append((match_ladder(rows, ladder.kda, min_bands=min_bands, name=ladder.name), ladder))
        except LadderError as error:
            errors.append(f"{ladder.key}: {error}")
    if not results:
        raise LadderError(f"the ladder lane matches none of the known ladders ({', '.join(ladders)}); name the "
                          "ladder or give its sizes")
    results.sort(key=lambda item: item[0].cost)
    best_match, best = results[0]
    if len(results) > 1 and results[1][0].cost - best_match.cost < _AMBIGUITY_MARGIN:
        raise LadderError(f"the ladder lane matches {best.key} and {results[1][1].key} about equally well; "
                          "name the ladder (--ladder NAME)")
    return best, best_match


def match_ladder_lane(rows, ladder=None, *, ladders=None, min_bands=MIN_LADDER_BANDS):
    """Match a ladder lane's bands to the ladder named, checking that no other known ladder fits better.

    A lane can often be matched in part to the wrong ladder: a run of its
    sizes laid along some of the bands, on a smooth enough curve. When a
    ladder of the table (with other sizes) explains the same bands at least
    one band better (:data:`_MATCH_REWARD`), the name is refused and the
    better ladder named in the message. Sizes given as numbers are checked
    against the table the same way only when they fail to match.

    Parameters
    ----------
    rows : array_like
        Centre rows of the lane's bands.
    ladder : str, Ladder or sequence of float, optional
        The ladder on the blot (see :func:`find_ladder`); ``None`` picks the
        best of the table (:func:`identify_ladder`).
    ladders : dict, optional
        The table (default :func:`load_ladders`).
    min_bands : int
        Fewest bands that must be matched.

    Returns
    -------
    (Ladder, LadderMatch)
    """
    table = load_ladders() if ladders is None else ladders
    if ladder is None:
        return identify_ladder(rows, ladders=table, min_bands=min_bands)
    named = find_ladder(ladder)
    try:
        found = match_ladder(rows, named.kda, min_bands=min_bands, name=named.name)
    except LadderError as error:
        others = {key: other for key, other in table.items() if other.kda != named.kda}
        try:
            better, _ = identify_ladder(rows, ladders=others, min_bands=min_bands)
        except LadderError:
            raise error from None
        raise LadderError(f"the lane's bands do not match {named.name} but match {better.key} ({better.name}); "
                          "check the ladder's name") from None
    for other in table.values():
        if other.kda == named.kda:
            continue
        try:
            rival = match_ladder(rows, other.kda, min_bands=min_bands, name=other.name)
        except LadderError:
            continue
        if rival.cost < found.cost - _MATCH_REWARD:
            raise LadderError(f"the lane's bands fit {other.key} ({rival.rows.size} matched) better than {named.name} "
                              f"({found.rows.size} matched); check the ladder's name")
    return named, found


# --------------------------------------------------------------------------
# The size curve of one ladder
# --------------------------------------------------------------------------


class SizeCurve:
    """log10(kDa) against row, fitted through the markers of one ladder.

    Parameters
    ----------
    rows : (n,) array_like
        Rows of the markers (band centres or pen marks), image coordinates.
    kda : (n,) array_like
        Their sizes; larger sizes must lie higher up (smaller rows).
    method : {"auto", "pchip", "quadratic", "linear"}
        ``pchip``: a monotone cubic through every marker
        (:class:`scipy.interpolate.PchipInterpolator`); ``quadratic``: a
        2nd-degree polynomial (least squares from four markers on, refused
        when it turns back between the markers); ``linear``: a straight line
        (least squares). ``auto``: a line through two markers, the quadratic
        through three (pchip where it would turn back), pchip from four on.
    row_sd : float
        Standard uncertainty of each marker's row, in pixels.
    label : str
        What the markers are (``"strip 1, lane 1"``), for messages.

    Attributes
    ----------
    rows, kda, log10_kda : (n,) arrays
        The markers, top to bottom.
    method : str
        The method used (``auto`` resolved).
    fit_errors : (n,) array
        The curve's size at each marker over the marker's size, minus 1
        (zero for curves through every marker).
    loo_errors : (n,) array
        The same with the marker left out of the fit (NaN for the first and
        last, which cannot be predicted without extrapolating).
    max_error : float
        The largest of both in size (NaN for two markers).

    Notes
    -----
    The uncertainty of a size (:meth:`size`) adds in quadrature the spread of
    other plausible curves through the same markers around this one (a
    monotone cubic, a straight line between neighbouring markers, the
    least-squares quadratic) and the rows' uncertainty (the markers' and the
    band's) times the curve's slope. With two markers only the second term
    exists: nothing says how the curve bends between them.

    Examples
    --------
    >>> curve = SizeCurve([120, 170, 260], [100, 75, 50])
    >>> kda, sd = curve.size([120, 200, 300])
    >>> np.round(kda, 1).tolist()
    [100.0, 64.5, nan]
    """

    def __init__(self, rows, kda, *, method="auto", row_sd=DETECTED_ROW_SD, label="the ladder"):
        rows = np.asarray(rows, dtype=float).ravel()
        kda = np.asarray(kda, dtype=float).ravel()
        if method not in CURVE_METHODS:
            raise LadderError(f"unknown size curve method {method!r}; choose one of {', '.join(CURVE_METHODS)}")
        if rows.size != kda.size or rows.size < 2:
            raise LadderError(f"{label}: a size curve needs at least two markers, each a row and a size; "
                              f"got {rows.size} row(s) and {kda.size} size(s)")
        if not (np.all(np.isfinite(rows)) and np.all(np.isfinite(kda)) and np.all(kda > 0)):
            raise LadderError(f"{label}: marker rows and sizes must be finite and sizes positive")
        order = np.argsort(rows, kind="stable")
        rows, kda = rows[order], kda[order]
        if np.any(np.diff(rows) <= 0):
            raise LadderError(f"{label}: two markers share row {rows[np.argmin(np.diff(rows))]:g}")
        if np.any(np.diff(kda) >= 0):
            k = int(np.argmax(np.diff(kda) >= 0))
            raise LadderError(f"{label}: {kda[k + 1]:g} kDa at row {rows[k + 1]:g} lies below {kda[k]:g} kDa at "
                              f"row {rows[k]:g}; larger sizes run less far, so the marks are out of order")
        if not np.isfinite(row_sd) or row_sd < 0:
            raise LadderError(f"{label}: row_sd must be a number of pixels >= 0, not {row_sd!r}")
        self.rows, self.kda, self.log10_kda = rows, kda, np.log10(kda)
        self.row_sd = float(row_sd)
        self.label = label
        self.method, self._curve = _fit_curve(rows, self.log10_kda, method, label=label)
        self._alternatives = [curve for name, curve in _plausible_curves(rows, self.log10_kda) if name != self.method]
        self.fit_errors = 10 ** (self._curve(rows) - self.log10_kda) - 1
        #: (smallest, largest) log10 size the curve reaches between its end markers.
        self.log10_span = (float(self._curve(rows[-1])), float(self._curve(rows[0])))
        self.loo_errors = self._leave_one_out(method)
        both = np.concatenate([np.abs(self.fit_errors), np.abs(self.loo_errors)])
        self.max_error = float(np.nanmax(both)) if rows.size > 2 else float("nan")

    def __repr__(self):
        return (f"SizeCurve({self.label}: {self.method} through {self.rows.size} markers, "
                f"{self.kda.max():g}-{self.kda.min():g} kDa at rows {self.rows[0]:g}-{self.rows[-1]:g})")

    @property
    def kda_range(self):
        """(smallest, largest) size the curve covers."""
        return float(self.kda.min()), float(self.kda.max())

    def _leave_one_out(self, method):
        errors = np.full(self.rows.size, np.nan)
        for k in range(1, self.rows.size - 1):
            keep = np.arange(self.rows.size) != k
            # The same choice of method as for the whole, on one marker fewer.
            _, curve = _fit_curve(self.rows[keep], self.log10_kda[keep], method, label=self.label, strict=False)
            errors[k] = 10 ** (float(curve(self.rows[k])) - self.log10_kda[k]) - 1
        return errors

    def _inside(self, rows):
        """Which rows lie within the markers (up to :data:`EDGE_TOLERANCE_ROWS`), and those rows clipped."""
        rows = np.asarray(rows, dtype=float)
        inside = (rows >= self.rows[0] - EDGE_TOLERANCE_ROWS) & (rows <= self.rows[-1] + EDGE_TOLERANCE_ROWS)
        return inside, np.clip(rows[inside], self.rows[0], self.rows[-1])

    def log10_kda_at(self, rows):
        """log10 of the size at each row; NaN outside the markers' rows (never extrapolated)."""
        inside, clipped = self._inside(rows)
        values = np.full(inside.shape, np.nan)
        values[inside] = self._curve(clipped)
        return values

    def log10_sd_at(self, rows, *, band_row_sd=DETECTED_ROW_SD):
        """Standard uncertainty of :meth:`log10_kda_at` (see the class notes); NaN outside."""
        inside, r = self._inside(rows)
        band_row_sd = np.broadcast_to(np.asarray(band_row_sd, dtype=float), inside.shape)[inside]
        sd = np.full(inside.shape, np.nan)
        primary = self._curve(r)
        spread = (np.mean([(alternative(r) - primary) ** 2 for alternative in self._alternatives], axis=0)
                  if self._alternatives else np.zeros(r.shape))
        slope = self._curve.derivative()(r)
        position = (slope ** 2) * (self.row_sd ** 2 + band_row_sd ** 2)
        sd[inside] = np.sqrt(spread + position)
        return sd

    def size(self, rows, *, band_row_sd=DETECTED_ROW_SD):
        """Size in kDa and its standard uncertainty at each row (NaN outside the markers).

        Parameters
        ----------
        rows : array_like
            Image rows (band centres).
        band_row_sd : float
            Standard uncertainty of each band's row.

        Returns
        -------
        kda, kda_sd : arrays shaped like ``rows``
        """
        kda = 10 ** self.log10_kda_at(rows)
        return kda, kda * np.log(10.0) * self.log10_sd_at(rows, band_row_sd=band_row_sd)

    def rows_at(self, log10_kda):
        """Row at which each size (log10 kDa) sits: the inverse of the curve; NaN outside."""
        log10_kda = np.asarray(log10_kda, dtype=float)
        grid = np.linspace(self.rows[0], self.rows[-1], max(512, 8 * self.rows.size))
        values = self._curve(grid)
        # The curve decreases with the row; np.interp needs increasing abscissae.
        result = np.interp(log10_kda, values[::-1], grid[::-1], left=np.nan, right=np.nan)
        return result

    def summary(self):
        """The curve as plain numbers, for ``run.json``."""
        return {
            "label": self.label,
            "method": self.method,
            "rows": [round(float(r), 2) for r in self.rows],
            "kda": [float(k) for k in self.kda],
            "fit_error": [round(float(e), 4) for e in self.fit_errors],
            "leave_one_out_error": [None if not np.isfinite(e) else round(float(e), 4) for e in self.loo_errors],
            "max_error": None if not np.isfinite(self.max_error) else round(self.max_error, 4),
        }


class _Polynomial:
    """A polynomial with the callable-and-derivative interface of PchipInterpolator."""

    def __init__(self, coefficients):
        self.coefficients = np.asarray(coefficients, dtype=float)

    def __call__(self, x):
        return np.polyval(self.coefficients, x)

    def derivative(self):
        return _Polynomial(np.polyder(self.coefficients)) if self.coefficients.size > 1 else _Polynomial([0.0])


class _PiecewiseLinear:
    def __init__(self, rows, values):
        self.rows, self.values = rows, values

    def __call__(self, x):
        return np.interp(x, self.rows, self.values)

    def derivative(self):
        slopes = np.diff(self.values) / np.diff(self.rows)
        rows = self.rows

        class _Steps:
            def __call__(self, x):
                index = np.clip(np.searchsorted(rows, x, side="right") - 1, 0, slopes.size - 1)
                return slopes[index]

        return _Steps()


def _monotone_polynomial(rows, values, degree):
    coefficients = np.polyfit(rows - rows[0], values, degree)
    shifted = _Polynomial(coefficients)
    slope_ends = shifted.derivative()(np.array([0.0, rows[-1] - rows[0]]))
    if np.any(slope_ends >= 0):
        return None
    # Evaluate in image rows: shift the polynomial back.
    return _Shifted(shifted, rows[0])


class _Shifted:
    def __init__(self, curve, origin):
        self.curve, self.origin = curve, origin

    def __call__(self, x):
        return self.curve(np.asarray(x, dtype=float) - self.origin)

    def derivative(self):
        return _Shifted(self.curve.derivative(), self.origin)


def _fit_curve(rows, values, method, *, label, strict=True):
    """(method used, curve) for markers sorted by row with decreasing values."""
    n = rows.size
    if method == "auto":
        method = "linear" if n == 2 else ("quadratic" if n == 3 else "pchip")
        strict = False
    if method == "linear" or n == 2:
        return "linear", _Shifted(_Polynomial(np.polyfit(rows - rows[0], values, 1)), rows[0])
    if method == "quadratic":
        curve = _monotone_polynomial(rows, values, 2)
        if curve is not None:
            return "quadratic", curve
        if strict:
            raise LadderError(f"{label}: a quadratic fitted to these markers turns back between them; "
                              "use the pchip curve")
    return "pchip", PchipInterpolator(rows, values)


def _plausible_curves(rows, values):
    """Curves a careful analyst could equally have drawn through the markers."""
    curves = [("linear_segments", _PiecewiseLinear(rows, values))]
    if rows.size >= 3:
        curves.append(("pchip", PchipInterpolator(rows, values)))
        quadratic = _monotone_polynomial(rows, values, 2)
        if quadratic is not None:
            curves.append(("quadratic", quadratic))
    return curves


# --------------------------------------------------------------------------
# Sizes anywhere on a strip
# --------------------------------------------------------------------------


@dataclass
class SizeEstimate:
    """Sizes of bands, with their uncertainty, or the reason why there is none.

    Attributes
    ----------
    kda, kda_sd : float arrays
        NaN where there is no size.
    reason : object array of str
        Empty where there is a size; otherwise why not (outside the ladder).
    """

    kda: np.ndarray
    kda_sd: np.ndarray
    reason: np.ndarray


class SizeCalibration:
    """Sizes anywhere on one membrane strip from its ladders.

    With one ladder, the rows of a band in another lane are first carried
    along the strip's tilt to the ladder's lane (a band row runs
    perpendicular to the lanes: ``slope`` is the lanes' dx/dy). With
    ladders in several lanes (both sides of the blot), the row at which a
    size sits is interpolated linearly between the two ladders either side of
    the band, which follows a tilt and a smile that changes steadily across
    the blot; beyond the outermost ladders the nearest one is used, carried
    along the tilt.

    Parameters
    ----------
    curves : list of SizeCurve
    columns : list of float, optional
        Column (x) of each ladder; required with more than one curve.
        Without it, one curve applies to every column as it is.
    slope : float
        The strip's lane lean, dx/dy.

    Examples
    --------
    >>> left = SizeCurve([100, 150, 240], [100, 75, 50])
    >>> right = SizeCurve([110, 160, 250], [100, 75, 50])
    >>> sizes = SizeCalibration([left, right], columns=[0, 100]).size([105, 300], [50, 50])
    >>> np.round(sizes.kda, 1).tolist(), sizes.reason[1]
    ([100.0, nan], 'below the ladder (smallest marker 50 kDa)')
    """

    def __init__(self, curves, columns=None, *, slope=0.0):
        curves = list(curves)
        if not curves:
            raise LadderError("a size calibration needs at least one ladder")
        if columns is None:
            if len(curves) > 1:
                raise LadderError("ladders in several lanes need the column of each")
            columns = [None]
        if len(columns) != len(curves):
            raise LadderError("give one column per ladder")
        order = sorted(range(len(curves)), key=lambda k: -np.inf if columns[k] is None else columns[k])
        self.curves = [curves[k] for k in order]
        self.columns = [None if columns[k] is None else float(columns[k]) for k in order]
        self.slope = float(slope) if np.isfinite(slope) else 0.0

    def __repr__(self):
        return f"SizeCalibration({len(self.curves)} ladder(s) at columns {self.columns})"

    def size(self, rows, columns=None, *, band_row_sd=DETECTED_ROW_SD):
        """Sizes at image positions.

        Parameters
        ----------
        rows : (k,) array_like
            Band centre rows.
        columns : (k,) array_like, optional
            Band centre columns (needed for tilt and for several ladders).
        band_row_sd : float
            Standard uncertainty of each band's row.

        Returns
        -------
        SizeEstimate
        """
        rows = np.atleast_1d(np.asarray(rows, dtype=float))
        if columns is None or self.columns[0] is None:
            columns = np.full(rows.shape, np.nan)
        columns = np.atleast_1d(np.asarray(columns, dtype=float))
        log_kda = np.full(rows.shape, np.nan)
        log_sd = np.full(rows.shape, np.nan)
        if len(self.curves) == 1 or np.all(np.isnan(columns)):
            curve, column = self.curves[0], self.columns[0]
            distance = np.zeros(rows.shape) if column is None else np.nan_to_num(columns - column)
            carried = rows + self.slope * distance
            log_kda = curve.log10_kda_at(carried)
            log_sd = curve.log10_sd_at(carried, band_row_sd=np.hypot(band_row_sd, CARRY_SLOPE_SD * distance))
            reason = _range_reasons(carried, curve.rows[0], curve.rows[-1], curve.kda_range)
            return SizeEstimate(10 ** log_kda, 10 ** log_kda * np.log(10.0) * log_sd, reason)
        reason = np.full(rows.shape, "", dtype=object)
        x = np.asarray(self.columns)
        right = np.clip(np.searchsorted(x, columns, side="right"), 1, x.size - 1)
        for pair in np.unique(right):
            members = np.flatnonzero(right == pair)
            estimate = self._between(self.curves[pair - 1], self.curves[pair], x[pair - 1], x[pair],
                                     rows[members], columns[members], band_row_sd)
            log_kda[members], log_sd[members], reason[members] = estimate
        kda = 10 ** log_kda
        return SizeEstimate(kda, kda * np.log(10.0) * log_sd, reason)

    def _between(self, left, right, x_left, x_right, rows, columns, band_row_sd):
        """log10 sizes, their uncertainty and reasons for bands between (or beyond) two ladders."""
        weight = (columns - x_left) / (x_right - x_left)
        clipped = np.clip(weight, 0.0, 1.0)
        # Beyond the outer ladders the nearest one is carried along the tilt.
        beyond = np.where(weight < 0, columns - x_left, np.where(weight > 1, columns - x_right, 0.0))
        rows = rows + self.slope * beyond
        low = max(left.log10_span[0], right.log10_span[0])
        high = min(left.log10_span[1], right.log10_span[1])
        if low >= high:
            raise LadderError(f"the ladders of {left.label} and {right.label} share no size range")
        grid = np.linspace(high, low, 1024)  # top (large) to bottom (small): rows increase
        # Clipped into each curve's span: its ends are that curve's end markers, up to rounding.
        rows_left = left.rows_at(np.clip(grid, *left.log10_span))
        rows_right = right.rows_at(np.clip(grid, *right.log10_span))
        here = (1 - clipped)[:, None] * rows_left[None, :] + clipped[:, None] * rows_right[None, :]
        above, below = rows < here[:, 0] - EDGE_TOLERANCE_ROWS, rows > here[:, -1] + EDGE_TOLERANCE_ROWS
        index = np.clip(np.sum(here < rows[:, None], axis=1), 1, grid.size - 1)
        lower, upper = here[np.arange(rows.size), index - 1], here[np.arange(rows.size), index]
        fraction = np.clip((rows - lower) / np.where(upper > lower, upper - lower, 1.0), 0.0, 1.0)
        log_kda = grid[index - 1] + fraction * (grid[index] - grid[index - 1])
        log_kda[above | below] = np.nan
        band_row_sd = np.hypot(band_row_sd, CARRY_SLOPE_SD * beyond)
        sd_left = left.log10_sd_at(left.rows_at(log_kda), band_row_sd=band_row_sd)
        sd_right = right.log10_sd_at(right.rows_at(log_kda), band_row_sd=band_row_sd)
        log_sd = (1 - clipped) * sd_left + clipped * sd_right
        reason = np.full(rows.shape, "", dtype=object)
        reason[above] = f"above the ladder (largest marker {10 ** high:g} kDa)"
        reason[below] = f"below the ladder (smallest marker {10 ** low:g} kDa)"
        return log_kda, log_sd, reason


def _range_reasons(rows, first_row, last_row, kda_range):
    reason = np.full(rows.shape, "", dtype=object)
    reason[rows < first_row - EDGE_TOLERANCE_ROWS] = f"above the ladder (largest marker {kda_range[1]:g} kDa)"
    reason[rows > last_row + EDGE_TOLERANCE_ROWS] = f"below the ladder (smallest marker {kda_range[0]:g} kDa)"
    reason[np.isnan(rows)] = "no position"
    return reason


# --------------------------------------------------------------------------
# A quantified blot: one calibration per strip
# --------------------------------------------------------------------------


@dataclass
class BlotCalibration:
    """The size calibrations of one blot image, strip by strip.

    Attributes
    ----------
    strips : dict
        ``strip number -> SizeCalibration``; strips without a ladder are absent.
    records : list of dict
        One per ladder (lane or set of marks): where it is, what it was
        matched to and its curve (:meth:`SizeCurve.summary`), for ``run.json``.
    warnings : list of str
        Problems a reader should know of (a poor fit, a ladder identified
        without being named).
    """

    strips: dict
    records: list
    warnings: list

    def size(self, strips, rows, columns, *, band_row_sd=DETECTED_ROW_SD):
        """Sizes of bands given by strip, row and column; NaN and a reason where there is none."""
        strips = np.asarray(strips)
        rows = np.asarray(rows, dtype=float)
        columns = np.asarray(columns, dtype=float)
        kda = np.full(rows.shape, np.nan)
        kda_sd = np.full(rows.shape, np.nan)
        reason = np.full(rows.shape, "no ladder in this strip", dtype=object)
        for strip, calibration in self.strips.items():
            members = np.flatnonzero(strips == strip)
            if members.size:
                estimate = calibration.size(rows[members], columns[members], band_row_sd=band_row_sd)
                kda[members], kda_sd[members], reason[members] = estimate.kda, estimate.kda_sd, estimate.reason
        return SizeEstimate(kda, kda_sd, reason)


def calibrate_blot(lanes, profiles, *, ladder=None, ladder_lane=None, ladder_marks=None, image_name="",
                   min_snr=4.0, min_bands=MIN_LADDER_BANDS):
    """Size calibrations of every strip of a blot, from ladder lanes or from marks.

    Parameters
    ----------
    lanes : list of dict
        The lanes table's rows (``strip``, ``lane``, ``x_center``, ``slope``,
        ``y_top``, ``y_bottom``).
    profiles : dict
        ``(strip, lane) -> list of LaneProfile``, one per analysed channel;
        the first channel in which the ladder matches is used.
    ladder : str, Ladder or sequence of float, optional
        The ladder in the ladder lanes (see :func:`find_ladder`); ``None``
        identifies it from the ladder table (and says so in a warning).
    ladder_lane : int or sequence of int, optional
        Lane number(s), within every strip, of the ladder lanes.
    ladder_marks : table or list of dict, optional
        Sizes and rows given directly, one row per mark: ``kda`` and ``y``
        (the mark's centre row); optionally ``strip`` (by default the strip
        whose rows hold the mark), ``x`` (the mark's column: marks of a
        strip at columns a lane pitch or more apart are separate ladders,
        e.g. both sides of the blot), ``y_sd`` (the row's uncertainty, by
        default :data:`MARK_ROW_SD`) and ``image`` (rows for other images
        are ignored).
    image_name : str
        The image's name, for messages and for the ``image`` column.
    min_snr : float
        Detection threshold for the ladder lane's bands.
    min_bands : int
        Fewest bands of a named ladder that must be matched.

    Returns
    -------
    BlotCalibration
    """
    if ladder_lane is not None and ladder_marks is not None:
        raise LadderError("give either ladder lanes or ladder marks, not both")
    strips = {}
    for lane in lanes:
        strips.setdefault(int(lane["strip"]), []).append(lane)
    result = BlotCalibration(strips={}, records=[], warnings=[])
    try:
        if ladder_lane is not None:
            groups = _lane_ladders(strips, profiles, ladder, _lane_numbers(ladder_lane), min_snr, min_bands, result)
        elif ladder_marks is not None:
            groups = _mark_ladders(strips, ladder_marks, image_name, result)
        else:
            return result
    except LadderError as error:
        # Errors name the image; warnings are listed under it already.
        raise LadderError(f"{image_name}: {error}" if image_name else str(error)) from None
    for strip, members in groups.items():
        curves, columns = [m[0] for m in members], [m[1] for m in members]
        if any(column is None for column in columns):
            columns = None if len(curves) == 1 else _missing_columns(image_name, strip)
        slope = float(np.median([lane["slope"] for lane in strips[strip]]))
        result.strips[strip] = SizeCalibration(curves, columns, slope=slope)
        for curve in curves:
            if np.isfinite(curve.max_error) and curve.max_error > LADDER_FIT_TOLERANCE:
                result.warnings.append(
                    f"{curve.label}: the size curve misses a marker by {100 * curve.max_error:.0f} % (a marker left "
                    "out and predicted from the others); sizes there are approximate")
    return result


def _missing_columns(image_name, strip):
    raise LadderError(f"{image_name}: strip {strip}: marks of several ladders need the column (x) of every mark")


def _lane_numbers(ladder_lane):
    numbers = [ladder_lane] if np.isscalar(ladder_lane) else list(ladder_lane)
    try:
        checked = sorted({int(n) for n in numbers if float(n) == int(n) and int(n) >= 1})
    except (TypeError, ValueError):
        checked = []
    if not checked or len(checked) != len(set(numbers)):
        raise LadderError(f"ladder lanes are lane numbers from 1, got {ladder_lane!r}")
    return checked


def _lane_ladders(strips, profiles, ladder, numbers, min_snr, min_bands, result):
    """``strip -> [(SizeCurve, column)]`` from the ladder lanes of every strip."""
    table = load_ladders()
    named = None if ladder is None else find_ladder(ladder)
    groups = {}
    for strip in sorted(strips):
        lanes = {int(lane["lane"]): lane for lane in strips[strip]}
        for number in numbers:
            if number not in lanes:
                raise LadderError(f"strip {strip} has lanes 1-{max(lanes)}, no ladder lane {number}; count "
                                  "the ladder lane in the number of lanes (--lanes) or give the lanes' geometry")
            label = f"strip {strip}, ladder lane {number}"
            first_error, found = None, None
            for channel, profile in enumerate(profiles[(strip, number)]):
                rows, _ = ladder_band_rows(profile, min_snr=min_snr)
                try:
                    found = (channel, *match_ladder_lane(rows, named, ladders=table, min_bands=min_bands))
                    break
                except LadderError as error:
                    first_error = first_error or error
            if found is None:
                raise LadderError(f"{label}: {first_error}")
            channel, matched_ladder, match = found
            if named is None:
                named = matched_ladder
                result.warnings.append(f"{label}: the ladder was identified as {matched_ladder.key} "
                                       f"({matched_ladder.name}); name it (--ladder) to be sure")
            curve = SizeCurve(match.rows, match.kda, row_sd=DETECTED_ROW_SD, label=label)
            groups.setdefault(strip, []).append((curve, float(lanes[number]["x_center"])))
            result.records.append({
                "strip": strip, "lane": number, "source": "ladder lane", "ladder": matched_ladder.key,
                "ladder_name": matched_ladder.name, "channel_index": channel,
                "column": round(float(lanes[number]["x_center"]), 2),
                "missing_kda": [float(k) for k in match.missing_kda],
                "unmatched_rows": [round(float(r), 2) for r in match.unmatched_rows],
                "curve": curve.summary(),
            })
    return groups


def _mark_ladders(strips, marks, image_name, result):
    """``strip -> [(SizeCurve, column)]`` from marks given by hand."""
    records = marks.to_dict("records") if hasattr(marks, "to_dict") else list(marks)
    if any("image" in record and _given(record["image"]) for record in records):
        wanted = Path(str(image_name)).name
        records = [r for r in records if _given(r.get("image")) and Path(str(r["image"])).name == wanted]
        if not records:
            result.warnings.append("the ladder marks table has no rows for this image; no sizes")
            return {}
    spans = {s: (min(l["y_top"] for l in lanes), max(l["y_bottom"] for l in lanes)) for s, lanes in strips.items()}
    by_strip = {}
    explicit = all(_given(record.get("strip")) for record in records)
    for number, record in enumerate(records, start=1):
        where = f"ladder mark {number}"
        try:
            kda, row = float(record["kda"]), float(record.get("y", record.get("row")))
        except (KeyError, TypeError, ValueError):
            raise LadderError(f"{where}: needs kda and y (its row), got {record!r}") from None
        if _given(record.get("strip")):
            strip = int(record["strip"])
            if strip not in strips:
                raise LadderError(f"{where}: the blot has no strip {strip} (strips {', '.join(map(str, spans))})")
        else:
            holding = [s for s, (top, bottom) in spans.items() if top <= row <= bottom]
            if not holding:
                raise LadderError(f"{where} ({kda:g} kDa at row {row:g}) lies in no membrane strip; give its strip")
            strip = holding[0]
        column = float(record["x"]) if _given(record.get("x")) else None
        row_sd = float(record["y_sd"]) if _given(record.get("y_sd")) else MARK_ROW_SD
        by_strip.setdefault(strip, []).append((column, row, kda, row_sd))
    groups = {}
    for strip, items in sorted(by_strip.items()):
        with_column = [item for item in items if item[0] is not None]
        if with_column and len(with_column) != len(items):
            raise LadderError(f"strip {strip}: give the column (x) of every ladder mark or of none")
        for members in _column_groups(items, strips[strip]):
            column = None if members[0][0] is None else float(np.median([m[0] for m in members]))
            label = f"strip {strip}, marks" + ("" if column is None else f" at column {column:.0f}")
            try:
                curve = SizeCurve([m[1] for m in members], [m[2] for m in members],
                                  row_sd=float(np.median([m[3] for m in members])), label=label)
            except LadderError as error:
                hint = "" if explicit else (" (each mark was put in the strip whose rows hold it: "
                                            "give every mark's strip)")
                raise LadderError(f"{error}{hint}") from None
            groups.setdefault(strip, []).append((curve, column))
            result.records.append({"strip": strip, "source": "marks", "ladder": "marks",
                                   "column": None if column is None else round(column, 2), "curve": curve.summary()})
    return groups


def _column_groups(items, lanes):
    """Marks of one strip split into ladders: columns a lane pitch or more apart are separate."""
    if items[0][0] is None:
        return [items]
    centres = np.sort([float(lane["x_center"]) for lane in lanes])
    pitch = float(np.median(np.diff(centres))) if centres.size > 1 else float(lanes[0]["x_right"] - lanes[0]["x_left"])
    items = sorted(items, key=lambda item: item[0])
    groups = [[items[0]]]
    for item in items[1:]:
        if item[0] - groups[-1][-1][0] >= pitch:
            groups.append([])
        groups[-1].append(item)
    return groups


#: Columns a ladder marks table may have.
MARK_COLUMNS = ("image", "strip", "x", "y", "y_sd", "kda")


def ladder_mark_records(marks):
    """Ladder marks as plain records: the known columns, empty cells left out.

    Parameters
    ----------
    marks : DataFrame or list of dict
        One mark per row (see :func:`calibrate_blot`).

    Returns
    -------
    list of dict
        JSON-serialisable (for ``run.json``).
    """
    records = marks.to_dict("records") if hasattr(marks, "to_dict") else list(marks)
    cleaned = []
    for record in records:
        if not isinstance(record, dict):
            raise LadderError(f"a ladder mark is a row with kda and y, not {record!r}")
        row = {}
        for key in MARK_COLUMNS:
            value = record.get(key, record.get("row") if key == "y" else None)
            if isinstance(value, (np.floating, np.integer)):
                value = value.item()
            if _given(value):
                row[key] = value
        cleaned.append(row)
    return cleaned


def read_ladder_marks(path):
    """Read a ladder marks table (CSV with ``kda`` and ``y``, optionally ``strip``, ``x``, ``y_sd``, ``image``).

    Returns
    -------
    list of dict
        :func:`ladder_mark_records` of the table.
    """
    table = read_csv_columns(path, ("kda", "y"), what="ladder marks table", error=LadderError,
                             hint=" (the size and the row of each mark)")
    return ladder_mark_records(table)


def _given(value):
    """A table cell that holds something (not None, NaN or empty text)."""
    if value is None:
        return False
    if isinstance(value, float) and np.isnan(value):
        return False
    return str(value).strip() != ""
