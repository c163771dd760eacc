// Model-output post-processing: scores, top-k, non-maximum suppression, signal events.
// Pure C++17 on raw pointers. A 2-D input is (rows, n) with strides in elements (any sign), so
// transposed and sliced views need no copy. Outputs are dense. Inputs must be finite: the
// bindings check first (NaN has no order, so top-k, NMS and events would be meaningless).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace edgemed::post {

struct Strided2D {
    const float* data;
    std::size_t rows;
    std::size_t n;             // length of the reduced (last) axis
    std::ptrdiff_t row_stride;  // elements between rows
    std::ptrdiff_t col_stride;  // elements between neighbours along the last axis
    float at(std::size_t r, std::size_t i) const noexcept {
        return data[static_cast<std::ptrdiff_t>(r) * row_stride +
                    static_cast<std::ptrdiff_t>(i) * col_stride];
    }
};

// True if no element is NaN or +-infinity.
bool all_finite(const Strided2D& x) noexcept;

// Softmax of each row into out (rows x n): max subtracted first, sum accumulated in double.
void softmax_rows(const Strided2D& x, float* out) noexcept;

// Softmax along the middle axis of a C-contiguous (outer, classes, inner) array into out (same
// shape, dense): class maps (C, H, W) along C, read plane by plane in blocks of pixels rather
// than as rows `inner` floats apart. Summed in float: within 2 ulp of softmax_rows per pixel.
// False (out unspecified) if an element is NaN or infinite.
[[nodiscard]] bool softmax_planes(const float* x, std::size_t outer, std::size_t classes,
                                  std::size_t inner, float* out) noexcept;

// Logistic function of n elements (x strided, out dense); never overflows exp().
void sigmoid(const float* x, std::size_t n, std::ptrdiff_t stride, float* out) noexcept;

// The k largest values of each row and their indices (rows x k each), largest first; equal
// values keep the lower index first. Requires 1 <= k <= n.
void topk_rows(const Strided2D& x, std::size_t k, float* values, std::int64_t* index);

// Index of the largest value of each row; the first one on ties (as numpy.argmax). Requires n>0.
void argmax_rows(const Strided2D& x, std::int64_t* index) noexcept;

// Greedy non-maximum suppression. boxes: n x (x1, y1, x2, y2), rows `box_stride` elements apart,
// coordinates 1 element apart, x1 <= x2 and y1 <= y2. Candidates are boxes with score >
// score_threshold, visited by descending score (ties: lower index first); a candidate is kept
// unless its IoU with an already kept box is > iou_threshold. IoU of two boxes with zero union
// is 0. Stops after max_detections kept boxes. Writes kept indices in visiting order to `keep`
// (room for min(n, max_detections)) and returns their number.
std::size_t nms(const float* boxes, std::ptrdiff_t box_stride, const float* scores,
                std::ptrdiff_t score_stride, std::size_t n, float iou_threshold,
                float score_threshold, std::size_t max_detections, std::int64_t* keep);

struct Event {
    std::int64_t start;  // first sample >= high
    std::int64_t end;    // one past the last sample of the event (first sample < low, or n)
    std::int64_t peak;   // index of the maximum in [start, end); first one on ties
    float peak_value;
};

// Hysteresis event detection on x (n samples, `stride` apart). An event starts at a sample
// >= high and lasts until the first later sample < low (low <= high). Events whose gap
// (next.start - prev.end) is < min_gap are merged first; then events shorter than
// min_duration samples are dropped, so fragments of one long event survive together.
std::vector<Event> detect_events(const float* x, std::size_t n, std::ptrdiff_t stride, float high,
                                 float low, std::size_t min_duration, std::size_t min_gap);

}  // namespace edgemed::post
