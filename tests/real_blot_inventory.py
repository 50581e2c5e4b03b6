"""The real images of ``shared/real_blots`` that arrived with ground truth (see its PROVENANCE.md).

One list for every test module that checks the folder's inventory, so an image added
there fails each inventory test until it is named here, with its documented polarity.
"""

#: Alpha Innotech 16-bit chemiluminescence captures of rat hearts; one 8-bit palette TIFF, dark on light.
RAT_HEART = "wb_zdf_rat_heart_chemi16/"
RAT_HEART_POLARITY = {
    RAT_HEART + name: "light_on_dark"
    for name in (
        "B1AR_July23_B1AR_10wtop_10wbottom.tif",
        "B1AR_July24_B1AR_16wbottom.tif",
        "B1AR_July24_B1AR_16wbottom_GAPDH.tif",
        "B1AR_July4_B1AR_10wtop_16wbottom.tif",
        "B1AR_July4_B1AR_10wtop_16wbottom_GAPDH.tif",
        "B1AR_March19_B1AR_GAPDH_16w_Bottom.tif",
        "B1AR_Oct10_B1ARtop_GAPDHbottom.tif",
        "B2AR_July23_B2AR_16wbottom.tif",
        "B2AR_July23_B2AR_16wbottom_GAPDH.tif",
        "B2AR_July24_B2AR_10wbottom.tif",
        "B2AR_July24_B2AR_10wbottom_GAPDH.tif",
        "B2AR_July4_B2AR_10wtop_16wbottom.tif",
        "B2AR_July4_B2AR_10wtop_16wbottom_GAPDH.tif",
        "B2AR_June20_B2AR_10wtop_16wbottom.tif",
        "B2AR_June20_B2AR_10wtop_16wbottom_GAPDH.tif",
        "B2AR_Oct10_B2ARtop_GAPDHbottom.tif",
        "B3AR_April24_B3AR_10wtop.tif",
        "B3AR_April24_B3AR_10wtop_16wbottom_GAPDH.tif",
        "B3AR_April24_B3AR_16wbottom.tif",
        "B3AR_June25_B3AR_10wtop_16wbottom.tif",
        "B3AR_June25_B3AR_10wtop_16wbottom_GAPDH.tif",
        "B3AR_Oct1_B3ARbottom.tif",
    )
}
RAT_HEART_POLARITY[RAT_HEART + "B1AR_March19_B1AR16w_Bottom.tif"] = "dark_on_light"

#: A film scan with typed labels, and four JPEG crops on a white canvas: all dark on light.
FILM_AND_JPEG_POLARITY = {
    "wb_film_and_jpeg_athenaz2/" + name: "dark_on_light"
    for name in (
        "GAPDH_blot_rep_4_5.tif",
        "SCC25DDP_BMI1.jpg",
        "SCC25DDP_GAPDH.jpg",
        "TSCCADDP_BMI1.jpg",
        "TSCCADDP_GAPDH.jpg",
    )
}

GROUND_TRUTH_POLARITY = {**RAT_HEART_POLARITY, **FILM_AND_JPEG_POLARITY}
