"""Shared test set-up: keep the napari viewer tests from aborting on machines without a display.

pytest-xvfb starts an X server when Xvfb is installed and sets DISPLAY. When
there is none, Qt would abort the whole run, so the tests that need a viewer
are skipped and Qt is told to use its offscreen platform. Nothing here imports
napari or Qt: the library tests stay free of them.
"""

import os
import sys

import pytest

VIEWER_FIXTURES = ("make_napari_viewer", "make_napari_viewer_proxy", "viewer_widget")
NO_DISPLAY_REASON = "install xvfb to run the napari tests (apt-get install xvfb, then pip install pytest-xvfb)"


def _has_display():
    return sys.platform in ("win32", "darwin") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def pytest_collection_modifyitems(config, items):
    if _has_display():
        return
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    skip = pytest.mark.skip(reason=NO_DISPLAY_REASON)
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in VIEWER_FIXTURES):
            item.add_marker(skip)
