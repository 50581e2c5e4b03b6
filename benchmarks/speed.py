"""Speed of blotquant on a 12-megapixel 16-bit blot.

Prints, for a realistic synthetic blot (3000 x 4000 pixels, 16-bit, 12 lanes,
three band rows, turned by 0.8 degrees) saved as a zlib-compressed TIFF (as
``blotquant.synth.save_blot`` writes it) and as an uncompressed copy:

* the time to decode each TIFF (``blotquant.io.read_image``, median of 5);
* the time to quantify it from the file (``blotquant.quantify``, decoding
  included, median of 5 after one warm-up run) and the ratio of the two;
* the time of each stage on the decoded image, with the library's public
  functions: signal conversion, lane detection, rolling-ball background,
  band finding and measurement;
* the peak memory of one worker, as a multiple of the image's size;
* batch throughput of ``blotquant.batch.quantify_batch`` on 8 copies, with 1
  and with 2 worker processes (images per second).

Aim (issue 2): quantify in under 1 s, at most 20 times the decode time.
Nothing is asserted: the figures are printed for people to read.

Usage::

    python benchmarks/speed.py [--repeats 5] [--copies 8] [--overlays]
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

import tifffile

from blotquant import quantify
from blotquant.background import rolling_ball_background
from blotquant.bands import find_band_peaks, harmonise_band_windows, lane_profile, measure_band
from blotquant.batch import quantify_batch
from blotquant.io import read_image, to_signal
from blotquant.lanes import detect_lanes
from blotquant.synth import make_blot, save_blot

SHAPE = (3000, 4000)


def median_time(function, repeats, *, warm_up=0):
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


def stage_times(path, radius, repeats):
    """Median seconds of each pipeline stage on one decoded image (public functions only)."""
    blot = read_image(path)
    plane = blot.channel(0)
    full_scale = blot.full_scale
    intensity_scale = 65535.0 / full_scale  # how quantify rolls every image: as its 16-bit equivalent

    t_signal, (signal, _) = median_time(lambda: to_signal(plane, polarity="auto", full_scale=full_scale), repeats)
    t_lanes, lanes = median_time(lambda: detect_lanes(signal), repeats)
    t_background, background = median_time(
        lambda: rolling_ball_background(signal, radius, intensity_scale=intensity_scale), repeats
    )

    def bands():
        records = lanes.to_dict("records")
        profiles, found = [], []
        for lane in records:
            profile, _ = lane_profile(signal, background, lane)
            profiles.append(profile)
            found.append(find_band_peaks(profile))
        adjusted = harmonise_band_windows(profiles, found)
        return [
            measure_band(profile, top, bottom, method="rolling_ball_valley")
            for profile, boxes in zip(profiles, adjusted)
            for _, top, bottom in boxes
        ]

    t_bands, measured = median_time(bands, repeats)
    return {
        "signal conversion": t_signal,
        "lane detection": t_lanes,
        "background (rolling ball)": t_background,
        "bands (profiles, peaks, windows, volumes)": t_bands,
    }, len(lanes), len(measured)


def batch_throughput(source, copies, jobs, overlays, work):
    folder = work / f"batch_in_{jobs}"
    folder.mkdir()
    data = source.read_bytes()
    for index in range(copies):
        (folder / f"blot_{index:02d}.tif").write_bytes(data)
    out = work / f"batch_out_{jobs}"
    start = time.perf_counter()
    result = quantify_batch([folder], out, jobs=jobs, progress=False, overlays=overlays)
    elapsed = time.perf_counter() - start
    if not result.failures.empty:
        raise SystemExit(f"batch failures:\n{result.failures.to_string()}")
    return elapsed, copies / elapsed


def peak_memory(path):
    """Extra peak resident memory of a fresh process quantifying ``path``, in bytes.

    Measured in a child process (the high-water mark of resident memory after
    importing blotquant, and after quantifying; Linux), so the figure is that
    of one batch worker.
    """
    # VmHWM, unlike ru_maxrss, starts afresh at exec, so the parent's size does not leak in.
    code = (
        "import sys\n"
        "def peak():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) * 1024\n"
        "import blotquant, blotquant.pipeline, blotquant.io\n"
        "before = peak()\n"
        "blotquant.quantify(sys.argv[1], review=None)\n"
        "print(peak() - before)\n"
    )
    output = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return int(output.stdout.strip())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median)")
    parser.add_argument("--copies", type=int, default=8, help="images in the batch test")
    parser.add_argument("--overlays", action="store_true", help="draw overlays in the batch test too")
    args = parser.parse_args(argv)

    print(f"blotquant speed benchmark: Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"{platform.machine()}")
    start = time.perf_counter()
    blot = make_blot(shape=SHAPE, n_lanes=12, band_rows=((0.3, 1.0), (0.55, 0.6), (0.8, 0.8)),
                     rotation_deg=0.8, seed=1)
    print(f"synthetic blot: {blot.image.shape[0]} x {blot.image.shape[1]} {blot.image.dtype} "
          f"({blot.image.size / 1e6:.1f} megapixels), made in {time.perf_counter() - start:.1f} s")

    with tempfile.TemporaryDirectory(prefix="blotquant-speed-") as tmp:
        work = Path(tmp)
        compressed = work / "blot_zlib.tif"
        save_blot(blot, compressed)
        raw = work / "blot_raw.tif"
        tifffile.imwrite(raw, blot.image)
        print(f"files: zlib TIFF {compressed.stat().st_size / 1e6:.1f} MB, "
              f"uncompressed TIFF {raw.stat().st_size / 1e6:.1f} MB")
        print()

        results = {}
        for label, path in (("zlib TIFF", compressed), ("uncompressed TIFF", raw)):
            t_decode, _ = median_time(lambda: read_image(path), args.repeats, warm_up=1)
            t_quantify, result = median_time(lambda: quantify(path, review=None), args.repeats, warm_up=1)
            results[label] = result
            print(f"{label}:")
            print(f"  decode (read_image), median of {args.repeats}:     {t_decode * 1000:8.1f} ms")
            print(f"  quantify from the file, median of {args.repeats}:   {t_quantify * 1000:8.1f} ms "
                  f"({len(result.lanes)} lanes, {len(result.bands)} bands)")
            print(f"  ratio quantify / decode:                {t_quantify / t_decode:8.1f}")
        print("  (aim: quantify under 1000 ms, ratio under 20)")
        print()

        result = results["zlib TIFF"]
        radius = next(iter(result.parameters["background_radius"].values()))
        decoded = read_image(compressed)
        t_in_memory, _ = median_time(lambda: quantify(decoded, review=None), args.repeats, warm_up=1)
        stages, n_lanes, n_bands = stage_times(compressed, radius, args.repeats)
        print(f"stages on the decoded image, median of {args.repeats} "
              f"(background radius {radius:.1f} px, {n_lanes} lanes, {n_bands} bands):")
        for name, seconds in stages.items():
            print(f"  {name:44s} {seconds * 1000:8.1f} ms")
        print(f"  {'sum of these stages':44s} {sum(stages.values()) * 1000:8.1f} ms")
        print(f"  {'quantify(decoded image)':44s} {t_in_memory * 1000:8.1f} ms")
        print(f"  {'rest (radius pass, off-lane check, tables)':44s} "
              f"{(t_in_memory - sum(stages.values())) * 1000:8.1f} ms")
        print()

        extra = peak_memory(raw)
        print(f"peak memory of one worker above its imports: {extra / 1e6:.0f} MB "
              f"= {extra / blot.image.nbytes:.1f} x the {blot.image.nbytes / 1e6:.0f} MB image")
        print()

        print(f"batch (quantify_batch, {args.copies} copies of the zlib TIFF, "
              f"overlays {'on' if args.overlays else 'off'}):")
        for jobs in (1, 2):
            elapsed, rate = batch_throughput(compressed, args.copies, jobs, args.overlays, work)
            print(f"  jobs={jobs}: {elapsed:6.2f} s, {rate:5.2f} images/s")

    truth_lanes = 12
    if len(result.lanes) != truth_lanes:
        print(f"\nnote: {len(result.lanes)} lanes found for {truth_lanes}; the timing is of that run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
