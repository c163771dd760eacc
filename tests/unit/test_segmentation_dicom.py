"""Image segmentation of real DICOM files (pydicom's test data): per-class areas in mm² from the
file's Pixel Spacing (Imager Pixel Spacing only where Pixel Spacing is absent, said in the
result), counted on the input's own pixels when the model sees it resized, and no mm² where
the spacing is unknown. The model is the pretend one of test_task_image_segmentation; the real
network through `edgemed run` is in tests/integration/test_bundle_segmentation.py."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_task_image_segmentation import manifest, processors, run, square

from edgemed.cli.inputs import cli_input
from edgemed.contracts import ContractError, check_result_body
from edgemed.errors import InputError
from edgemed.io import read_dicom_image
from edgemed.io.files import DicomImage

pydicom = pytest.importorskip("pydicom")
pydicom_data = pytest.importorskip("pydicom.data")

CT_SPACING = 0.661468  # CT_small.dcm's Pixel Spacing, both ways


def dicom_file(name: str) -> Path:
    return Path(pydicom_data.get_testdata_file(name))


def variant(tmp_path: Path, name: str, **changes: Any) -> Path:
    """A copy of pydicom's ``name`` with attributes set (None: deleted)."""
    ds = pydicom.dcmread(dicom_file(name))
    for key, value in changes.items():
        if value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    out = tmp_path / f"{name}-{'-'.join(changes)}.dcm"
    ds.save_as(out)
    return out


def segment_file(path: Path) -> Any:
    """CT (no header window: soft tissue, 40/400), 128 x 128, into a 64 x 64 model."""
    return run(manifest(), read_dicom_image(path).spaced(center=40, width=400), square())


def test_the_file_spacing_gives_mm2_on_the_inputs_own_pixels() -> None:
    image = read_dicom_image(dicom_file("CT_small.dcm"))
    assert image.pixel_spacing_mm == (CT_SPACING, CT_SPACING)
    assert image.pixel_spacing_source == "PixelSpacing"
    result = segment_file(dicom_file("CT_small.dcm"))
    assert result.mask.shape == (128, 128)  # the model saw 64 x 64: the mask is resized back
    assert result.pixels[1] == pytest.approx(4 * 32 * 32, rel=0.05)
    area = CT_SPACING * CT_SPACING
    assert result.areas_mm2 == pytest.approx([n * area for n in result.pixels], rel=1e-5)
    body = result.body()
    assert body["pixel_spacing_source"] == "PixelSpacing"
    assert body["pixel_spacing_mm"] == [CT_SPACING, CT_SPACING]
    assert "from the DICOM file's PixelSpacing" in result.summary()["pixel_spacing"]


def test_doubled_spacing_gives_four_times_the_mm2(tmp_path: Path) -> None:
    """Metamorphic: the same pixels with Pixel Spacing doubled: same mask, 4x every area."""
    plain = segment_file(dicom_file("CT_small.dcm"))
    double = [2 * CT_SPACING, 2 * CT_SPACING]
    doubled = segment_file(variant(tmp_path, "CT_small.dcm", PixelSpacing=double))
    assert doubled.pixels == plain.pixels and plain.pixels[1] > 0
    for a, b in zip(plain.areas_mm2, doubled.areas_mm2, strict=True):
        assert a is not None and b == pytest.approx(4 * a, rel=1e-5)
    rows_only = segment_file(
        variant(tmp_path, "CT_small.dcm", PixelSpacing=[2 * CT_SPACING, CT_SPACING])
    )
    assert rows_only.areas_mm2[1] == pytest.approx(2 * plain.areas_mm2[1], rel=1e-5)


def test_imager_pixel_spacing_only_without_pixel_spacing_and_said(tmp_path: Path) -> None:
    both = variant(tmp_path, "CT_small.dcm", ImagerPixelSpacing=[0.1, 0.1])
    assert read_dicom_image(both).pixel_spacing_source == "PixelSpacing"  # preferred
    path = variant(tmp_path, "CT_small.dcm", PixelSpacing=None, ImagerPixelSpacing=[0.2, 0.1])
    result = segment_file(path)
    assert result.pixel_spacing_mm == (0.2, 0.1)
    assert result.body()["pixel_spacing_source"] == "ImagerPixelSpacing"
    assert result.areas_mm2[1] == pytest.approx(result.pixels[1] * 0.02, rel=1e-5)
    assert "ImagerPixelSpacing (no PixelSpacing" in result.summary()["pixel_spacing"]


