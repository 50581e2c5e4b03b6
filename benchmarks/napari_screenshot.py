"""Take docs/napari_screenshot.png: the Lane review widget docked in napari on the sample blot.

Run under an X server (the screenshot needs OpenGL), for example::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/napari_screenshot.py

Nothing is saved beside the sample image: the review is only shown, not saved.
"""

import sys
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

OUT = Path(__file__).resolve().parents[1] / "docs" / "napari_screenshot.png"


def wait_until_idle(widget, timeout=120.0):
    start = time.monotonic()
    while widget.busy:
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            raise TimeoutError("blotquant did not finish in time")
    for _ in range(20):
        QApplication.processEvents()


def main(out=OUT):
    viewer = napari.Viewer(title="blotquant lane review")
    viewer.window.resize(1500, 900)
    layers = viewer.open_sample("blotquant", "western-blot")
    _, widget = viewer.window.add_plugin_dock_widget("blotquant", "Lane review")
    widget.reviewer.setText("A. Scientist")
    widget.run_detection()
    wait_until_idle(widget)
    if widget.last_error is not None:
        raise SystemExit(f"detection failed: {widget.last_error}")
    # Show an exclusion and the profile of one lane, as a reviewer would.
    lanes = widget.lanes_layer.features
    widget.lanes_layer.selected_data = {len(lanes) - 1}
    widget.exclude_lane("bubble")
    wait_until_idle(widget)
    widget.lanes_layer.selected_data = {2}
    viewer.layers.selection.active = widget.lanes_layer
    viewer.reset_view()
    wait_until_idle(widget)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(path=str(out), canvas_only=False, flash=False)
    print(f"{layers[0].name}: screenshot written to {out}")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
