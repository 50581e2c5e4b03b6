"""blotquant: Western blot images to numbers a scientist can defend.

The pipeline runs one way: image -> lanes -> background -> bands ->
normalisation -> study alignment -> flags and statistics -> tables, plots
and report. :func:`quantify` runs the first four stages on one image.
"""

# The one place the version is written (pyproject.toml reads it from here): looking it up
# in the installed metadata would import importlib.metadata and email, 30 ms on every run.
__version__ = "0.1.0"

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
