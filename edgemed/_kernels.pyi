# Stub for the private native module edgemed._kernels (csrc/bindings). Keep in sync: tested.
import numpy as np
import numpy.typing as npt

def l2_normalize_inplace(x: npt.NDArray[np.float32], eps: float = 1e-12) -> None: ...
def cosine_topk(
    queries: npt.NDArray[np.float32], matrix: npt.NDArray[np.float32], k: int
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
