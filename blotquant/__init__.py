"""blotquant: Western blot images to numbers a scientist can defend.

The pipeline runs one way: image -> lanes -> background -> bands ->
normalisation -> study alignment -> flags and statistics -> tables, plots
and report. :func:`quantify` runs the first four stages on one image.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("blotquant")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .errors import (  # noqa: E402
    BlotQuantError,
    ImageReadError,
    ImageTooLargeError,
    LadderError,
    LaneDetectionError,
    OutputExistsError,
    ParameterError,
    ReviewError,
    StudyError,
)


def __getattr__(name):
    # Lazy so that ``import blotquant`` stays cheap for the CLI and the plugin.
    if name in ("quantify", "QuantResult"):
        from . import pipeline as _pipeline

        return getattr(_pipeline, name)
    if name == "run_study":
        from .study import run_study

        return run_study
    raise AttributeError(f"module 'blotquant' has no attribute {name!r}")


__all__ = [
    "__version__",
    "quantify",
    "QuantResult",
    "run_study",
    "BlotQuantError",
    "ImageReadError",
    "ImageTooLargeError",
    "LadderError",
    "LaneDetectionError",
    "OutputExistsError",
    "ParameterError",
    "ReviewError",
    "StudyError",
]
