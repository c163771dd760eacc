"""Typed facade over the native kernels in ``edgemed._kernels`` (C++ in ``csrc/``).

One module per concept, mirroring ``csrc/``: ``image`` (frames and DICOM to tensors), ``signal``
(biosignal filtering, resampling, R-peaks), ``post`` (scores, boxes, peaks), ``ocr`` (DB boxes,
CTC), ``search`` (cosine top-k), ``vitals`` (NEWS2). Inputs are validated at this boundary and
errors surface as :class:`edgemed.InputError`; native calls release the GIL, so kernels may run
in parallel threads.
"""

from __future__ import annotations

from .image import ImageTransform, Placement, preprocess_image, preprocess_images, window_dicom
from .search import cosine_topk, l2_normalize
from .signal import (
    butter_sos,
    detect_r_peaks,
    notch_sos,
    resample_poly,
    rr_intervals,
    sliding_windows,
    sosfilt,
    sosfilt_zi,
    sosfiltfilt,
    zscore_windows,
)
from .vitals import NEWS2_BANDS, News2, VitalSigns, news2, news2_many, news2_table

__all__ = [
    "NEWS2_BANDS",
    "ImageTransform",
    "News2",
    "Placement",
    "VitalSigns",
    "butter_sos",
    "cosine_topk",
    "detect_r_peaks",
    "l2_normalize",
    "news2",
    "news2_many",
    "news2_table",
    "notch_sos",
    "preprocess_image",
    "preprocess_images",
    "resample_poly",
    "rr_intervals",
    "sliding_windows",
    "sosfilt",
    "sosfilt_zi",
    "sosfiltfilt",
    "window_dicom",
    "zscore_windows",
]
