"""Typed facade over the native kernels in ``edgemed._kernels`` (C++ in ``csrc/``).

One module per concept, mirroring ``csrc/``: ``image`` (frames and DICOM to tensors), ``signal``
(biosignal filtering, resampling, R-peaks), ``post`` (scores, boxes, peaks), ``ocr`` (DB boxes,
CTC), ``search`` (cosine top-k), ``vitals`` (NEWS2), ``rows`` (a tabular batch's dicts to one
table), ``values`` (non-finite floats in nested values). Inputs are validated at this boundary
and errors surface as :class:`edgemed.InputError`; native calls on arrays release the GIL, so
kernels may run in parallel threads (``dict_rows`` and ``all_finite``, which read Python
objects, hold it).
"""

from __future__ import annotations

from .image import ImageTransform, Placement, preprocess_image, preprocess_images, window_dicom
from .ocr import ctc_greedy_decode, db_boxes, ppocr_charset
from .post import Events, argmax, detect_events, nms, sigmoid, softmax, topk
from .rows import dict_rows
from .search import (
    cosine_topk,
    cosine_topk_fp16,
    cosine_topk_int8,
    l2_normalize,
    quantize_rows_int8,
)
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
from .values import all_finite
from .vitals import NEWS2_BANDS, News2, VitalSigns, news2, news2_many, news2_table

__all__ = [
    "HRV_TIME_DOMAIN_FEATURES",
    "NEWS2_BANDS",
    "Events",
    "ImageTransform",
    "News2",
    "Placement",
    "VitalSigns",
    "all_finite",
    "argmax",
    "butter_sos",
    "cosine_topk",
    "cosine_topk_fp16",
    "cosine_topk_int8",
    "ctc_greedy_decode",
    "db_boxes",
    "detect_events",
    "detect_r_peaks",
    "dict_rows",
    "hrv_time_domain",
    "l2_normalize",
    "news2",
    "news2_many",
    "news2_table",
    "nms",
    "notch_sos",
    "ppocr_charset",
    "preprocess_image",
    "preprocess_images",
    "quantize_rows_int8",
    "resample_poly",
    "rr_intervals",
    "sigmoid",
    "sliding_windows",
    "softmax",
    "sosfilt",
    "sosfilt_zi",
    "sosfiltfilt",
    "topk",
    "window_dicom",
    "zscore_windows",
]
