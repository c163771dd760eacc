"""Typed facade over the native kernels in ``edgemed._kernels`` (C++ in ``csrc/``).

One module per concept, mirroring ``csrc/``: ``image`` (frames and DICOM to tensors), ``signal``
(biosignal filtering, resampling, R-peaks), ``post`` (scores, boxes, peaks), ``ocr`` (DB boxes,
CTC), ``search`` (cosine top-k), ``vitals`` (NEWS2). Inputs are validated at this boundary and
errors surface as :class:`edgemed.InputError`; native calls release the GIL, so kernels may run
in parallel threads.
"""

from __future__ import annotations

from .ocr import ctc_greedy_decode, db_boxes, ppocr_charset
from .post import Events, argmax, detect_events, nms, sigmoid, softmax, topk
from .search import (
    cosine_topk,
    cosine_topk_fp16,
    cosine_topk_int8,
    l2_normalize,
    quantize_rows_int8,
)

__all__ = [
    "Events",
    "argmax",
    "cosine_topk",
    "cosine_topk_fp16",
    "cosine_topk_int8",
    "ctc_greedy_decode",
    "db_boxes",
    "detect_events",
    "l2_normalize",
    "nms",
    "ppocr_charset",
    "quantize_rows_int8",
    "sigmoid",
    "softmax",
    "topk",
]
