"""sleepecg's Keras GRU sleep stager without TensorFlow or Keras: read, check, re-implement, export.

Used by ``ecg_sleep_staging.py`` (the recipe). Three independent pieces:

- :func:`read_classifier` opens ``sleepecg/classifiers/<name>.zip`` (``info.yml`` plus a Keras 3
  ``classifier.keras`` zip of ``config.json`` and ``model.weights.h5``), checks the architecture
  in ``config.json`` against the one this module implements, and reads the weights with h5py;
- :func:`keras_reference`: the same layers in NumPy float64 with Keras semantics, masking
  included (the verification reference);
- :func:`build_onnx`: the ONNX graph (opset 17) from ``onnx.helper``.

Architecture of ``wrn-gru-mesa`` (config.json): Masking(-1) -> BatchNormalization(eps 1e-3) ->
Dense(64) -> ReLU -> Bidirectional(GRU(8), concat) -> Bidirectional(GRU(8), concat) ->
Dense(4, softmax); every GRU has ``reset_after=True``, tanh/sigmoid, ``zero_output_for_mask``.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

EXPECTED_LAYERS = [
    "InputLayer",
    "Masking",
    "BatchNormalization",
    "Dense",
    "ReLU",
    "Bidirectional",
    "Bidirectional",
    "Dense",
]
GRU_LAYERS = ("bidirectional", "bidirectional_1")


def read_classifier(zip_path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(info.yml, weights by name) of a sleepecg classifier zip, after checking its config."""
    with zipfile.ZipFile(zip_path) as outer:
        info = yaml.safe_load(outer.read("info.yml"))
        keras_bytes = outer.read("classifier.keras")
    with zipfile.ZipFile(io.BytesIO(keras_bytes)) as inner:
        config = json.loads(inner.read("config.json"))
        h5_bytes = inner.read("model.weights.h5")
    check_config(config, info)
    w: dict[str, np.ndarray] = {}
    with h5py.File(io.BytesIO(h5_bytes), "r") as h5:
        layers = h5["layers"]
        bn = layers["batch_normalization/vars"]
        # Keras 3 BatchNormalization variables: gamma, beta, moving_mean, moving_variance.
        for i, name in enumerate(("bn_gamma", "bn_beta", "bn_mean", "bn_var")):
            w[name] = np.array(bn[str(i)])
        w["dense_kernel"] = np.array(layers["dense/vars/0"])
        w["dense_bias"] = np.array(layers["dense/vars/1"])
        for k, layer in enumerate(GRU_LAYERS):
            for direction in ("forward", "backward"):
                cell = layers[f"{layer}/{direction}_layer/cell/vars"]
                # GRUCell variables: kernel (in, 3u), recurrent_kernel (u, 3u), bias (2, 3u);
                # gate blocks ordered z, r, h; bias[0] input side, bias[1] recurrent side.
                for i, part in enumerate(("kernel", "recurrent", "bias")):
                    w[f"gru{k}_{direction}_{part}"] = np.array(cell[str(i)])
        w["out_kernel"] = np.array(layers["dense_1/vars/0"])
        w["out_bias"] = np.array(layers["dense_1/vars/1"])
    for name, arr in w.items():
        if arr.dtype != np.float32 or not np.all(np.isfinite(arr)):
            raise ValueError(f"weight {name}: expected finite float32, got {arr.dtype}")
    return info, w


def check_config(config: dict[str, Any], info: dict[str, Any]) -> None:
    """Refuse any classifier whose architecture differs from the one implemented here."""
    layers = config["config"]["layers"]
    names = [layer["class_name"] for layer in layers]
    if names != EXPECTED_LAYERS:
        raise ValueError(f"unexpected layers {names}")
    cfg = [layer["config"] for layer in layers]
    assert cfg[0]["batch_shape"] == [None, None, 36], cfg[0]
    assert cfg[1]["mask_value"] == info["mask_value"] == -1
    assert cfg[2]["epsilon"] == 0.001 and cfg[2]["axis"] == -1 and cfg[2]["center"]
    assert cfg[2]["scale"]
    assert cfg[3]["units"] == 64 and cfg[3]["activation"] == "linear" and cfg[3]["use_bias"]
    assert cfg[4]["max_value"] is None and cfg[4]["negative_slope"] == 0.0
    assert cfg[4]["threshold"] == 0.0
    for c in cfg[5:7]:
        assert c["merge_mode"] == "concat"
        for key in ("layer", "backward_layer"):
            g = c[key]["config"]
            assert (g["units"], g["activation"], g["recurrent_activation"]) == (
                8,
                "tanh",
                "sigmoid",
            )
            assert g["reset_after"] and g["use_bias"] and g["return_sequences"]
            assert g["zero_output_for_mask"] and not g["return_state"]
            assert g["go_backwards"] == (key == "backward_layer")
    assert cfg[7]["units"] == 4 and cfg[7]["activation"] == "softmax"


# --- NumPy reference (float64, Keras semantics) ---------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _gru(
    x: np.ndarray,
    mask: np.ndarray,
    kernel: np.ndarray,
    recurrent: np.ndarray,
    bias: np.ndarray,
    reverse: bool,
) -> np.ndarray:
    """Keras GRU (reset_after=True) over one sequence x (T, in); masked steps keep the state
    and output zeros (``zero_output_for_mask``)."""
    units = recurrent.shape[0]
    h = np.zeros(units)
    out = np.zeros((x.shape[0], units))
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    for t in steps:
        if not mask[t]:
            continue
        xz, xr, xh = np.split(x[t] @ kernel + bias[0], 3)
        hz, hr, hh = np.split(h @ recurrent + bias[1], 3)
        z = _sigmoid(xz + hz)
        r = _sigmoid(xr + hr)
        candidate = np.tanh(xh + r * hh)
        h = z * h + (1.0 - z) * candidate
        out[t] = h
    return out


