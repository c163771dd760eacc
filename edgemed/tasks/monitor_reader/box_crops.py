"""Cutting a detected text box out of the screen for the recogniser (rapidocr's geometry).

A box is four corners from the detector; the recogniser wants an upright rectangle. The widened
crop is the second look :meth:`MonitorPostprocessor.second_read` takes at a value.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt


def order_clockwise(pts: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """rapidocr's ``order_points_clockwise``: top-left, top-right, bottom-right, bottom-left."""
    xs = pts[np.argsort(pts[:, 0], kind="stable")]
    left = xs[:2][np.argsort(xs[:2, 1], kind="stable")]
    right = xs[2:][np.argsort(xs[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


def crop_box(image: npt.NDArray[np.uint8], pts: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """rapidocr's ``get_rotate_crop_image``: the box warped to an upright rectangle."""
    w = int(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3])))
    h = int(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2])))
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(pts, dst)
    out = cv2.warpPerspective(
        image, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if out.shape[0] >= 1.5 * out.shape[1]:
        out = np.ascontiguousarray(np.rot90(out))
    return np.asarray(out, dtype=np.uint8)


def widened_crop(
    image: npt.NDArray[np.uint8], pts: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    """The box widened by a fifth of its height on every side and blurred by 3 % of it: joins
    the gaps of segmented digits and shows edges a tight box may have cut."""
    h, w = image.shape[:2]
    centre = pts.mean(axis=0)
    height = float(np.linalg.norm(pts[0] - pts[3]))
    out = pts + np.sign(pts - centre) * 0.2 * height
    out[:, 0] = np.clip(out[:, 0], 0, w - 1)
    out[:, 1] = np.clip(out[:, 1], 0, h - 1)
    crop = crop_box(image, out.astype(np.float32))
    sigma = max(0.5, 0.03 * height)
    return np.asarray(cv2.GaussianBlur(crop, (0, 0), sigma), dtype=np.uint8)
