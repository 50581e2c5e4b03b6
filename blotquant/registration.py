"""Registration of a blot's re-probed images onto one lane geometry.

A membrane stripped and re-probed, or imaged again, sits shifted and slightly turned
in the imager. :func:`estimate_image_offset` measures that shift and rotation from
polarity-free edge structure, and :func:`transform_lane_geometry` moves a lane layout
found on one image onto another.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from ._shared import block_mean

_REGISTRATION_SIZE = 384  # longer side of the working copies, in pixels


def _registration_features(plane, factor):
    """Polarity-free, background-free structure of an image for registration.

    The gradient magnitude of a smoothed, block-averaged copy: lane edges and band
    edges survive, the membrane's slow background and the sign of the signal do not.
    """
    small = block_mean(np.asarray(plane, dtype=np.float32), factor)
    small = ndi.gaussian_filter(small, 1.0)
    magnitude = np.hypot(ndi.sobel(small, axis=0), ndi.sobel(small, axis=1))
    return magnitude / (magnitude.std() + 1e-12)


def _rotation_matrix(angle_deg):
    """Rotation acting on (row, col) coordinates."""
    a = math.radians(angle_deg)
    return np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])


def _windowed_phase_correlation(reference, moving, max_shift):
    """Shift of ``moving`` relative to ``reference`` (moving = reference shifted by it), and peak height.

    Phase correlation restricted to shifts of at most ``max_shift`` (rows, cols), so that
    images whose bands lie at different rows cannot pull the match a whole band away.
    """
    window = np.outer(np.hanning(reference.shape[0]), np.hanning(reference.shape[1]))
    spectrum = np.fft.fft2(moving * window) * np.conj(np.fft.fft2(reference * window))
    spectrum /= np.abs(spectrum) + 1e-12
    surface = np.fft.fftshift(np.fft.ifft2(spectrum).real)
    centre = np.array(surface.shape) // 2
    rows = slice(centre[0] - max_shift[0], centre[0] + max_shift[0] + 1)
    cols = slice(centre[1] - max_shift[1], centre[1] + max_shift[1] + 1)
    local = surface[rows, cols]
    peak = np.unravel_index(int(np.argmax(local)), local.shape)
    shift = []
    for axis, position in enumerate(peak):
        offset = float(position)
        line = local[:, peak[1]] if axis == 0 else local[peak[0], :]
        if 0 < position < line.size - 1:
            left, mid, right = line[position - 1 : position + 2]
            curvature = left - 2 * mid + right
            if curvature < 0:
                offset += 0.5 * (left - right) / curvature
        shift.append(offset - max_shift[axis])
    return np.array(shift), float(local[peak])


def estimate_image_offset(reference, moving, *, rotation_deg=None, max_rotation_deg=2.0,
                          rotation_step_deg=0.25, max_shift_fraction=0.08):
    """Estimate how a re-probed membrane moved between two images of the same blot.

    The model is a rotation about the image centre followed by a shift: the membrane
    point at ``p`` in ``reference`` is at ``R(angle) (p - c) + c + (dy, dx)`` in ``moving``.
    Both images are reduced to about 384 pixels and turned into gradient-magnitude maps
    (so polarity, exposure and background do not matter); the shift is the peak of
    their phase correlation. The angle is best given (``rotation_deg``, e.g. from the
    difference of the two images' lane tilts, which bands across the whole blot measure
    precisely); otherwise the angle whose correlation peaks highest is taken, which is
    coarse when the two images show bands at different rows.

    Parameters
    ----------
    reference, moving : (M, N) array
        One channel of each image, in any units; same shape.
    rotation_deg : float, optional
        The rotation, when known; then only the shift is searched.
    max_rotation_deg, rotation_step_deg : float
        Angles searched when ``rotation_deg`` is not given.
    max_shift_fraction : float
        Largest shift searched, as a fraction of each image side.

    Returns
    -------
    dict
        ``dy``, ``dx`` (pixels), ``rotation_deg`` and ``score`` (height of the
        correlation peak; about 0.05 and more for a clear match).
    """
    reference = np.asarray(reference, dtype=np.float32)
    moving = np.asarray(moving, dtype=np.float32)
    if reference.shape != moving.shape:
        raise ValueError(f"images differ in shape: {reference.shape} and {moving.shape}")
    factor = max(1, int(math.ceil(max(reference.shape) / _REGISTRATION_SIZE)))
    ref_small = _registration_features(reference, factor)
    mov_small = _registration_features(moving, factor)
    centre = (np.array(mov_small.shape) - 1) / 2.0
    max_shift = np.maximum(2, (np.array(mov_small.shape) * max_shift_fraction).astype(int))
    best = None
    if rotation_deg is not None:
        angles = [float(rotation_deg)]
    else:
        angles = np.arange(-max_rotation_deg, max_rotation_deg + rotation_step_deg / 2, rotation_step_deg)
    for angle in angles:  # ~17 small FFTs
        rotation = _rotation_matrix(angle)
        # Resample moving back onto the reference's orientation: out[p] = moving[R (p - c) + c].
        unturned = ndi.affine_transform(mov_small, rotation, offset=centre - rotation @ centre,
                                        order=1, mode="nearest")
        shift, score = _windowed_phase_correlation(ref_small, unturned, max_shift)
        if best is None or score > best[2]:
            best = (angle, shift, score)
    angle, shift, score = best
    # The residual translation was measured in the unturned frame; turn it into the moving frame.
    dy, dx = _rotation_matrix(angle) @ shift * factor
    return {"dy": float(dy), "dx": float(dx), "rotation_deg": float(angle), "score": score}


def transform_lane_geometry(lanes, offset, image_shape):
    """Carry a lane table onto an image of the same membrane that moved by ``offset``.

    Parameters
    ----------
    lanes : pandas.DataFrame
        ``strip``, ``lane``, ``x_left``, ``x_right``, ``y_top``, ``y_bottom``, ``slope``
        (columns at the strip's middle row; see :mod:`blotquant.lanes`).
    offset : dict
        ``dy``, ``dx``, ``rotation_deg`` from :func:`estimate_image_offset`.
    image_shape : (int, int)
        Shape of the moved image.

    Returns
    -------
    pandas.DataFrame
        The same lanes in the moved image's coordinates, clipped to it.
    """
    height, width = image_shape
    centre = np.array([(height - 1) / 2.0, (width - 1) / 2.0])
    rotation = _rotation_matrix(offset["rotation_deg"])
    shift = np.array([offset["dy"], offset["dx"]])
    y_mid = (lanes["y_top"] + lanes["y_bottom"]).to_numpy(float) / 2.0
    slope = lanes["slope"].to_numpy(float)
    moved = lanes[["strip", "lane"]].copy()
    ends = {}
    for edge in ("x_left", "x_right"):
        for end in ("y_top", "y_bottom"):
            y = lanes[end].to_numpy(float)
            x = lanes[edge].to_numpy(float) + slope * (y - y_mid)
            points = (rotation @ (np.vstack([y, x]) - centre[:, None])) + (centre + shift)[:, None]
            ends[edge, end] = points
    new_top = np.minimum(ends["x_left", "y_top"][0], ends["x_right", "y_top"][0])
    new_bottom = np.maximum(ends["x_left", "y_bottom"][0], ends["x_right", "y_bottom"][0])
    moved["y_top"] = np.clip(np.rint(new_top), 0, height - 2).astype(int)
    moved["y_bottom"] = np.clip(np.rint(new_bottom), moved["y_top"] + 1, height - 1).astype(int)
    new_mid = (moved["y_top"] + moved["y_bottom"]).to_numpy(float) / 2.0
    slopes = []
    for edge in ("x_left", "x_right"):
        top, bottom = ends[edge, "y_top"], ends[edge, "y_bottom"]
        edge_slope = (bottom[1] - top[1]) / (bottom[0] - top[0])
        moved[edge] = top[1] + edge_slope * (new_mid - top[0])
        slopes.append(edge_slope)
    moved["slope"] = (slopes[0] + slopes[1]) / 2.0
    moved["x_left"] = moved["x_left"].clip(lower=0.0, upper=width - 2.0)
    moved["x_right"] = np.maximum(moved["x_right"].clip(upper=width - 1.0), moved["x_left"] + 1.0)
    return moved


_GEOMETRY_COLUMNS = ["strip", "lane", "x_left", "x_right", "y_top", "y_bottom", "slope"]
#: Below this correlation peak a registration is not trusted and the images are assumed aligned.
MIN_REGISTRATION_SCORE = 0.02


def _rotation_from_tilts(*, geometry_slope, plane, full_scale, n_lanes):
    """Rotation (degrees, :func:`estimate_image_offset` convention) between a reference lane tilt
    and the tilt the lane finder measures on ``plane``; None when it finds no lanes there."""
    from .errors import LaneDetectionError
    from .io import to_signal
    from .lanes import detect_lanes

    try:
        signal, _ = to_signal(plane, full_scale=full_scale)
        moving_slope = float(detect_lanes(signal, n_lanes=n_lanes)["slope"].median())
    except LaneDetectionError:
        return None
    # A lane running straight down, (1, 0) in (row, col), leaves R(angle) with slope -tan(angle).
    return math.degrees(math.atan(geometry_slope) - math.atan(moving_slope))