def keras_reference(
    features: np.ndarray, w: dict[str, np.ndarray], mask_value: float = -1.0
) -> np.ndarray:
    """Probabilities (batch, epochs, 4) of the Keras model on features (batch, epochs, 36)."""
    w64 = {k: v.astype(np.float64) for k, v in w.items()}
    probs = []
    for seq in np.asarray(features, dtype=np.float64):
        mask = np.any(seq != mask_value, axis=-1)  # keras.layers.Masking
        x = (seq - w64["bn_mean"]) / np.sqrt(w64["bn_var"] + 1e-3) * w64["bn_gamma"]
        x = x + w64["bn_beta"]
        x = np.maximum(x @ w64["dense_kernel"] + w64["dense_bias"], 0.0)
        for k in range(len(GRU_LAYERS)):
            parts = [
                _gru(
                    x,
                    mask,
                    *(w64[f"gru{k}_{d}_{p}"] for p in ("kernel", "recurrent", "bias")),
                    reverse=(d == "backward"),
                )
                for d in ("forward", "backward")
            ]
            x = np.concatenate(parts, axis=-1)
        logits = x @ w64["out_kernel"] + w64["out_bias"]
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs.append(e / e.sum(axis=-1, keepdims=True))
    return np.stack(probs)


# --- ONNX graph -------------------------------------------------------------------------------


def _gru_node(
    k: int,
    x: str,
    w: dict[str, np.ndarray],
    inits: list[onnx.TensorProto],
    nodes: list[onnx.NodeProto],
) -> str:
    """Bidirectional ONNX GRU k on x (epochs, batch, in) -> (epochs, batch, 16)."""
    # ONNX packs gates z, r, h like Keras; W/R are transposed; B = [Wb, Rb] per direction.
    dirs = ("forward", "backward")
    W = np.stack([w[f"gru{k}_{d}_kernel"].T for d in dirs])
    R = np.stack([w[f"gru{k}_{d}_recurrent"].T for d in dirs])
    B = np.stack([w[f"gru{k}_{d}_bias"].reshape(-1) for d in dirs])
    for name, arr in ((f"gru{k}_W", W), (f"gru{k}_R", R), (f"gru{k}_B", B)):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, np.float32), name))
    nodes.append(
        helper.make_node(
            "GRU",
            [x, f"gru{k}_W", f"gru{k}_R", f"gru{k}_B"],
            [f"gru{k}_Y"],
            name=f"gru{k}",
            hidden_size=8,
            direction="bidirectional",
            linear_before_reset=1,
        )
    )
    # Y (epochs, 2, batch, 8) -> (epochs, batch, 2, 8) -> (epochs, batch, 16): [forward, backward]
    nodes.append(helper.make_node("Transpose", [f"gru{k}_Y"], [f"gru{k}_T"], perm=[0, 2, 1, 3]))
    nodes.append(helper.make_node("Reshape", [f"gru{k}_T", "shape_0_0_16"], [f"gru{k}_out"]))
    return f"gru{k}_out"


def build_onnx(w: dict[str, np.ndarray], n_features: int = 36) -> onnx.ModelProto:
    scale = w["bn_gamma"] / np.sqrt(w["bn_var"] + np.float32(1e-3))
    shift = w["bn_beta"] - w["bn_mean"] * scale
    inits = [
        numpy_helper.from_array(scale.astype(np.float32), "bn_scale"),
        numpy_helper.from_array(shift.astype(np.float32), "bn_shift"),
        numpy_helper.from_array(w["dense_kernel"], "dense_kernel"),
        numpy_helper.from_array(w["dense_bias"], "dense_bias"),
        numpy_helper.from_array(w["out_kernel"], "out_kernel"),
        numpy_helper.from_array(w["out_bias"], "out_bias"),
        numpy_helper.from_array(np.array([0, 0, 16], dtype=np.int64), "shape_0_0_16"),
    ]
    nodes = [
        helper.make_node("Mul", ["features", "bn_scale"], ["bn_mul"], name="batch_norm_scale"),
        helper.make_node("Add", ["bn_mul", "bn_shift"], ["bn_out"], name="batch_norm_shift"),
        helper.make_node("MatMul", ["bn_out", "dense_kernel"], ["dense_mm"], name="dense"),
        helper.make_node("Add", ["dense_mm", "dense_bias"], ["dense_add"], name="dense_bias"),
        helper.make_node("Relu", ["dense_add"], ["relu_out"], name="relu"),
        helper.make_node("Transpose", ["relu_out"], ["time_major"], perm=[1, 0, 2]),
    ]
    x = _gru_node(0, "time_major", w, inits, nodes)
    x = _gru_node(1, x, w, inits, nodes)
    nodes += [
        helper.make_node("Transpose", [x], ["batch_major"], perm=[1, 0, 2]),
        helper.make_node("MatMul", ["batch_major", "out_kernel"], ["out_mm"], name="out"),
        helper.make_node("Add", ["out_mm", "out_bias"], ["logits"], name="out_bias"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "sleepecg_wrn_gru_mesa",
        [
            helper.make_tensor_value_info(
                "features", TensorProto.FLOAT, ["batch", "epochs", n_features]
            )
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", "epochs", 4])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="edgemed-recipe",
        ir_version=8,
    )
    model.doc_string = (
        "sleepecg 0.6.0 wrn-gru-mesa (BSD-3): HRV features per 30 s epoch -> "
        "P(undefined, wake, rem, nrem). Keras Masking(-1) omitted: see MODEL_CARD.md."
    )
    onnx.checker.check_model(model, full_check=True)
    return model
