"""Typed facade over the native kernels in ``edgemed._kernels`` (C++ in ``csrc/``).

One module per concept, mirroring ``csrc/``: ``image`` (frames and DICOM to tensors), ``signal``
(biosignal filtering, resampling, R-peaks), ``post`` (scores, boxes, peaks), ``ocr`` (DB boxes,
CTC), ``search`` (cosine top-k), ``vitals`` (NEWS2). Inputs are validated at this boundary and
errors surface as :class:`edgemed.InputError`; native calls release the GIL, so kernels may run
in parallel threads.
"""

from __future__ import annotations

from .search import cosine_topk, l2_normalize
from .signal import (
    HRV_TIME_DOMAIN_FEATURES,
    butter_sos,
    detect_r_peaks,
    hrv_time_domain,
    notch_sos,
    resample_poly,
    rr_intervals,
    sliding_windows,
    sosfilt,
    sosfilt_zi,
    sosfiltfilt,
    zscore_windows,
)

__all__ = [
    "HRV_TIME_DOMAIN_FEATURES",
    "butter_sos",
    "cosine_topk",
    "detect_r_peaks",
    "hrv_time_domain",
    "l2_normalize",
    "notch_sos",
    "resample_poly",
    "rr_intervals",
    "sliding_windows",
    "sosfilt",
    "sosfilt_zi",
    "sosfiltfilt",
    "zscore_windows",
]
