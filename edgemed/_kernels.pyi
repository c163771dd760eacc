# Stub for the private native module edgemed._kernels (csrc/bindings). Keep in sync: tested.
import numpy as np
import numpy.typing as npt

def l2_normalize_inplace(x: npt.NDArray[np.float32], eps: float = 1e-12) -> None: ...
def cosine_topk(
    queries: npt.NDArray[np.float32], matrix: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
def cosine_topk_int8(
    queries: npt.NDArray[np.float32], matrix: npt.NDArray[np.int8], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
def cosine_topk_fp16(
    queries: npt.NDArray[np.float32], matrix: npt.NDArray[np.float16], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
def quantize_rows_int8(
    matrix: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]: ...
