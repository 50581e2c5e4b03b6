"""The "Lane review" dock widget: a thin Qt layer over :class:`LaneReviewSession`.

It runs detection and every re-measurement in a napari thread worker (the
viewer never freezes), shows lanes and bands as editable Shapes layers whose
``features`` are the lanes table and the ``bands.csv`` table, re-measures when
a lane or band outline is moved, resized, added or deleted, plots the selected
lane's profile, records exclusions with reasons, saves the review beside the
image and exports the bands table. The numbers all come from
:func:`blotquant.quantify` (see :mod:`blotquant_napari._model`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ._model import BAND_COLOURS, EXCLUSION_REASONS, LaneReviewSession, blot_image_for_layer, study_settings

_MARK_COLOUR = "#d62728"  # labels and pen marks set aside, as in the overlay PNG
# Data events of a Shapes layer that end an edit (the -ing ones fire while dragging).
_FINISHED_EDITS = ("added", "changed", "removed")
_NEW_SHAPE_COLOUR = "#ffffff"


def prepare_session(data, metadata, source_path, name, n_lanes, study_file):
    """Open the layer's image, apply its study and any saved review, and measure it.

    Runs in a worker thread; returns ``(session, notes)`` where ``notes`` are
    messages for the user (review loaded or refused, study not usable).
    """
    from blotquant.errors import BlotQuantError, ReviewError

    image, channel = blot_image_for_layer(data, metadata, source_path=source_path, name=name)
    notes = []
    options, sample_ids = {}, {}
    if study_file:
        from blotquant.study_files import load_study

        try:
            options, sample_ids = study_settings(load_study(study_file), image, channel)
        except BlotQuantError as error:
            notes.append(("warning", f"study not used: {error}"))
    if n_lanes:
        options["lanes"] = int(n_lanes)
    session = LaneReviewSession(image, channel=channel, options=options, sample_ids=sample_ids)
    try:
        review = session.saved_review()
        if review is not None:
            session.start_from_review(review)
    except ReviewError as error:
        notes.append(("warning", f"saved review not used: {error}; saving will keep it as an earlier version"))
        review = None
    if review is not None:
        session.accept(session.measure())
        who = f" by {review.reviewer}" if review.reviewer else ""
        when = f" ({review.reviewed_at})" if review.reviewed_at else ""
        notes.append(("info", f"continuing the review {review.path.name}{who}{when}"))
    else:
        session.start_from_detection(session.detect())
    return session, notes


class LaneReviewWidget(QWidget):
    """Review the lanes and bands blotquant finds on an image layer, and save the review."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = None
        self.lanes_layer = None
        self.bands_layer = None
        self.last_error = None
        self.selected = None  # (strip, lane, band or None)
        self._worker = None
        self._pending = False
        self._syncing = False
        self._connected = set()
        self._build()
        self.viewer.layers.events.inserted.connect(self._refresh_image_choices)
        self.viewer.layers.events.removed.connect(self._refresh_image_choices)
        self._refresh_image_choices()

    # -- layout ----------------------------------------------------------------

    def _build(self):
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.image_choice = QComboBox()
        self.image_choice.setToolTip("The image layer (one channel) to analyse")
        form.addRow("Image", self.image_choice)
        self.lane_count = QSpinBox()
        self.lane_count.setRange(0, 60)
        self.lane_count.setSpecialValueText("auto")
        self.lane_count.setToolTip("Lanes per strip, empty lanes included (auto: found by blotquant)")
        form.addRow("Lanes", self.lane_count)
        self.study_file = QLineEdit()
        self.study_file.setPlaceholderText("study.toml (optional: sample ids, band rows)")
        form.addRow("Study", self.study_file)
        layout.addLayout(form)

        self.detect_button = QPushButton("Detect lanes and bands")
        self.detect_button.setToolTip("Start over: from the review saved beside the image if there is one, "
                                      "else from a fresh detection (unsaved edits are dropped)")
        self.detect_button.clicked.connect(self.run_detection)
        layout.addWidget(self.detect_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.status = QLabel("Choose an image layer and detect its lanes and bands.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        self.plot = LaneProfilePlot(self)
        layout.addWidget(self.plot, stretch=1)
        self.details = QLabel("")
        self.details.setWordWrap(True)
        layout.addWidget(self.details)

        exclusion = QGroupBox("Exclude")
        row = QHBoxLayout(exclusion)
        self.reason = QComboBox()
        self.reason.setEditable(True)
        self.reason.addItems(EXCLUSION_REASONS)
        self.reason.setToolTip("Why the lane or band is left out (any text)")
        row.addWidget(self.reason, stretch=1)
        for text, slot in (("Lane", self.exclude_lane), ("Band", self.exclude_band), ("Include", self.include)):
            button = QPushButton(text)
            button.clicked.connect(lambda _=False, slot=slot: slot())
            row.addWidget(button)
        layout.addWidget(exclusion)

        review = QGroupBox("Review")
        form = QFormLayout(review)
        self.reviewer = QLineEdit()
        self.reviewer.setPlaceholderText("your name")
        form.addRow("Reviewer", self.reviewer)
        self.notes = QLineEdit()
        form.addRow("Notes", self.notes)
        buttons = QHBoxLayout()
        self.save_button = QPushButton("Save review")
        self.save_button.clicked.connect(lambda: self.save_review())
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(lambda: self.export_csv())
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.export_button)
        form.addRow(buttons)
        layout.addWidget(review)

    def _refresh_image_choices(self, event=None):
        from napari.layers import Image

        current = self.image_choice.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        self.image_choice.clear()
        self.image_choice.addItems(names)
        if current in names:
            self.image_choice.setCurrentText(current)

    def image_layer(self):
        """The image layer chosen for analysis, or None."""
        name = self.image_choice.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    # -- running blotquant -----------------------------------------------------

    @property
    def busy(self):
        """True while detection or a re-measurement runs."""
        return self._worker is not None

    def run_detection(self):
        """Detect lanes and bands on the chosen layer (continuing a saved review if there is one)."""
        from napari.utils.notifications import show_warning

        layer = self.image_layer()
        if layer is None:
            show_warning("Lane review: open a blot image first (File > Open, or File > Open Sample > blotquant)")
            return None
        if self.busy:
            show_warning("Lane review: blotquant is still measuring; wait for it to finish")
            return None
        metadata = dict(layer.metadata)
        study = self.study_file.text().strip() or (metadata.get("blotquant") or {}).get("study")
        if study and not self.study_file.text().strip():
            self.study_file.setText(study)
        arguments = (np.asarray(layer.data), metadata, getattr(layer.source, "path", None), layer.name,
                     self.lane_count.value(), study)
        self.status.setText(f"Detecting lanes and bands in {layer.name}…")
        self._image_name = layer.name
        return self._start(prepare_session, arguments, self._on_detected, "detecting lanes and bands")

    def requantify(self):
        """Measure again with the current lanes, band edits and exclusions."""
        if self.session is None:
            return None
        if self.session.lanes is None:
            from napari.utils.notifications import show_info

            show_info("Lane review: no lanes left; draw lanes or run the detection again")
            return None
        if self.busy:
            self._pending = True
            return None
        return self._start(self.session.measure, (self.session.draft_review(),), self._on_measured, "measuring")

    def _start(self, function, arguments, on_returned, what):
        from napari.qt.threading import create_worker

        worker = create_worker(function, *arguments, _start_thread=False, _ignore_errors=True,
                               _progress={"total": 0, "desc": f"Lane review: {what}"})
        worker.returned.connect(on_returned)
        worker.errored.connect(self._on_error)
        self._worker = worker
        self.progress.setVisible(True)
        self.detect_button.setEnabled(False)
        worker.start()
        return worker

    def _finish_work(self):
        self._worker = None
        self.progress.setVisible(False)
        self.detect_button.setEnabled(True)

    def _on_detected(self, outcome):
        from napari.utils.notifications import show_info, show_warning

        self._finish_work()
        self.session, notes = outcome
        self._pending = False
        for kind, text in notes:
            (show_info if kind == "info" else show_warning)(f"Lane review: {text}")
        self._show_result()

    def _on_measured(self, result):
        self._finish_work()
        if self._pending:
            # The outlines changed while measuring: this result is already stale.
            self._pending = False
            self.requantify()
            return
        self.session.accept(result)
        self._show_result()

    def _on_error(self, error):
        from napari.utils.notifications import show_error

        self._finish_work()
        self._pending = False
        self.last_error = error
        self.status.setText(f"Error: {error}")
        show_error(f"Lane review: {error}")

    # -- layers ----------------------------------------------------------------

    def _show_result(self):
        session = self.session
        base = getattr(self, "_image_name", "blot")
        self._syncing = True
        try:
            outlines, features, colours = session.lane_shapes()
            self.lanes_layer = self._update_layer(self.lanes_layer, f"{base} lanes", outlines, features, colours,
                                                  {"strip": -1, "lane": -1}, self._on_lanes_edited,
                                                  text=_lane_label_style(features))
            outlines, features, colours = session.band_shapes()
            self.bands_layer = self._update_layer(self.bands_layer, f"{base} bands", outlines, features, colours,
                                                  {"strip": -1, "lane": -1, "band": -1}, self._on_bands_edited)
            self._show_marks(f"{base} ignored marks", *session.mark_shapes())
        finally:
            self._syncing = False
        self._show_summary()
        self._show_selection()

    def _show_marks(self, name, outlines, features):
        """A read-only layer outlining the labels and pen marks detection set aside (none: no layer)."""
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        if not outlines:
            if layer is not None:
                self.viewer.layers.remove(layer)
            return
        shapes = [(outline, "rectangle") for outline in outlines]
        if layer is None:
            layer = self.viewer.add_shapes(shapes, name=name, features=features, face_color="transparent",
                                           edge_color=_MARK_COLOUR, edge_width=1, opacity=0.7)
        else:
            layer.data = shapes
            layer.features = features
            layer.edge_color = _MARK_COLOUR
        layer.editable = False

    def _update_layer(self, layer, name, outlines, features, colours, keys, on_edit, text=None):
        if layer is None or layer not in self.viewer.layers:
            layer = self.viewer.layers[name] if name in self.viewer.layers else None
        if layer is None:
            layer = self.viewer.add_shapes([(outline, "rectangle") for outline in outlines], name=name,
                                           features=features, face_color="transparent", edge_width=2)
        else:
            layer.data = [(outline, "rectangle") for outline in outlines]
            layer.features = features
        if text and len(features):
            layer.text = text
        if len(features):
            layer.feature_defaults = _feature_defaults(features, keys)
        if colours:
            layer.edge_color = colours
        layer.current_edge_color = _NEW_SHAPE_COLOUR
        layer.current_face_color = "transparent"
        if id(layer) not in self._connected:
            layer.events.data.connect(on_edit)
            layer.selected_data.events.items_changed.connect(lambda *a, layer=layer: self._on_selection(layer))
            self._connected.add(id(layer))
        return layer

    def _on_lanes_edited(self, event):
        if self._syncing or self.session is None or str(event.action) not in _FINISHED_EDITS:
            return
        features = self.lanes_layer.features
        origins = [None if s < 0 else (int(s), int(n)) for s, n in zip(features["strip"], features["lane"])]
        self.session.set_lanes(list(self.lanes_layer.data), origins)
        self.selected = None
        self.requantify()

    def _on_bands_edited(self, event):
        from napari.utils.notifications import show_warning

        if self._syncing or self.session is None or str(event.action) not in _FINISHED_EDITS:
            return
        features = self.bands_layer.features
        origins = [None if s < 0 else (int(s), int(n), int(b))
                   for s, n, b in zip(features["strip"], features["lane"], features["band"])]
        outside = self.session.set_bands(list(self.bands_layer.data), origins)
        if outside:
            show_warning(f"Lane review: {len(outside)} band outline(s) lie in no lane and are ignored")
        self.requantify()

    # -- selection, plot and summary -------------------------------------------

    def _on_selection(self, layer):
        if self._syncing or not len(layer.selected_data):
            return
        row = layer.features.iloc[sorted(layer.selected_data)[0]]
        if row["strip"] < 0:
            return
        band = int(row["band"]) if layer is self.bands_layer else None
        self.select(int(row["strip"]), int(row["lane"]), band)

    def select(self, strip, lane, band=None):
        """Make a lane (and optionally one of its bands) the subject of the plot and the exclude buttons."""
        self.selected = (int(strip), int(lane), None if band is None else int(band))
        self._show_selection()

    def _show_selection(self):
        if self.session is None or self.selected is None:
            self.plot.show_lane(None, None, pd.DataFrame(), "")
            self.details.setText("Select a lane or band to see its profile and numbers.")
            return
        strip, lane, band = self.selected
        profile, bands = self.session.lane_details(strip, lane)
        title = f"Lane {self.session.lane_label(strip, lane)}"
        self.plot.show_lane(profile, bands, band, title)
        lines = [title + (" (excluded)" if bands["excluded"].all() and len(bands) else "")]
        for row in bands.to_dict("records"):
            marks = [word for word, on in (("saturated", row["saturated"]), ("excluded: " + str(row["exclusion_reason"]),
                                                                             row["excluded"])) if on]
            lines.append(f"band {row['band']}: volume {row['volume']:.4g}, SNR {row['snr']:.1f}"
                         + (f" ({', '.join(marks)})" if marks else ""))
        self.details.setText("\n".join(lines) if bands.size else title + ": no band")

    def _show_summary(self):
        result = self.session.result
        states = self.session.band_shapes()[1]
        counts = states["state"].value_counts() if len(states) else pd.Series(dtype=int)
        review = self.session.loaded_review
        parts = [f"{len(result.lanes)} lanes, {len(result.bands)} bands ({self.session.channel})"]
        parts += [f"{counts[s]} {s}" for s in ("saturated", "low signal", "excluded") if counts.get(s, 0)]
        if review is not None and review.path is not None:
            parts.append(f"review: {review.path.name}")
        self.status.setText("; ".join(parts))

    # -- exclusions --------------------------------------------------------------

    def _reason(self, reason):
        return (reason if reason is not None else self.reason.currentText()).strip()

    def exclude_lane(self, reason=None):
        """Exclude the selected lane with a reason (default: the one in the reason box)."""
        return self._exclude(band=False, reason=reason)

    def exclude_band(self, reason=None):
        """Exclude the selected band with a reason."""
        return self._exclude(band=True, reason=reason)

    def _exclude(self, *, band, reason):
        from napari.utils.notifications import show_warning

        if self.session is None or self.selected is None or (band and self.selected[2] is None):
            show_warning(f"Lane review: select a {'band' if band else 'lane'} first")
            return False
        strip, lane, number = self.selected
        try:
            self.session.exclude(strip, lane, number if band else None, self._reason(reason))
        except ValueError as error:
            show_warning(f"Lane review: {error}")
            return False
        self.requantify()
        return True

    def include(self):
        """Undo the exclusion of the selected band, or else of the selected lane."""
        if self.session is None or self.selected is None:
            return False
        strip, lane, band = self.selected
        before = len(self.session.exclusions)
        self.session.include(strip, lane, band)
        if band is not None and len(self.session.exclusions) == before:
            self.session.include(strip, lane, None)
        self.requantify()
        return True

    # -- saving ----------------------------------------------------------------------

    def save_review(self):
        """Save the review beside the image; returns ``(saved, previous)`` or None."""
        from napari.utils.notifications import show_error, show_info

        from blotquant.errors import BlotQuantError

        if self.session is None:
            show_error("Lane review: nothing to save; run the detection first")
            return None
        try:
            saved, previous = self.session.save(self.reviewer.text(), self.notes.text())
        except (ValueError, OSError, BlotQuantError) as error:
            show_error(f"Lane review: review not saved: {error}")
            return None
        message = f"Review saved to {saved}"
        if previous is not None:
            message += f"; the earlier review was kept as {previous.name}"
        show_info(message)
        self.status.setText(message)
        self.session.loaded_review = self.session.draft_review(self.reviewer.text().strip(), self.notes.text())
        self.session.loaded_review.path = saved
        return saved, previous

    def export_csv(self, path=None):
        """Write the bands (bands.csv columns, excluded bands left out); asks for a file when ``path`` is None."""
        from napari.utils.notifications import show_error, show_info, show_warning

        if self.session is None or self.session.result is None:
            show_error("Lane review: nothing to export; run the detection first")
            return None
        if self.busy:
            show_warning("Lane review: still measuring; export again in a moment")
            return None
        if path is None:
            image = self.session.image
            start = (image.path.parent if image.path else Path.cwd()) / f"{Path(image.name).stem}_bands.csv"
            path, _ = QFileDialog.getSaveFileName(self, "Export bands table", str(start), "CSV (*.csv)")
            if not path:
                return None
        try:
            written = self.session.export_csv(path)
        except (ValueError, OSError) as error:
            show_error(f"Lane review: export failed: {error}")
            return None
        show_info(f"Bands table written to {written}")
        return written


class LaneProfilePlot(QWidget):
    """Profile of one lane: signal and background per row, band limits shaded."""

    def __init__(self, parent=None):
        super().__init__(parent)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4, 2.4), tight_layout=True, facecolor="#262930")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(180)
        self.axes = self.figure.add_subplot()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.show_lane(None, None, pd.DataFrame(), "")

    def show_lane(self, profile, bands, selected_band, title):
        """Draw ``profile`` (a LaneProfile or None) with the rows of ``bands`` shaded."""
        axes = self.axes
        axes.clear()
        axes.set_facecolor("#262930")
        for spine in axes.spines.values():
            spine.set_color("#aaaaaa")
        axes.tick_params(colors="#dddddd", labelsize=7)
        if profile is None:
            axes.text(0.5, 0.5, "select a lane", color="#aaaaaa", ha="center", va="center", transform=axes.transAxes)
            self.canvas.draw_idle()
            return
        axes.plot(profile.rows, profile.signal, color="#ffffff", lw=1, label="signal")
        axes.plot(profile.rows, profile.background, color="#26c6da", lw=1, ls="--", label="background")
        for row in bands.to_dict("records"):
            state = "excluded" if row["excluded"] else "saturated" if row["saturated"] else "ok"
            alpha = 0.45 if row["band"] == selected_band else 0.2
            axes.axvspan(row["y_top"] - 0.5, row["y_bottom"] + 0.5, color=BAND_COLOURS[state], alpha=alpha, lw=0)
            axes.text((row["y_top"] + row["y_bottom"]) / 2, 1.0, str(row["band"]), color="#dddddd", fontsize=7,
                      ha="center", va="bottom", transform=axes.get_xaxis_transform())
        axes.set_xlabel("image row", color="#dddddd", fontsize=8)
        axes.set_ylabel("sum across lane", color="#dddddd", fontsize=8)
        axes.set_title(title, color="#ffffff", fontsize=9, loc="left")
        axes.legend(fontsize=7, facecolor="#262930", labelcolor="#dddddd", edgecolor="#555555", loc="upper right")
        self.canvas.draw_idle()


def _lane_label_style(features):
    """Lane labels written upwards above the middle of each lane, clear of the bands."""
    half_width = float(features["width"].median()) / 2.0 if len(features) else 0.0
    return {"string": "{label}", "anchor": "upper_left", "rotation": -90, "translation": [-2.0, half_width],
            "color": "#ffee58", "size": 9}


def _feature_defaults(features, keys):
    """Values a newly drawn outline gets: ``keys`` (-1 marks it new), else 0, NaN, False or empty text."""
    defaults = {}
    for name, dtype in features.dtypes.items():
        if name in keys:
            defaults[name] = keys[name]
        elif pd.api.types.is_bool_dtype(dtype):
            defaults[name] = False
        elif pd.api.types.is_integer_dtype(dtype):
            defaults[name] = 0
        elif pd.api.types.is_numeric_dtype(dtype):
            defaults[name] = np.nan
        else:
            defaults[name] = ""
    return defaults
