"""Many images at once: parallel quantification into one results folder.

Each worker process reads, quantifies and draws one image at a time, so
memory stays a small multiple of one image per worker. A file that cannot
be read or quantified is reported and the batch goes on.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from . import __version__
from .errors import BlotQuantError, ParameterError
from .executors import default_jobs, describe_executor, run_tasks
from .output import environment_record, locked_output_dir, write_json, write_table
from .marks import MARK_COLUMNS
from .pipeline import BAND_COLUMNS, LANE_TABLE_COLUMNS

#: File endings treated as images when a folder is given.
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".gif", ".jpg", ".jpeg", ".scn")


@dataclass
class BatchResult:
    """Tables of a batch run: every band, every lane, every failure."""

    bands: pd.DataFrame
    lanes: pd.DataFrame
    failures: pd.DataFrame
    record: dict = field(default_factory=dict)


def expand_inputs(inputs):
    """Files to quantify: files as given, folders expanded to their images (sorted)."""
    paths = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            paths.extend(sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
        else:
            paths.append(item)
    if not paths:
        raise ParameterError("no images to quantify: give image files or folders that hold images")
    return paths


def quantify_batch(inputs, out_dir, *, force=False, jobs=None, progress=None, overlays=True,
                   command=None, executor=None, **options):
    """Quantify images in parallel and write bands.csv, lanes.csv, marks.csv and run.json.

    Parameters
    ----------
    inputs : sequence of path
        Image files and/or folders of images.
    out_dir : path
        Results folder; must be new, hold no results, or ``force`` must be true.
        The run replaces it as a whole (:func:`blotquant.output.locked_output_dir`).
    force : bool
        Replace results already in ``out_dir``.
    jobs : int, optional
        Worker processes (default: the number of cores, at most the number of images).
    progress : bool, optional
        Show a progress bar (default: when standard error is a terminal).
    overlays : bool
        Write ``<image>.overlay.png`` for each image.
    command : list of str, optional
        The command line, recorded in run.json.
    executor : concurrent.futures.Executor or distributed.Client, optional
        Where the images are quantified (default: a local pool of ``jobs`` processes).
        Workers read the images by path and write overlays into the results folder,
        so on a cluster both must be on storage every worker sees at the same path.
        The tables are the same, byte for byte, wherever they were computed.
    **options
        Passed to :func:`blotquant.quantify` (lanes, channel, polarity, ...).

    Returns
    -------
    BatchResult
    """
    paths = expand_inputs(inputs)
    # Everything, the workers' overlays too, goes into the staging folder that replaces out_dir whole.
    with locked_output_dir(out_dir, force=force) as staging:
        return _run_batch(paths, staging, jobs=jobs, progress=progress, overlays=overlays, command=command,
                          options=options, executor=executor)


def _run_batch(paths, out_dir, *, jobs, progress, overlays, command, options, executor=None):
    names = _unique_names(paths)
    overlay_files = _overlay_file_names(paths)
    jobs = default_jobs(jobs, len(paths))
    show = sys.stderr.isatty() if progress is None else progress
    # Workers get paths, not pixels, and send back tables; they write their overlays themselves.
    tasks = [(str(os.path.abspath(path)) if executor is not None else str(path), name,
              str(Path(os.path.abspath(out_dir)) / overlay) if overlays else None, options)
             for path, name, overlay in zip(paths, names, overlay_files)]

    # Collected by position, so the tables come out in input order whatever order workers finish in.
    outcomes = [None] * len(tasks)
    bar = None
    if show:
        # Only a bar that is shown is built: even a disabled tqdm imports multiprocessing for its lock.
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), unit="image", file=sys.stderr)
    for index, outcome, error in run_tasks(_quantify_one, tasks, executor=executor, jobs=jobs):
        outcomes[index] = outcome if error is None else _lost(tasks[index], error)
        outcomes[index]["path"] = str(paths[index])
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()

    bands = [o["bands"] for o in outcomes if o["ok"]]
    lanes = [o["lanes"] for o in outcomes if o["ok"]]
    marks = [o["marks"] for o in outcomes if o["ok"] and not o["marks"].empty]
    bands = pd.concat(bands, ignore_index=True) if bands else pd.DataFrame(columns=BAND_COLUMNS)
    marks = pd.concat(marks, ignore_index=True) if marks else pd.DataFrame(columns=["image"] + MARK_COLUMNS)
    lanes = pd.concat(lanes, ignore_index=True) if lanes else pd.DataFrame(columns=LANE_TABLE_COLUMNS)
    failures = pd.DataFrame([{"file": o["path"], "error": o["error"]} for o in outcomes if not o["ok"]],
                            columns=["file", "error"])

    write_table(bands, out_dir / "bands.csv")
    write_table(lanes, out_dir / "lanes.csv")
    write_table(marks, out_dir / "marks.csv")
    if not failures.empty:
        write_table(failures, out_dir / "failures.csv")
    record = {
        "blotquant_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "parameters": {key: (f"table of {len(value)} lanes" if isinstance(value, pd.DataFrame) else value)
                       for key, value in options.items()},
        "effective_parameters": next((o["parameters"] for o in outcomes if o["ok"]), None),
        "executor": describe_executor(executor, jobs=jobs if executor is None else None),
        "environment": environment_record(),
        "inputs": [
            {
                "file": o["path"],
                "image": o["name"],
                "sha256": o.get("sha256"),
                "status": "ok" if o["ok"] else "failed",
                "error": o.get("error"),
                "review": o.get("review"),
                "warnings": o.get("warnings", []),
                "polarity": o.get("polarity"),
                "background_radius": o.get("background_radius"),
            }
            for o in outcomes
        ],
        "outputs": ["bands.csv", "lanes.csv", "marks.csv"] + (["failures.csv"] if not failures.empty else [])
        + ([Path(task[2]).name for task, o in zip(tasks, outcomes) if o["ok"]] if overlays else []),
    }
    write_json(record, out_dir / "run.json")
    return BatchResult(bands=bands, lanes=lanes, failures=failures, record=record)


def _quantify_one(task):
    """Worker: one image to tables (and an overlay). Never raises for bad input."""
    from .io import read_image, to_signal
    from .overlay import render_overlay
    from .pipeline import quantify

    path, name, overlay_path, options = task
    outcome = {"path": path, "name": name, "ok": False}
    try:
        blot = read_image(path, max_pixels=options.get("max_pixels"))
        outcome["sha256"] = blot.sha256
        options = {k: v for k, v in options.items() if k != "max_pixels"}
        options["lane_geometry"] = geometry_for_image(options.get("lane_geometry"), name)
        result = quantify(blot, **options)
        result.bands["image"] = name
        result.lanes["image"] = name
        result.marks["image"] = name
        if overlay_path is not None:
            channel = result.parameters["channels_analysed"][0]
            signal, _ = to_signal(blot.channel(channel), polarity=result.image["polarity"],
                                  full_scale=blot.full_scale)
            render_overlay(signal, result, Path(overlay_path), title=name)
        outcome.update(
            ok=True,
            bands=result.bands,
            lanes=result.lanes,
            marks=result.marks,
            parameters=result.parameters,
            review=result.parameters.get("review"),
            warnings=result.image["warnings"],
            polarity=result.image["polarity"],
            background_radius=result.parameters.get("background_radius"),
        )
    except BlotQuantError as error:
        message = str(error)
        outcome["error"] = message if (path in message or name in message) else f"{path}: {message}"
    except MemoryError:
        outcome["error"] = f"{path}: not enough memory to quantify this image"
    except Exception as error:  # a bug must not cost the rest of the batch its results
        outcome["error"] = (f"{path}: could not be quantified ({type(error).__name__}: {error}); "
                            "this is a blotquant bug, please report it with the image")
    return outcome


def _lost(task, error):
    """The failure of an image whose worker gave no outcome.

    A worker killed from outside (the out-of-memory killer, a signal) breaks a
    local pool: this image and every one not yet finished are reported as
    failures, while those finished before keep their results. On a Dask cluster
    the scheduler retries the image elsewhere first; it is lost only when workers
    died under it repeatedly.
    """
    from concurrent.futures.process import BrokenProcessPool  # multiprocessing: only once a worker is lost

    if isinstance(error, BrokenProcessPool) or type(error).__name__ == "KilledWorker":
        message = (f"{task[0]}: the worker process quantifying it died (killed, or out of memory); "
                   "run it again, with fewer --jobs if memory is short")
    else:
        message = (f"{task[0]}: could not be quantified ({type(error).__name__}: {error}); "
                   "this is a blotquant bug or a worker fault, please report it with the image")
    return {"path": task[0], "name": task[1], "ok": False, "error": message}


def geometry_for_image(geometry, name):
    """The rows of a lane-geometry table that belong to one image.

    A table with an ``image`` column (such as a ``lanes.csv`` written by an
    earlier run) gives each image its own lanes; one without it applies to
    every image.
    """
    if geometry is None or "image" not in geometry:
        return geometry
    rows = geometry[geometry["image"].astype(str) == name]
    if rows.empty:
        raise ParameterError(f"{name}: the lane geometry table has no rows for this image")
    return rows.drop(columns=["image"])


def _overlay_file_names(paths):
    """One overlay file name per input, unique and without a folder part.

    Inputs that share a file name (``day1/blot1.tif``, ``day2/blot1.tif``)
    get their parent folder's name in front, then a number, so that every
    overlay lands inside the results folder and none overwrites another.
    """
    stems = [path.name for path in paths]
    if len(set(stems)) < len(stems):
        parents = [Path(os.path.abspath(path)).parent.name for path in paths]
        stems = [f"{parent}__{stem}" if stems.count(stem) > 1 and parent else stem
                 for parent, stem in zip(parents, stems)]
    seen = {}
    names = []
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}~{seen[stem]}")
    return [f"{name}.overlay.png" for name in names]


def _unique_names(paths):
    """File names, or paths where two inputs share a file name."""
    names = [path.name for path in paths]
    duplicated = {name for name in names if names.count(name) > 1}
    return [str(path) if path.name in duplicated else path.name for path in paths]
