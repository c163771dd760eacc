# Stub for the private native module edgemed._kernels (csrc/bindings). Keep in sync: tested.
import numpy as np
import numpy.typing as npt

def l2_normalize_inplace(x: npt.NDArray[np.float32], eps: float = 1e-12) -> None: ...
def cosine_topk(
    queries: npt.NDArray[np.float32],
    matrix: npt.NDArray[np.float32],
    k: int,
    unit_rows: bool = False,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...

# image (csrc/bindings/image.cpp)
def resize_normalize(
    image: npt.NDArray[np.uint8],
    out: npt.NDArray[np.float32],
    interpolation: int,
    placement: tuple[int, int, int, int],
    channel_map: list[int],
    alpha: list[float],
    beta: list[float],
    pad_value: float,
) -> None: ...
def placement(
    fit: str, src_h: int, src_w: int, out_h: int, out_w: int, shorter: int = 0
) -> tuple[int, int, int, int]: ...
def window(
    pixels: npt.NDArray[np.int16] | npt.NDArray[np.uint16],
    out: npt.NDArray[np.float32] | npt.NDArray[np.uint8],
    slope: float,
    intercept: float,
    center: float,
    width: float,
    function: int,
    out_min: float,
    out_max: float,
) -> None: ...

# vitals (csrc/bindings/vitals.cpp)
def news2(
    observations: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int32], npt.NDArray[np.int8]]: ...
def cosine_topk_int8(
    queries: npt.NDArray[np.float32], matrix: npt.NDArray[np.int8], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
def cosine_topk_fp16(
    queries: npt.NDArray[np.float32], matrix: npt.NDArray[np.float16], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
def quantize_rows_int8(
    matrix: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]: ...
def softmax(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
def softmax_planes(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
def sigmoid(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
def topk(
    x: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
def argmax(x: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]: ...
def nms(
    boxes: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    iou_threshold: float,
    score_threshold: float,
    max_detections: int,
) -> npt.NDArray[np.int64]: ...
def detect_events(
    x: npt.NDArray[np.float32], high: float, low: float, min_duration: int, min_gap: int
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]
]: ...
def ctc_greedy_ids(
    probs: npt.NDArray[np.float32], blank: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...
def db_boxes(
    prob_map: npt.NDArray[np.float32],
    thresh: float,
    box_thresh: float,
    unclip_ratio: float,
    max_candidates: int,
    min_size: float,
    dilate: bool,
    dest_width: int,
    dest_height: int,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...

# signal (csrc/bindings/signal.cpp): x is float64 (channels, samples), any strides.
def sosfilt(
    sos: npt.NDArray[np.float64],
    x: npt.NDArray[np.float64],
    zi: npt.NDArray[np.float64] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]: ...
def sosfilt_zi(sos: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
def sosfiltfilt(
    sos: npt.NDArray[np.float64], x: npt.NDArray[np.float64], padtype: str, padlen: int
) -> npt.NDArray[np.float64]: ...
def notch_sos(f0: float, q: float, fs: float) -> npt.NDArray[np.float64]: ...
def butter_sos(
    order: int, cutoff: list[float], btype: str, fs: float
) -> npt.NDArray[np.float64]: ...
def resample_poly(x: npt.NDArray[np.float64], up: int, down: int) -> npt.NDArray[np.float64]: ...
def zscore_windows(
    x: npt.NDArray[np.float64], window: int, step: int, eps: float
) -> npt.NDArray[np.float32]: ...
def detect_r_peaks(ecg: npt.NDArray[np.float64], fs: float) -> npt.NDArray[np.int64]: ...
def hrv_time_domain(
    rri: npt.NDArray[np.float64],
    rri_times: npt.NDArray[np.float64],
    window_times: npt.NDArray[np.float64],
    lookback: float,
    lookforward: float,
) -> npt.NDArray[np.float64]: ...
def dict_rows(rows: object, names: tuple[str, ...]) -> npt.NDArray[np.float64] | None: ...
def all_finite(value: object) -> bool: ...
