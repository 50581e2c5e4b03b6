"""Speed of blotquant on a 12-megapixel 16-bit blot, against the floor of reading it.

Prints, in one run, for a realistic synthetic blot (3000 x 4000 pixels, 16-bit,
12 lanes, three band rows, turned by 0.8 degrees) saved as a zlib-compressed
TIFF (as ``blotquant.synth.save_blot`` writes it) and as an uncompressed copy:

* the floor: decoding the file (``tifffile.imread``) plus one float32 pass
  over the pixels, the least any quantification of the file must cost;
* as multiples of that floor: reading (``read_image``: decoding, checks and
  the SHA-256), quantification (``quantify`` on the decoded image), the
  overlay, and the batch path (what a batch worker does per image: read,
  quantify, draw the overlay);
* the wall time of a one-image ``blotquant quantify`` run (a fresh process,
  overlay drawn, bytecode cached as in an installed package), on a
  1-megapixel and on the 12-megapixel blot, and the share of it that is
  importing;
* a batch worker's peak memory above its imports, in bytes per pixel (at 12
  megapixels, and the slope between 3 and 12 megapixels);
* batch throughput (``quantify_batch``, overlays drawn) with 1 and 2 worker
  processes, on 16 and on 64 copies of the zlib TIFF, and the efficiency of
  the second worker.

Targets (issue 13): batch path at most 4x the floor, quantification at most
3x, one-image CLI under 1 s, a worker at most 8 bytes per pixel, 2 workers at
least 90 % efficient at 16 images. Nothing is asserted: the figures are printed
for people to read. Times are medians of ``--repeats`` runs after a warm-up.

Usage::

    python benchmarks/speed.py [--repeats 5] [--copies 16 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from blotquant import quantify
from blotquant.batch import _quantify_one, quantify_batch
from blotquant.io import read_image, to_signal
from blotquant.overlay import render_overlay
from blotquant.synth import make_blot, save_blot

SHAPE = (3000, 4000)
SMALL_SHAPE = (1000, 1000)
MEMORY_SHAPE = (1500, 2000)  # with SHAPE, gives the memory per pixel without the fixed part


def median_time(function, repeats, *, warm_up=1):
    """Median wall-clock seconds of ``function()`` over ``repeats`` runs, and its last result."""
    result = None
    for _ in range(warm_up):
        result = function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def synthetic_blot(shape):
    return make_blot(shape=shape, n_lanes=12, band_rows=((0.3, 1.0), (0.55, 0.6), (0.8, 0.8)),
                     rotation_deg=0.8, seed=1)


def floor_time(path, repeats):
    """Decoding the file plus one float32 pass over its pixels."""
    return median_time(lambda: tifffile.imread(path).astype(np.float32), repeats)[0]


def stage_times(path, work, repeats):
    """Median seconds of reading, quantifying, drawing and the whole batch path of one file."""
    t_read, blot = median_time(lambda: read_image(path), repeats)
    t_quantify, result = median_time(lambda: quantify(blot, review=None), repeats)
    channel = result.parameters["channels_analysed"][0]

    def overlay():
        signal, _ = to_signal(blot.channel(channel), polarity=result.image["polarity"], full_scale=blot.full_scale)
        render_overlay(signal, result, work / "overlay.png", title=path.name)

    t_overlay, _ = median_time(overlay, repeats)
    # What a batch worker does per image: read, quantify, draw (blotquant.batch's own worker function).
    task = (str(path), path.name, str(work / "worker.overlay.png"), {"review": None})
    t_batch, outcome = median_time(lambda: _quantify_one(task), repeats)
    if not outcome["ok"]:
        raise SystemExit(f"the batch path failed: {outcome['error']}")
    return {"read (read_image)": t_read, "quantify (decoded image)": t_quantify,
            "overlay (signal + PNG)": t_overlay, "batch path (read + quantify + overlay)": t_batch}, result


def cli_time(path, work, repeats):
    """Median wall seconds of a one-image ``blotquant quantify`` in a fresh process, and of its imports."""
    command = [sys.executable, "-m", "blotquant.cli", "quantify", str(path), "--out", str(work / "cli_out"),
               "--force"]
    # As an installed package runs: with its bytecode cached (the warm-up run writes it
    # where PYTHONDONTWRITEBYTECODE would have every run compile blotquant's sources again).
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}

    def run():
        subprocess.run(command, check=True, capture_output=True, env=environment)

    imports = [sys.executable, "-c", "import blotquant.cli, blotquant.batch, blotquant.io, blotquant.overlay"]
    t_run, _ = median_time(run, repeats)
    t_imports, _ = median_time(lambda: subprocess.run(imports, check=True, env=environment), repeats)
    return t_run, t_imports


def peak_memory(path):
    """Peak resident memory of a fresh process running the batch path on ``path``, above its imports.

    Measured in a child process (Linux ``VmHWM``, which starts afresh at
    exec, so this process's size does not leak in): the figure is one batch
    worker's for one image, overlay drawn.
    """
    code = (
        "import sys, tempfile, os\n"
        "def peak():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) * 1024\n"
        "from blotquant.batch import _quantify_one\n"
        "import blotquant.pipeline, blotquant.io, blotquant.overlay, PIL.PngImagePlugin\n"
        "before = peak()\n"
        "out = os.path.join(tempfile.mkdtemp(), 'o.png')\n"
        "outcome = _quantify_one((sys.argv[1], 'blot.tif', out, {'review': None}))\n"
        "assert outcome['ok'], outcome\n"
        "print(peak() - before)\n"
    )
    output = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return int(output.stdout.strip())


def batch_throughput(source, copies, jobs, work):
    folder = work / f"batch_in_{copies}"
    if not folder.exists():
        folder.mkdir()
        data = source.read_bytes()
        for index in range(copies):
            (folder / f"blot_{index:02d}.tif").write_bytes(data)
    out = work / f"batch_out_{copies}_{jobs}"
    start = time.perf_counter()
    result = quantify_batch([folder], out, jobs=jobs, progress=False, overlays=True)
    elapsed = time.perf_counter() - start
    if not result.failures.empty:
        raise SystemExit(f"batch failures:\n{result.failures.to_string()}")
    return elapsed, copies / elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median)")
    parser.add_argument("--copies", type=int, nargs="+", default=[16, 64], help="images in each batch test")
    args = parser.parse_args(argv)

    print(f"blotquant speed benchmark: Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"{platform.machine()}; medians of {args.repeats}")
    start = time.perf_counter()
    blot = synthetic_blot(SHAPE)
    pixels = blot.image.size
    print(f"synthetic blot: {blot.image.shape[0]} x {blot.image.shape[1]} {blot.image.dtype} "
          f"({pixels / 1e6:.1f} megapixels), made in {time.perf_counter() - start:.1f} s")

    with tempfile.TemporaryDirectory(prefix="blotquant-speed-") as tmp:
        work = Path(tmp)
        compressed = work / "blot_zlib.tif"
        save_blot(blot, compressed)
        raw = work / "blot_raw.tif"
        tifffile.imwrite(raw, blot.image)
        small = work / "blot_1mp.tif"
        save_blot(make_blot(shape=SMALL_SHAPE, n_lanes=10, seed=2), small)
        medium = work / "blot_3mp.tif"
        save_blot(synthetic_blot(MEMORY_SHAPE), medium)
        print(f"files: zlib TIFF {compressed.stat().st_size / 1e6:.1f} MB, "
              f"uncompressed TIFF {raw.stat().st_size / 1e6:.1f} MB")

        for label, path in (("zlib TIFF", compressed), ("uncompressed TIFF", raw)):
            floor = floor_time(path, args.repeats)
            stages, result = stage_times(path, work, args.repeats)
            print()
            print(f"{label} ({len(result.lanes)} lanes, {len(result.bands)} bands):")
            print(f"  {'floor (decode + one float32 pass)':40s} {floor * 1000:7.1f} ms    1.0 x")
            for name, seconds in stages.items():
                print(f"  {name:40s} {seconds * 1000:7.1f} ms {seconds / floor:6.1f} x the floor")
        print("  (targets: batch path at most 4 x the floor, quantification at most 3 x)")

        print()
        print("one-image `blotquant quantify` (a fresh process, overlay drawn):")
        for label, path in (("1 MP blot", small), ("12 MP blot", compressed)):
            t_run, t_imports = cli_time(path, work, args.repeats)
            print(f"  {label:12s} {t_run:6.2f} s, of which importing about {t_imports:4.2f} s "
                  f"(a process that only imports the batch path)")
        print("  (target: under 1 s)")

        print()
        peak_small, peak_large = peak_memory(medium), peak_memory(compressed)
        small_pixels = MEMORY_SHAPE[0] * MEMORY_SHAPE[1]
        slope = (peak_large - peak_small) / (pixels - small_pixels)
        print(f"peak memory of a batch worker above its imports, 12 MP zlib TIFF: {peak_large / 1e6:.0f} MB "
              f"= {peak_large / pixels:.1f} bytes per pixel")
        print(f"  between 3 and 12 MP: {slope:.1f} bytes per pixel more, plus "
              f"{(peak_large - slope * pixels) / 2**20:.0f} MiB whatever the size (target: at most 8 bytes per pixel)")

        print()
        print("batch throughput (quantify_batch, copies of the 12 MP zlib TIFF, overlays drawn):")
        for copies in args.copies:
            rates = {}
            for jobs in (1, 2):
                elapsed, rates[jobs] = batch_throughput(compressed, copies, jobs, work)
                print(f"  {copies:3d} images, jobs={jobs}: {elapsed:6.1f} s, {rates[jobs]:5.2f} images/s")
            print(f"  {copies:3d} images: the second worker is {rates[2] / (2 * rates[1]) * 100:.0f} % efficient "
                  "(target: at least 90 % at 16 images)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
