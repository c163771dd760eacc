"""The seven-segment check of the monitor reader (seven_segment.py): a value whose digits need
a segment the screen shows empty is withheld; a correct reading never is, in seven-segment or
other digits. Digits are drawn here with OpenCV (segments as rectangles, Hershey fonts for
ordinary digits), so no font package is needed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from seven_segment_digits import LIT, draw_digit

from edgemed.results import WITHHELD_REASONS
from edgemed.tasks.monitor_reader.seven_segment import NEEDS, SPELLS, segments_disagree


def seven_segment(
    text: str,
    h: int = 60,
    *,
    ink: tuple[int, int, int] = (60, 230, 60),
    ground: tuple[int, int, int] = (0, 0, 0),
    slant: float = 0.0,
    rule: bool = False,
    short_one: float = 0.0,
) -> np.ndarray:
    """A crop of ``text`` as a monitor's seven-segment display draws it (monospaced cells, a
    "1" on the cell's right), with a margin like the recogniser's crop. ``short_one``: the
    share of the digit height left free above and below a "1" (DSEG7 Classic's starts below
    the other digits' top segment)."""
    w = int(h * 0.55)
    cell = int(w * 1.35)
    margin = h // 6
    width = 2 * margin + cell * sum(ch != "." for ch in text) + int(abs(slant) * h) + 8
    img = np.zeros((h + 2 * margin, width, 3), np.uint8)
    img[:] = ground
    x = margin + (int(abs(slant) * h) if slant > 0 else 0)
    for ch in text:
        if ch == ".":
            cv2.rectangle(
                img,
                (x - cell // 6, margin + h - h // 9),
                (x - cell // 6 + h // 9, margin + h),
                ink,
                -1,
            )
            continue
        if ch == "/":
            cv2.line(img, (x + w, margin), (x, margin + h), ink, max(2, h // 10))
        else:
            draw_digit(img, x, margin, h, ch, ink)
            if ch == "1" and short_one:
                free = round(short_one * h)
                img[margin : margin + free, x : x + cell] = ground
                img[margin + h - free : margin + h + 1, x : x + cell] = ground
        x += cell
    if rule:
        cv2.line(img, (0, img.shape[0] - 3), (img.shape[1], img.shape[0] - 3), ink, 1)
    if slant:
        rows, cols = img.shape[:2]
        m = np.array([[1.0, -slant, slant * rows], [0.0, 1.0, 0.0]], np.float32)
        img = np.asarray(cv2.warpAffine(img, m, (cols, rows), borderValue=ground), np.uint8)
    return cv2.GaussianBlur(img, (3, 3), 0)


def hershey(text: str, font: int, scale: float) -> np.ndarray:
    (tw, th), base = cv2.getTextSize(text, font, scale, 2)
    img = np.zeros((th + base + 16, tw + 16, 3), np.uint8)
    cv2.putText(img, text, (8, th + 8), font, scale, (255, 255, 255), 2, cv2.LINE_AA)
    return img


def test_the_reason_is_documented() -> None:
    assert "segments-disagree" in WITHHELD_REASONS


def test_every_digit_needs_the_segments_of_its_leanest_form() -> None:
    for digit, needs in NEEDS.items():
        assert SPELLS["".join(sorted(needs))] == digit
        assert needs <= set(LIT[digit])


@pytest.mark.parametrize("slant", [0.0, 0.12])
def test_misreads_that_add_segments_are_withheld(slant: float) -> None:
    """PP-OCRv4's misreads of DSEG7 digits: each needs a segment that is not lit."""
    for truth, misread in [("157", "159"), ("175", "195"), ("142", "182"), ("66", "88"),
                           ("21", "27"), ("36.7", "38.7"), ("120/80", "120/88")]:  # fmt: skip
        crop = seven_segment(truth, slant=slant)
        assert segments_disagree(crop, misread), (truth, misread)
        assert not segments_disagree(crop, truth), truth


@pytest.mark.parametrize("short_one", [0.06, 0.12])
def test_a_one_shorter_than_the_other_digits_is_still_a_one(short_one: float) -> None:
    """Seed 2101381: DSEG7 Classic "17" read "19", its "1" 4 of 34 rows below the top of the
    "7"; the "1" was taken for no digit, so the check had no opinion and the 19 was reported."""
    for truth, misread in [("17", "19"), ("117", "119"), ("71", "91")]:
        for h in (34, 60):
            crop = seven_segment(truth, h, short_one=short_one)
            assert segments_disagree(crop, misread), (truth, misread, h)
            assert not segments_disagree(crop, truth), (truth, h)


@pytest.mark.parametrize("h", [24, 40, 90])
def test_correct_seven_segment_readings_are_never_withheld(h: int) -> None:
    for n in range(0, 300, 7):
        for text in (str(n), f"{n % 45}.{n % 10}", f"{n}/{n // 3}"):
            assert not segments_disagree(seven_segment(text, h), text), text


def test_dark_digits_on_a_light_ground_and_a_rule_under_them() -> None:
    crop = seven_segment("157", ink=(20, 20, 20), ground=(200, 230, 200), rule=True)
    assert segments_disagree(crop, "159")
    assert not segments_disagree(crop, "157")


@pytest.mark.parametrize("font", [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX,
                                  cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX])  # fmt: skip
def test_correct_readings_of_ordinary_digits_are_never_withheld(font: int) -> None:
    """Curved strokes light segment places a seven-segment digit would not: the check may give
    no opinion on them, but it must never refuse what they correctly read."""
    for n in range(0, 300):
        for scale in (1.2, 2.0):
            text = str(n)
            assert not segments_disagree(hershey(text, font, scale), text), (text, font)


def test_no_opinion_on_a_crop_too_small_or_glyphs_that_do_not_match_the_reading() -> None:
    assert not segments_disagree(seven_segment("157", 10), "159")  # too small to resolve
    assert not segments_disagree(seven_segment("157"), "59")  # count differs: value_extent's
    assert not segments_disagree(np.zeros((40, 80, 3), np.uint8), "88")
    # The recogniser's dictionary holds other digits too (a held-out screen gave a full-width
    # five): never a crash, and no opinion where the reading is not ASCII digits.
    assert not segments_disagree(seven_segment("157"), "1\uff159")
    assert not segments_disagree(seven_segment("157"), "١٥٩")


def test_a_reading_that_moves_segments_gets_no_opinion() -> None:
    """Only added segments are the recogniser's seven-segment misread; a sans-serif "7" (its
    diagonal lights the places of a "2") must not be refused when read "7"."""
    assert not segments_disagree(seven_segment("2"), "7")
    assert not segments_disagree(seven_segment("5"), "3")
    assert segments_disagree(seven_segment("5"), "9")  # 5 = acdfg, 9 adds b
