"""The ``blotquant`` command line: a thin shell over the library.

Every error caused by input (a bad file, a wrong option, a malformed study)
is printed as one line and the command exits with code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings

from . import __version__
from ._constants import BACKGROUND_METHODS
from .errors import BlotQuantError, LossyImageWarning, ParameterError
from .output import printable

EXIT_BAD_INPUT = 2


def _say(message, file=None):
    """Print one line of the command line's output, file-name bytes that are not UTF-8 as \\xNN."""
    print(printable(message), file=file if file is not None else sys.stdout)


_SCHEDULER_HELP = ("run on a Dask distributed cluster, e.g. tcp://10.0.0.5:8786 (default: $BLOTQUANT_SCHEDULER, "
                   "else a local process pool); images and --out must be on storage the workers share")


@contextlib.contextmanager
def _executor(args):
    """A Dask client for ``--scheduler`` (or ``$BLOTQUANT_SCHEDULER``), closed afterwards; else None.

    Connecting comes first, so an unreachable scheduler costs no work and writes nothing.
    """
    from .executors import SCHEDULER_VARIABLE, connect_scheduler

    address = args.scheduler or os.environ.get(SCHEDULER_VARIABLE) or None
    if address is None:
        yield None
        return
    client = connect_scheduler(address)
    try:
        yield client
    finally:
        client.close()


