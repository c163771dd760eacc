"""Pixel checks of the monitor reader that refuse a value whose box does not hold one whole
number read whole (value_extent), and that keep labels from pairing across a tile border
(panels). Screens are drawn here with OpenCV, segmented digits as rectangles, so no font
package is needed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from seven_segment_digits import draw_digit

from edgemed.results import WITHHELD_REASONS
from edgemed.tasks.monitor_reader.panels import Panels
from edgemed.tasks.monitor_reader.value_extent import box_problem, number_beside, unread_ink
from edgemed.tasks.monitor_reader.vital_values import fits

GREEN = (60, 230, 60)


def _segment_digit(img: np.ndarray, x: int, y: int, h: int, digit: str) -> None:
    """A seven-segment digit of height h at (x, y): segments as separate rectangles."""
    draw_digit(img, x, y, h, digit, GREEN)


def _quad(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def _screen_31() -> np.ndarray:
    img = np.zeros((200, 320, 3), np.uint8)
    _segment_digit(img, 60, 50, 90, "3")  # 3 at x 60..109
    _segment_digit(img, 125, 50, 90, "1")  # the 1's strokes at x ~164..174
    return img


def test_a_digit_left_out_of_the_value_box_refuses_the_value() -> None:
    img = _screen_31()
    only_the_3 = _quad(54, 44, 115, 146)
    assert box_problem(img, only_the_3) == "partial-number"
    assert "partial-number" in WITHHELD_REASONS
    whole = _quad(54, 44, 180, 146)
    assert box_problem(img, whole) is None


def _screen_36(x: int) -> np.ndarray:
    img = np.zeros((200, 320, 3), np.uint8)
    _segment_digit(img, x, 50, 90, "3")  # each digit ~50 px wide, 90 px tall
    _segment_digit(img, x + 65, 50, 90, "6")
    return img


def test_a_value_the_frame_may_cut_is_refused() -> None:
    """A tilted photo left a "36.3" cut to "36" at the image's right edge, read as 36.0. Ink
    that ends within EDGE digit heights (18 px here) of a side edge may have lost digits
    beyond it; a box that reaches the top or bottom edge, part of every digit."""
    right = _screen_36(200)  # the 6's ink ends ~6 px from the right edge
    assert box_problem(right, _quad(194, 44, 320, 146)) == "partial-number"
    left = _screen_36(4)  # the 3's ink starts ~4 px from the left edge
    assert box_problem(left, _quad(0, 44, 125, 146)) == "partial-number"
    room = _screen_36(60)
    assert box_problem(room, _quad(54, 44, 180, 146)) is None
    assert box_problem(room, _quad(54, 0, 180, 146)) == "partial-number"  # reaches the top
    assert box_problem(room, _quad(54, 44, 180, 200)) == "partial-number"  # and the bottom
    # A box padded out to the frame around ink with room to spare is whole.
    assert box_problem(room, _quad(54, 10, 180, 190)) is None
    assert box_problem(_screen_36(150), _quad(144, 44, 320, 146)) is None  # ink ends ~56 px away


def test_ink_inside_another_box_that_was_read_is_that_box_s_text() -> None:
    img = _screen_31()
    only_the_3 = _quad(54, 44, 115, 146)
    the_1 = _quad(158, 44, 180, 146)
    assert box_problem(img, only_the_3, [the_1]) is None


def test_a_digit_left_out_beside_a_tight_box_refuses_the_value() -> None:
    """The box fills exactly the digits' rows, so the "1" beside it crosses every row of the
    box as a line would; above and below the box it ends, where a line goes on."""
    img = _screen_31()
    tight = _quad(60, 50, 110, 140)
    assert box_problem(img, tight) == "partial-number"
    cv2.line(img, (190, 0), (190, 199), GREEN, 3)  # a tile border: not a digit
    img[:, 120:180] = 0  # (the "1" gone)
    assert box_problem(img, tight) is None


def test_a_box_over_part_of_a_left_out_digit_does_not_hide_it() -> None:
    """A misread box over the middle third of the "1" ("17" at confidence 0.51) is not where
    the "1" is read; one over all of it is."""
    img = _screen_31()
    only_the_3 = _quad(54, 44, 115, 146)
    middle = _quad(150, 80, 190, 110)
    assert box_problem(img, only_the_3, [middle]) == "partial-number"
    assert box_problem(img, only_the_3, [_quad(150, 40, 190, 150)]) is None


def test_small_ink_beside_the_value_is_alarm_limits_not_a_digit() -> None:
    img = np.zeros((200, 320, 3), np.uint8)
    _segment_digit(img, 60, 50, 90, "3")
    cv2.putText(img, "120", (118, 80), cv2.FONT_HERSHEY_SIMPLEX, 0.6, GREEN, 1)
    cv2.putText(img, "50", (118, 105), cv2.FONT_HERSHEY_SIMPLEX, 0.6, GREEN, 1)
    cv2.line(img, (150, 0), (150, 199), GREEN, 1)  # a tile border crossing every row
    assert box_problem(img, _quad(54, 44, 115, 146)) is None


def test_two_lines_of_text_in_one_box_are_not_a_value() -> None:
    img = np.zeros((120, 200, 3), np.uint8)
    cv2.putText(img, "30", (40, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.0, GREEN, 2)
    cv2.putText(img, "10", (40, 85), cv2.FONT_HERSHEY_SIMPLEX, 1.0, GREEN, 2)
    assert box_problem(img, _quad(35, 15, 85, 92)) == "stacked-text"
    single = np.zeros((120, 200, 3), np.uint8)
    cv2.putText(single, "36.8", (20, 75), cv2.FONT_HERSHEY_SIMPLEX, 1.6, GREEN, 3)
    assert box_problem(single, _quad(15, 28, 135, 85)) is None


@pytest.mark.parametrize("digit", ["1", "4"])
def test_a_segmented_digit_is_one_line_not_two(digit: str) -> None:
    img = np.zeros((200, 200, 3), np.uint8)
    _segment_digit(img, 60, 50, 90, digit)
    assert box_problem(img, _quad(50, 44, 125, 146)) is None


def test_a_stroke_with_no_character_emitted_over_it_refuses_the_value() -> None:
    img = np.zeros((100, 170, 3), np.uint8)
    for i, d in enumerate("144"):
        _segment_digit(img, 8 + i * 55, 5, 90, d)
    crop = img
    w = crop.shape[1]
    # Where a recogniser emitted "4", "4" (over the second and third digit): the 1 is unread.
    read_44 = (85 / w, 140 / w)
    assert unread_ink(crop, read_44) == "partial-number"
    read_144 = (40 / w, 85 / w, 140 / w)
    assert unread_ink(crop, read_144) is None


def test_no_reported_vital_sign_is_negative() -> None:
    assert fits("rr", (0.0,))
    assert not fits("rr", (-0.0,))  # "-0": a misread "40"
    assert not fits("nibp", (-120.0, 80.0))
    assert fits("other", (-0.2,))  # ST is signed; it is never reported


def _tiles(border: bool, tilt: float = 0.0) -> np.ndarray:
    img = np.zeros((300, 400, 3), np.uint8)
    if border:
        y = 140
        cv2.line(img, (0, y), (399, round(y + 399 * tilt)), (90, 140, 90), 1)
    return img


@pytest.mark.parametrize("tilt", [0.0, 0.05])
def test_a_border_across_the_gap_separates_a_label_from_the_next_tile_s_value(
    tilt: float,
) -> None:
    label = _quad(10, 20, 60, 40).astype(np.float64)
    value = _quad(250, 170, 330, 230).astype(np.float64)
    assert Panels(_tiles(True, tilt)).apart(label, value)
    assert not Panels(_tiles(False)).apart(label, value)


def test_boxes_side_by_side_are_apart_only_with_a_vertical_border() -> None:
    img = np.zeros((200, 400, 3), np.uint8)
    label = _quad(10, 80, 60, 100).astype(np.float64)
    value = _quad(250, 60, 330, 120).astype(np.float64)
    assert not Panels(img).apart(label, value)
    cv2.line(img, (200, 0), (200, 199), (90, 90, 140), 2)
    assert Panels(img).apart(label, value)


def _dim_border(ground: int, line: int, blur: int = 5, width: int = 3) -> np.ndarray:
    """A screen with a 3-pixel border of grey ``line`` at x = 200 on a ground of ``ground``,
    softened by a blur: too faint for the edge test, still a ridge."""
    img = np.full((200, 400, 3), ground, np.uint8)
    cv2.line(img, (200, 0), (200, 199), (line, line, line), width)
    return cv2.GaussianBlur(img, (blur, blur), 0)


@pytest.mark.parametrize(("ground", "line"), [(25, 50), (230, 200)])
def test_a_dim_blurred_border_still_separates_the_boxes(ground: int, line: int) -> None:
    label = _quad(10, 80, 60, 100).astype(np.float64)
    value = _quad(250, 60, 330, 120).astype(np.float64)
    assert Panels(_dim_border(ground, line)).apart(label, value)
    assert not Panels(_dim_border(ground, ground + (line - ground) // 4)).apart(label, value)


def test_a_number_boxed_in_two_pieces_is_not_a_whole_value() -> None:
    """A seven-segment "21" boxed as "2" and "1" (overlapping, or a little apart): either piece
    read alone is not the value; a tile border between them, a number of another size or on
    other rows, or one further off than half the value's height, leaves it be."""
    two = _quad(547, 385, 636, 494)
    one = _quad(597, 395, 699, 487)
    never: object = lambda a, b: False  # noqa: E731
    assert number_beside(two, [one], never)  # type: ignore[arg-type]
    assert number_beside(one, [two], never)  # type: ignore[arg-type]
    assert not number_beside(two, [one], lambda a, b: True)  # across a border
    assert number_beside(two, [_quad(660, 385, 720, 494)], never)  # type: ignore[arg-type]
    assert not number_beside(two, [_quad(700, 385, 760, 494)], never)  # type: ignore[arg-type]
    assert not number_beside(two, [_quad(640, 440, 670, 480)], never)  # type: ignore[arg-type]
    assert not number_beside(two, [_quad(640, 480, 700, 590)], never)  # type: ignore[arg-type]
