"""Backends that tune themselves (edgemed/backends/autotune.py): the first load on a machine times every
candidate on the golden inputs and serves from the fastest that holds; later loads read the
figures; a cached choice that no longer holds is measured again; a setting turns it off.

Real runtimes throughout (ONNX Runtime and OpenVINO on this CPU). Which one is faster depends
on the machine, so the tests check the choice against the figures it recorded, not a name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from drifted_bundles import drifted_on_openvino

import edgemed
from edgemed import wire
from edgemed.backends import autotune, probe
from edgemed.cli.models import doctor_report
from edgemed.fleet.validation import PayloadValidator
from edgemed.manifest import load_manifest
from edgemed.registry import find_model_dir

MODEL = "wdbc-malignancy-mlp"  # ships ONNX and OpenVINO; loads in a fraction of a second
ROW = find_model_dir(MODEL)


@pytest.fixture(autouse=True)
def measuring(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("EDGEMED_AUTOTUNE", "1")
    monkeypatch.setenv("EDGEMED_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "autotune.json"


def _measurements(
    monkeypatch: pytest.MonkeyPatch,
) -> list[int]:
    """Counts the measuring rounds load() starts (the real timing runs)."""
    calls: list[int] = []
    real = autotune.time_rounds

    def counted(runs, inputs):  # type: ignore[no-untyped-def]
        calls.append(len(runs))
        return real(runs, inputs)

    monkeypatch.setattr(autotune, "time_rounds", counted)
    return calls


def test_first_load_measures_every_candidate_and_serves_the_fastest(
    measuring: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _measurements(monkeypatch)
    with edgemed.load(MODEL) as pipeline:
        assert calls == [2]  # onnxruntime/cpu and openvino/cpu, timed in one interleaved run
        entry = next(iter(json.loads(measuring.read_text()).values()))
        timings = {(t["backend"], t["device"]): t["ms_per_input"] for t in entry["timings"]}
        assert set(timings) == {("onnxruntime", "cpu"), ("openvino", "cpu")}
        fastest = min(timings, key=timings.__getitem__)
        assert (pipeline.choice.backend, pipeline.choice.device) == fastest
        assert pipeline.choice.reason.startswith("measured fastest here (")
        assert pipeline.selection.startswith("measured: ")
        assert pipeline.check_golden() == []


def test_the_measured_choice_is_in_every_result_and_the_fleet_accepts_it() -> None:
    with edgemed.load("clinical-text-minilm") as pipeline:
        result = pipeline("Patient reports chest pain radiating to the left arm.")
    assert result.provenance.selection.startswith("measured: onnxruntime/cpu ")
    raw = wire.encode_result(
        result, device_id="bed-7", seq=1, boot_id="b", lowest_unacked_seq=1, clock_synced=True
    )
    assert json.loads(raw)["model"]["selection"] == result.provenance.selection
    PayloadValidator().result(raw, topic_device_id="bed-7")  # the fleet's schema check


def test_a_later_load_reads_the_figures_and_measures_nothing(
    measuring: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with edgemed.load(MODEL) as first:
        chosen = (first.choice.backend, first.choice.device)
    calls = _measurements(monkeypatch)
    with edgemed.load(MODEL) as again:
        assert (again.choice.backend, again.choice.device) == chosen
        assert again.choice.reason == first.choice.reason
    assert calls == []
    with edgemed.load(MODEL, threads=1):  # another thread count is another measurement
        pass
    assert calls == [2]
    assert len(json.loads(measuring.read_text())) == 2


def test_doctor_shows_the_measured_choice() -> None:
    manifest = load_manifest(ROW)
    hw = probe()
    before = doctor_report(hw, [manifest])["models"][0]
    assert "the first load measures every candidate" in before["uses"]["reason"]
    with edgemed.load(MODEL) as pipeline:
        chosen = pipeline.choice
    after = doctor_report(hw, [manifest])["models"][0]
    assert (after["uses"]["backend"], after["uses"]["device"]) == (chosen.backend, chosen.device)
    assert after["uses"]["reason"] == chosen.reason
    assert [f["backend"] for f in after["fallbacks"]] == [
        b for b in ("onnxruntime", "openvino") if b != chosen.backend
    ]


def test_a_candidate_that_fails_its_golden_vectors_is_never_timed_or_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _measurements(monkeypatch)
    with edgemed.load(
        drifted_on_openvino(find_model_dir("clinical-text-minilm"), tmp_path)
    ) as pipeline:
        assert (pipeline.choice.backend, pipeline.choice.device) == ("onnxruntime", "cpu")
        assert "golden vectors failed here on openvino/cpu" in pipeline.choice.reason
        assert pipeline.selection == pipeline.selection.split(",")[0]  # one candidate timed
    assert calls == [1]


def test_a_remembered_choice_that_no_longer_holds_is_measured_again(
    measuring: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = drifted_on_openvino(find_model_dir("clinical-text-minilm"), tmp_path)
    manifest = load_manifest(folder)
    k = autotune.key(manifest, probe(runtimes=manifest.backends), None)
    stale = autotune.Tuned(
        backend="openvino",
        device="cpu",
        timings=(autotune.Timing(backend="openvino", device="cpu", ms_per_input=1.0),),
        measured_at=0.0,
    )
    autotune.remember(k, stale)  # e.g. measured before a runtime update that broke it
    calls = _measurements(monkeypatch)
    with edgemed.load(folder) as pipeline:
        assert pipeline.choice.backend == "onnxruntime"
    assert calls == [1]
    assert autotune.recall(k) is not None and autotune.recall(k).backend == "onnxruntime"  # type: ignore[union-attr]


def test_an_unreadable_cache_is_measured_again(measuring: Path) -> None:
    measuring.parent.mkdir(parents=True)
    measuring.write_text("{ not json")
    with edgemed.load(MODEL) as pipeline:
        assert pipeline.choice.reason.startswith("measured fastest here")
    assert len(json.loads(measuring.read_text())) == 1


def test_turned_off_the_manifest_order_decides(
    measuring: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEMED_AUTOTUNE", "off")
    with edgemed.load(MODEL) as pipeline:
        assert pipeline.choice.backend == load_manifest(ROW).backends[0]
        assert pipeline.selection == ""
    assert not measuring.exists()


def test_a_named_backend_is_never_measured(
    measuring: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _measurements(monkeypatch)
    with edgemed.load(MODEL, backend="openvino") as pipeline:
        assert pipeline.choice.backend == "openvino" and pipeline.selection == ""
    with edgemed.load(MODEL, device="cpu") as pipeline:
        assert pipeline.selection == ""
    assert calls == [] and not measuring.exists()