@pytest.mark.parametrize(
    "changes",
    [
        {"PixelSpacing": None},
        {"PixelSpacing": [0, 0.5]},  # present but not usable: unknown, not the imager's
        {"PixelSpacing": [0.5]},
    ],
)
def test_unknown_spacing_gives_pixels_only(tmp_path: Path, changes: dict[str, Any]) -> None:
    result = segment_file(variant(tmp_path, "CT_small.dcm", ImagerPixelSpacing=None, **changes))
    assert result.pixel_spacing_mm is None and result.areas_mm2 == (None, None)
    body = result.body()
    assert body["pixel_spacing_source"] is None and body["classes"][1]["area_mm2"] is None
    assert result.summary()["pixel_spacing"].startswith("unknown: areas in pixels only")
    assert result.summary()["classes"]["lesion"]["area_mm2"] is None


def test_edgemed_run_reads_the_spacing_of_a_dcm() -> None:
    """The CLI's reading of `edgemed run MODEL @file.dcm` for a segmentation model (MR_small:
    its header has a window)."""
    item = cli_input(f"@{dicom_file('MR_small.dcm')}", manifest())
    assert item["pixel_spacing_mm"] == [0.3125, 0.3125]
    assert item["pixel_spacing_source"] == "PixelSpacing" and item["image"].shape == (64, 64)
    result = run(manifest(), item, square())
    assert result.areas_mm2[1] == pytest.approx(result.pixels[1] * 0.3125**2, rel=1e-5)


def test_bad_spacing_inputs_and_bodies_are_refused() -> None:
    pre, _ = processors(manifest())
    image = np.zeros((64, 64), np.uint8)
    for bad, message in [
        ({"image": image, "pixel_spacing_source": "PixelSpacing"}, "without a pixel_spacing_mm"),
        ({"image": image, "pixel_spacing_mm": [1, 1], "pixel_spacing_source": "x"}, "one of"),
    ]:
        with pytest.raises(InputError, match=message):
            pre(bad)
    frames = np.zeros((2, 8, 8), np.float32)
    multi = DicomImage(
        pixels=frames, stored=frames.astype(np.int16), modality="CT", slope=1.0, intercept=0.0,
        window_center=40.0, window_width=400.0,
    )  # fmt: skip
    with pytest.raises(InputError, match="one 2-D frame"):
        multi.spaced()
    body = run(manifest(), {"image": image, "pixel_spacing_mm": [1, 1]}, square()).body()
    assert body["pixel_spacing_source"] == "caller"
    with pytest.raises(ContractError, match="pixel_spacing_source"):
        check_result_body(body["kind"], {**body, "pixel_spacing_source": "guess"})
    unknown = run(manifest(), image, square()).body()
    with pytest.raises(ContractError, match="pixel_spacing_source"):
        check_result_body(unknown["kind"], {**unknown, "pixel_spacing_source": "caller"})


def test_edgemed_run_windows_a_dcm_without_a_header_window(tmp_path: Path) -> None:
    """CT_small has no window in its header: `edgemed run --window 40,400` supplies one, and
    reads what the API reads with the same window; without it the error says what to pass."""
    from edgemed.cli.args import dicom_window

    ct = f"@{dicom_file('CT_small.dcm')}"
    with pytest.raises(InputError, match="--window CENTER,WIDTH"):
        cli_input(ct, manifest())
    item = cli_input(ct, manifest(), window=dicom_window("40,400"))
    expected = read_dicom_image(dicom_file("CT_small.dcm")).spaced(center=40, width=400)
    assert np.array_equal(item["image"], expected["image"])
    assert item["pixel_spacing_mm"] == [CT_SPACING, CT_SPACING]
    wide = cli_input(ct, manifest(), window=(40, 2000))["image"]
    assert not np.array_equal(wide, item["image"])  # the window given is the one used
    png = tmp_path / "screen.png"
    png.write_bytes(b"not read")
    with pytest.raises(InputError, match="--window applies to DICOM images"):
        cli_input(f"@{png}", manifest(), window=(40, 400))
    for bad in ("40", "40,0", "a,b", "40,400,1", "nan,400"):
        with pytest.raises(argparse.ArgumentTypeError):
            dicom_window(bad)
