"""Writer contribution: a bands (or lanes) Shapes layer of the lane review as a CSV table.

The bands table is written in ``bands.csv`` columns with excluded bands left
out, exactly as the widget's "Export CSV" does.
"""

from __future__ import annotations

import pandas as pd

from blotquant.output import write_table

from ._model import export_table


def write_bands_csv(path, data, attributes):
    """Write the table carried by a Shapes layer's ``features``; returns the paths written."""
    from blotquant.pipeline import BAND_COLUMNS, LANE_TABLE_COLUMNS

    features = pd.DataFrame(attributes.get("features", {}))
    if set(BAND_COLUMNS) <= set(features.columns):
        table = export_table(features)
    elif set(LANE_TABLE_COLUMNS) <= set(features.columns):
        table = features[LANE_TABLE_COLUMNS]
    else:
        raise ValueError(f"layer {attributes.get('name', '')!r} is not a blotquant lanes or bands layer; "
                         "run the Lane review widget and save its lanes or bands layer")
    write_table(table, path)
    return [str(path)]
