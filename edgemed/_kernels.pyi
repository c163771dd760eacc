# Stub for the private native module edgemed._kernels (csrc/bindings). Keep in sync: tested.
import numpy as np
import numpy.typing as npt

def l2_normalize_inplace(x: npt.NDArray[np.float32], eps: float = 1e-12) -> None: ...
def cosine_topk(
    queries: npt.NDArray[np.float32], matrix: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