def build_parser():
    """The argument parser of ``blotquant`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="blotquant",
        description="Quantify Western blot images (lanes, bands, volumes) and run post-dose timecourse studies.",
        epilog="Input errors print one line and exit with code 2. See README.md for the file formats.",
    )
    parser.add_argument("--version", action="version", version=f"blotquant {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    quant = commands.add_parser("quantify", help="quantify lanes and bands of blot images")
    quant.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    quant.add_argument("--out", required=True, metavar="DIR", help="results folder (new or empty unless --force)")
    quant.add_argument("--lanes", type=int, metavar="N", help="lanes per strip (default: found automatically)")
    quant.add_argument("--lane-geometry", metavar="CSV",
                       help="lanes to use instead of detection: x_left, x_right per lane (and optionally strip, "
                       "lane, y_top, y_bottom, slope, image), e.g. a lanes.csv from an earlier run")
    quant.add_argument("--channel", metavar="C", help="channel name or 0-based index (default: all default channels)")
    quant.add_argument("--polarity", default="auto", choices=["auto", "light_on_dark", "dark_on_light"])
    quant.add_argument("--background", default="auto", choices=BACKGROUND_METHODS,
                       help="how band volumes are separated from background: auto = fit (a profile fit), "
                            "or a box sum with the valley, beyond, border_median, ... background")
    quant.add_argument("--radius", type=float, metavar="PX", help="rolling-ball radius in pixels (default: auto)")
    quant.add_argument("--band-rows", type=int, nargs=2, metavar=("TOP", "BOTTOM"),
                       help="measure exactly one band per lane between these rows")
    quant.add_argument("--band-rows-mode", default="band", choices=["band", "window"],
                       help="with --band-rows: the strongest band in its own limits (band) "
                       "or the whole window (window)")
    quant.add_argument("--min-snr", type=float, default=4.0,
                       help="peak detection threshold in noise sigmas (default 4)")
    quant.add_argument("--min-band-snr", type=float, default=10.0,
                       help="report detected bands only above this integrated signal-to-noise (default 10)")
    quant.add_argument("--split-doublets", action="store_true",
                       help="split a band whose profile is a doublet (p44/p42) into its two bands (profile fit)")
    quant.add_argument("--keep-marks", action="store_true",
                       help="do not set typed labels, handwriting and pen marks aside (by default they are kept "
                       "out of lane finding and bands on them are excluded)")
    quant.add_argument("--ladder-lane", type=int, action="append", metavar="N",
                       help="lane N of every strip is a molecular-weight ladder; bands get sizes (kda, kda_sd); "
                       "repeat for a ladder on each side (--ladder-lane 1 --ladder-lane 12)")
    quant.add_argument("--ladder", metavar="NAME",
                       help="the ladder in --ladder-lane: a name from blotquant/data/ladders.toml (e.g. "
                       "precision_plus_dual_color, 26619) or its sizes in kDa top to bottom, e.g. 250,150,100,75,50 "
                       "(default: identified from the table)")
    quant.add_argument("--ladder-marks", metavar="CSV",
                       help="sizes at rows given by hand instead of a ladder lane (pen marks): columns kda, y, "
                       "optionally strip, x, y_sd, image")
    quant.add_argument("--no-review", action="store_true", help="ignore lane-review files next to the images")
    quant.add_argument("--no-overlay", action="store_true", help="do not draw overlay PNGs")
    quant.add_argument("--max-pixels", type=int, metavar="N",
                       help="refuse images with more pixels than this, counted over all channels and pages")
    quant.add_argument("--jobs", type=int, metavar="N", help="worker processes (default: all cores)")
    quant.add_argument("--scheduler", metavar="ADDRESS", help=_SCHEDULER_HELP)
    quant.add_argument("--force", action="store_true", help="replace results already in --out")

    study = commands.add_parser("study", help="run a whole study: quantify, normalise, align times, flag, report")
    study.add_argument("study_file", metavar="STUDY_TOML")
    study.add_argument("--out", required=True, metavar="DIR")
    study.add_argument("--jobs", type=int, metavar="N", help="worker processes (default: all cores)")
    study.add_argument("--scheduler", metavar="ADDRESS", help=_SCHEDULER_HELP)
    study.add_argument("--force", action="store_true", help="replace results already in --out")
    return parser


def main(argv=None):
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = ["blotquant"] + list(sys.argv[1:] if argv is None else argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if args.command == "quantify":
                code = _run_quantify(args, command)
            else:
                code = _run_study(args)
        # Image warnings are printed per image by the commands themselves (they also
        # reach run.json and the report); anything else is passed on once.
        passed_on = [w for w in caught
                     if issubclass(w.category, UserWarning) and not issubclass(w.category, LossyImageWarning)]
        for message in sorted({str(w.message) for w in passed_on}):
            _say(f"blotquant: WARNING: {message}", file=sys.stderr)
        return code
    except BlotQuantError as error:
        _say(f"blotquant: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        # A run is swapped into --out only once complete (blotquant.output.locked_output_dir).
        _say("blotquant: interrupted; --out holds its earlier results or this run's, whole, never a mixture",
             file=sys.stderr)
        return 130


def _read_ladder_marks(path):
    from .ladder import read_ladder_marks  # scipy.interpolate only when sizes are asked for

    return read_ladder_marks(path)


def _run_quantify(args, command):
    from .batch import quantify_batch
    from .lanes import MAX_LANES

    if args.lanes is not None and not 1 <= args.lanes <= MAX_LANES:
        raise ParameterError(f"--lanes must be between 1 and {MAX_LANES}, not {args.lanes}")
    if args.jobs is not None and args.jobs < 1:
        raise ParameterError(f"--jobs must be 1 or more, not {args.jobs}")
    if args.ladder and not args.ladder_lane:
        raise ParameterError("--ladder needs the ladder's lane: add --ladder-lane N")
    if args.ladder_lane and args.ladder_marks:
        raise ParameterError("give either --ladder-lane or --ladder-marks, not both")
    channel = args.channel
    if channel is not None and channel.isdigit():
        channel = int(channel)
    options = {
        "lanes": args.lanes,
        "lane_geometry": _read_lane_geometry(args.lane_geometry) if args.lane_geometry else None,
        "channel": channel,
        "polarity": args.polarity,
        "background": args.background,
        "background_radius": args.radius,
        "band_rows": tuple(args.band_rows) if args.band_rows else None,
        "band_rows_mode": args.band_rows_mode,
        "min_snr": args.min_snr,
        "min_band_snr": args.min_band_snr,
        "review": None if args.no_review else "auto",
        "max_pixels": args.max_pixels,
        "split_doublets": args.split_doublets,
        "ignore_marks": not args.keep_marks,
        "ladder": args.ladder,
        "ladder_lane": args.ladder_lane,
        "ladder_marks": _read_ladder_marks(args.ladder_marks) if args.ladder_marks else None,
    }
    with _executor(args) as executor:
        result = quantify_batch(args.images, args.out, force=args.force, jobs=args.jobs, executor=executor,
                                overlays=not args.no_overlay, command=command, **options)
    for item in result.record["inputs"]:
        for warning in item["warnings"]:
            _say(f"blotquant: WARNING: {item['image']}: {warning}", file=sys.stderr)
        if item["review"]:
            _say(f"blotquant: {item['image']}: using lane review {item['review']}", file=sys.stderr)
    for failure in result.failures.to_dict("records"):
        _say(f"blotquant: error: {failure['error']}", file=sys.stderr)
    n_ok = len(result.record["inputs"]) - len(result.failures)
    _say(f"blotquant: {n_ok} image(s) quantified, {len(result.bands)} band(s), "
         f"{len(result.failures)} failed; results in {args.out}")
    return EXIT_BAD_INPUT if len(result.failures) else 0


def _read_lane_geometry(path):
    from ._shared import read_csv_columns

    return read_csv_columns(path, ("x_left", "x_right"), what="lane geometry table", error=ParameterError)


def _run_study(args):
    from .study import run_study

    if args.jobs is not None and args.jobs < 1:
        raise ParameterError(f"--jobs must be 1 or more, not {args.jobs}")
    with _executor(args) as executor:
        result = run_study(args.study_file, args.out, force=args.force, jobs=args.jobs, executor=executor)
    for record in result.images:
        for warning in record.get("warnings", []):
            _say(f"blotquant: WARNING: {record['file']}: {warning}", file=sys.stderr)
        if record.get("review"):
            _say(f"blotquant: {record['file']}: using lane review {record['review']}", file=sys.stderr)
    _say(f"blotquant: study results in {args.out}")
    # Impossible time stamps are bad input: the results are written (the sample
    # is flagged and left out of the statistics), but the run must not pass as clean.
    bad_times = result.flags[result.flags["code"] == "TIME_ORDER_INVALID"]
    for message in bad_times["message"]:
        _say(f"blotquant: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT if len(bad_times) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
