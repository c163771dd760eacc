"""MODEL_CARD.md of a built bundle: what was measured, filled in; what the maker must say,
marked TO COMPLETE so that no card ships looking finished when it is not."""

from __future__ import annotations

from collections.abc import Mapping

from .graph import GraphInfo
from .spec import BuildSpec

__all__ = ["TO_COMPLETE", "render_card"]

TO_COMPLETE = "**TO COMPLETE**"
_ALWAYS_NOT_MEASURED = (
    "performance on data unlike the evaluation folder (other sites, devices, populations)",
    "performance per subgroup (age, sex, skin tone, device model...)",
    "calibration of the scores as probabilities",
    "robustness to inputs outside the model's intended use",
)


def _section(spec: BuildSpec, key: str, ask: str) -> str:
    return spec.card.get(key) or f"{TO_COMPLETE}: {ask}"


def _secondary(metrics: Mapping[str, float | int | str], metric: str) -> list[str]:
    """Figures measured on FP32 (and INT8) beside the gate's metric, per-class ones aside."""
    return [
        k[len("fp32_") :]
        for k in sorted(metrics)
        if k.startswith("fp32_") and k != f"fp32_{metric}" and "[" not in k
        and k != "fp32_int8_agreement" and isinstance(metrics[k], float | int)
    ]  # fmt: skip


def _figures(metrics: Mapping[str, float | int | str], metric: str) -> str:
    cells: list[list[object]] = [
        ["", "FP32", "INT8"],
        [metric, metrics.get(f"fp32_{metric}", "-"), metrics.get(f"int8_{metric}", "-")],
        ["agreement with FP32", 1, metrics.get("fp32_int8_agreement", "-")],
    ]
    if metrics.get("openvino") == "shipped" and "openvino_fp32_agreement" in metrics:
        # The IR's own column: NNCF's INT8 is another INT8 than the ONNX model's.
        ir = ["OpenVINO IR", metrics.get(f"openvino_{metric}"), metrics["openvino_fp32_agreement"]]
        cells = [[*row, value] for row, value in zip(cells, ir, strict=True)]
    for name in _secondary(metrics, metric):  # other figures the task measures (mAP@.5:.95)
        cells.append([name, metrics[f"fp32_{name}"], metrics.get(f"int8_{name}", "-")])
        cells[-1] += ["-"] * (len(cells[0]) - len(cells[-1]))
    rows = ["| " + " | ".join(map(str, row)) + " |" for row in cells]
    rows.insert(1, "|" + "---|" * len(cells[0]))
    if "int8_cosine_min" in metrics:  # embeddings: how close INT8 stays, row by row
        rows += [
            "",
            f"INT8 embedding cosine with FP32: min {metrics['int8_cosine_min']}, mean "
            f"{metrics.get('int8_cosine_mean')}; nearest evaluation text unchanged by INT8: "
            f"{metrics.get('int8_same_nearest_text')}.",
        ]
    classes = [k[len("agreement[") : -1] for k in metrics if k.startswith("agreement[")]
    if classes:  # per-class figures (multi-label classifiers)
        rows += [
            "",
            "| class | FP32 F1 | INT8 F1 | INT8 agreement with FP32 |",
            "|---|---|---|---|",
        ]
        rows += [
            f"| {c} | {metrics.get(f'fp32_f1[{c}]')} | {metrics.get(f'int8_f1[{c}]')} "
            f"| {metrics.get(f'agreement[{c}]')} |"
            for c in classes
        ]
    return "\n".join(rows)


def _calibration(spec: BuildSpec, metrics: Mapping[str, float | int | str]) -> str:
    if spec.quantization == "static":
        return f"{metrics.get('calibration_samples')} inputs"
    return f"none (quantization {spec.quantization}: no activation scales to calibrate)"


def _ir_source(metrics: Mapping[str, float | int | str]) -> str:
    made = metrics.get("openvino_int8")
    if made == "nncf":
        return (
            "INT8 made by NNCF from the FP32 graph on the calibration set, gated against FP32 "
            "as the ONNX INT8 is and checked on the golden vectors"
        )
    return f"INT8 {made}" if made else "converted from the shipped graph"


# long: one Markdown template, clearer whole than cut into pieces
def render_card(
    spec: BuildSpec,
    graph: GraphInfo,
    metrics: Mapping[str, float | int | str],
    *,
    metric: str,
    gate_text: str,
    edgemed_version: str,
    golden_choice: str,
) -> str:
    not_measured = "\n".join(f"- {item}" for item in _ALWAYS_NOT_MEASURED)
    if spec.card.get("not_measured"):
        not_measured = f"- {spec.card['not_measured']}\n{not_measured}"
    return f"""# {spec.id} {spec.version}

**Not a medical device.** {spec.summary}. Built with `edgemed bundle build` (edgemed
{edgemed_version}); its results are decision support for qualified staff at most.

## Intended use

{_section(spec, "intended_use", "who uses it, on which patients and inputs, for what decision")}

## Data provenance

- Training data: {_section(spec, "data_provenance", "what the model was trained on, by whom, under which licence")}
- Upstream: {spec.source.get("upstream", TO_COMPLETE)}
- Evaluation set (measured below): {metrics.get("eval_samples")} labelled inputs given to the
  build; calibration set (INT8 scales): {_calibration(spec, metrics)}. Neither
  was used to train the model by edgemed; whether they overlap its training data, only the
  maker can say ({TO_COMPLETE} if it matters).

## Licence

{spec.license}

## How it was built

- Task `{spec.task}`; ONNX opset {graph.opset}; inputs
  {", ".join(f"`{t.name}` {t.dtype} {list(t.shape)}" for t in graph.inputs)}.
- Quantisation: {spec.quantization}; shipped precision: **{metrics.get("shipped_precision")}**.
- OpenVINO IR: {metrics.get("openvino")}; {_ir_source(metrics)}; agreement with the shipped
  ONNX model on the evaluation set: {metrics.get("openvino_agreement", "-")}.
- Measured on CPU family `{metrics.get("cpu_family")}`, one thread.

## FP32 vs INT8 on the evaluation set

{_figures(metrics, metric)}

Gate: {gate_text}

## Golden vectors

{metrics.get("golden_count")} evaluation inputs, {golden_choice}, with the shipped model's
outputs. Every device checks them when it loads the bundle and refuses to serve if its outputs
drift beyond the manifest's tolerance.

## Not measured

{not_measured}

## Limitations

{_section(spec, "limitations", "known failure modes and inputs the model must not be given")}
"""
