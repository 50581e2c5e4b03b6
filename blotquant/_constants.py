"""Names the command line needs before any numeric code is imported (private).

Kept free of numpy and scipy so that ``blotquant --help`` and the parser start fast;
the modules that use them re-export them.
"""

#: Band-volume methods: ``fit`` (the default, a profile fit) or a box sum with a background.
BACKGROUND_METHODS = ("auto", "fit", "valley", "beyond", "border_median", "rubber_band", "rolling_ball",
                      "rolling_ball_valley", "none")
