"""The small set of exceptions blotquant raises for bad input.

Every message names the file, row or lane at fault and says how to fix it;
the command line prints ``str(error)`` on one line and exits with code 2.
"""


class BlotQuantError(Exception):
    """Base class for every error caused by the user's input, not by a bug."""


class ImageReadError(BlotQuantError):
    """An image file is missing, corrupt, empty, unsupported or all zero."""


class ImageTooLargeError(ImageReadError):
    """An image declares more pixels than the configured limit."""


class ParameterError(BlotQuantError):
    """An option or argument has a value that cannot be used."""


class LaneDetectionError(BlotQuantError):
    """Lanes could not be found automatically; give their number or geometry."""


class OutputExistsError(BlotQuantError):
    """The output folder already holds results and ``force`` was not given."""


class StudyError(BlotQuantError):
    """A study file, sample sheet or lane layout is malformed or inconsistent."""


class ReviewError(BlotQuantError):
    """A lane-review file is malformed or belongs to a different image."""


class OutputWriteError(BlotQuantError):
    """A result file could not be written (full disk, quota, permissions changed mid-run)."""


class LadderError(BlotQuantError):
    """A molecular-weight ladder is unknown, cannot be matched to its lane, or gives no size curve."""


class LossyImageWarning(UserWarning):
    """The image was stored with lossy (JPEG) compression."""
