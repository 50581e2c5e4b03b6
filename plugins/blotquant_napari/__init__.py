"""napari plugin of blotquant: open blot images, review lanes and bands, save the review.

The contributions are declared in ``napari.yaml``: a reader for blot images,
a sample blot, the "Lane review" widget and a writer for bands tables. Every
number the plugin shows comes from :func:`blotquant.quantify`; the Qt-free
review state lives in :mod:`blotquant_napari._model`.
"""

from blotquant import __version__

__all__ = ["__version__"]
