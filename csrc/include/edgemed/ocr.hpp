// OCR post-processing for PP-OCR models: CTC greedy decoding (recognition) and DB text boxes
// (detection), replicating rapidocr's CTCLabelDecode and DBPostProcess ('fast' score mode).
// Pure C++17 on raw pointers; strides in elements.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace edgemed::ocr {

// Greedy CTC decoding of probs (batch x T x C, strides sb, st, sc). Per item: argmax over C at
// each step (first index on ties, as numpy.argmax), drop a step whose class equals the previous
// step's, then drop `blank`. Writes the kept class ids to ids[b*T ...], their number to
// lengths[b] and the mean of their max probabilities to confidence[b] (0 if none is kept).
void ctc_greedy_decode(const float* probs, std::size_t batch, std::size_t steps,
                       std::size_t classes, std::ptrdiff_t sb, std::ptrdiff_t st,
                       std::ptrdiff_t sc, std::size_t blank, std::int64_t* ids,
                       std::size_t* lengths, double* confidence) noexcept;

struct Point {
    double x, y;
};

// Convex hull, counter-clockwise in image coordinates (y down), without collinear points.
std::vector<Point> convex_hull(std::vector<Point> pts);

struct RotatedRect {
    double width, height;        // along the two axes of the rectangle; width may be < height
    std::array<Point, 4> corner;  // in order around the rectangle
};

// Minimum-area rectangle enclosing a convex hull (rotating calipers over its edges), after
// growing each side outward by `grow` (the area minimised is (w + 2 grow)(h + 2 grow)). A hull of
// fewer than 3 points gives width = height = 0.
RotatedRect min_area_rect(const std::vector<Point>& hull, double grow = 0.0);

struct DbParams {
    float thresh = 0.3f;       // bitmap = prob > thresh
    float box_thresh = 0.5f;   // keep boxes whose mean prob is >= box_thresh
    double unclip_ratio = 1.6;  // offset distance = area * unclip_ratio / perimeter
    std::size_t max_candidates = 1000;
    double min_size = 3.0;     // minimum short side before (min_size) and after (+2) unclipping
    bool dilate = true;        // 2x2 dilation of the bitmap, as rapidocr's use_dilation
    std::size_t dest_width = 0, dest_height = 0;  // boxes are scaled to this image size
};

struct TextBox {
    std::array<std::array<std::int32_t, 2>, 4> pts;  // rapidocr order (see get_mini_boxes)
    double score;
};

// DB post-processing of a probability map (height x width, rows `row_stride` apart, contiguous
// columns): bitmap -> 8-connected components (raster order of their first pixel) -> convex
// hull -> minimum-area rectangle -> mean prob inside it -> unclip -> minimum-area rectangle ->
// short-side filter -> scaled to dest size. One box per component: unlike cv2.findContours
// with RETR_LIST, holes inside a component do not yield boxes of their own.
std::vector<TextBox> db_boxes(const float* prob, std::size_t height, std::size_t width,
                              std::ptrdiff_t row_stride, const DbParams& params);

}  // namespace edgemed::ocr
