// Native unit tests for edgemed::ocr: hand-computed answers and a brute-force cross-check.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "check.hpp"
#include "edgemed/ocr.hpp"

using edgemed::ocr::Point;

static void test_ctc() {
    // classes: 0 blank, 1, 2. Item 0 argmax path 1 1 0 1 2 2 -> ids 1 1 2 (repeats merged, the
    // blank separates the two 1s); item 1 is all blank. Class stride 1, step stride 3.
    const int path[2][6] = {{1, 1, 0, 1, 2, 2}, {0, 0, 0, 0, 0, 0}};
    std::vector<float> probs(2 * 6 * 3, 0.1f);
    for (int b = 0; b < 2; ++b)
        for (int t = 0; t < 6; ++t) probs[static_cast<std::size_t>(b * 18 + t * 3 + path[b][t])] = 0.5f + 0.05f * t;
    std::int64_t ids[12];
    std::size_t len[2];
    double conf[2];
    edgemed::ocr::ctc_greedy_decode(probs.data(), 2, 6, 3, 18, 3, 1, 0, ids, len, conf);
    CHECK(len[0] == 3 && ids[0] == 1 && ids[1] == 1 && ids[2] == 2);
    CHECK_NEAR(conf[0], (0.5 + double(0.5f + 0.05f * 3) + double(0.5f + 0.05f * 4)) / 3, 1e-7);
    CHECK(len[1] == 0 && conf[1] == 0.0);
    const float tie[] = {0.4f, 0.4f, 0.2f};  // argmax tie -> first index (the blank): nothing
    edgemed::ocr::ctc_greedy_decode(tie, 1, 1, 3, 3, 3, 1, 0, ids, len, conf);
    CHECK(len[0] == 0);
}

static void test_hull() {
    const std::vector<Point> pts = {{0, 0}, {2, 0}, {4, 0}, {4, 3}, {2, 1}, {0, 3}, {1, 1}, {0, 0}};
    const auto hull = edgemed::ocr::convex_hull(pts);
    CHECK(hull.size() == 4);  // collinear (2,0), interior and duplicate points dropped
    double twice_area = 0;
    for (std::size_t i = 0; i < hull.size(); ++i) {
        const Point& a = hull[i];
        const Point& b = hull[(i + 1) % hull.size()];
        twice_area += a.x * b.y - b.x * a.y;
    }
    CHECK_NEAR(twice_area, 24.0, 1e-12);  // positive: counter-clockwise
}

// Minimum over every hull edge direction, the O(n^2) definition the calipers must reproduce.
static double brute_min_area(const std::vector<Point>& h) {
    double best = 1e300;
    for (std::size_t i = 0; i < h.size(); ++i) {
        const Point& a = h[i];
        const Point& b = h[(i + 1) % h.size()];
        const double len = std::hypot(b.x - a.x, b.y - a.y);
        const double ux = (b.x - a.x) / len, uy = (b.y - a.y) / len;
        double lo = 1e300, hi = -1e300, lo2 = 1e300, hi2 = -1e300;
        for (const Point& p : h) {
            lo = std::min(lo, p.x * ux + p.y * uy), hi = std::max(hi, p.x * ux + p.y * uy);
            lo2 = std::min(lo2, -p.x * uy + p.y * ux), hi2 = std::max(hi2, -p.x * uy + p.y * ux);
        }
        best = std::min(best, (hi - lo) * (hi2 - lo2));
    }
    return best;
}

static void test_min_area_rect() {
    // A 4 x 2 rectangle rotated by atan(3/4): the corners are exact in doubles.
    const std::vector<Point> rect = {{0, 0}, {3.2, 2.4}, {2.0, 4.0}, {-1.2, 1.6}};
    auto r = edgemed::ocr::min_area_rect(edgemed::ocr::convex_hull(rect));
    CHECK_NEAR(std::min(r.width, r.height), 2.0, 1e-12);
    CHECK_NEAR(std::max(r.width, r.height), 4.0, 1e-12);
    r = edgemed::ocr::min_area_rect(edgemed::ocr::convex_hull(rect), 0.5);  // grown by 0.5
    CHECK_NEAR(r.width * r.height, 5.0 * 3.0, 1e-9);
    std::mt19937 rng(1);
    std::uniform_real_distribution<double> u(-50, 50);
    for (int trial = 0; trial < 300; ++trial) {
        std::vector<Point> pts(3 + trial % 40);
        for (auto& p : pts) p = {std::round(u(rng)), std::round(u(rng) / 3)};
        const auto hull = edgemed::ocr::convex_hull(pts);
        if (hull.size() < 3) continue;
        const auto m = edgemed::ocr::min_area_rect(hull);
        CHECK_NEAR(m.width * m.height, brute_min_area(hull), 1e-6 * (1 + m.width * m.height));
    }
    CHECK(edgemed::ocr::min_area_rect({{0, 0}, {5, 5}}).width == 0.0);
}

static void test_db_boxes() {
    // One 40 x 10 block of 0.9 (cols 20..59, rows 10..19) in an 80 x 40 map. Pixel centres give a
    // 39 x 9 rectangle, scored 0.9; unclip distance 39*9*1.6/(2*48) = 5.85 -> x 14.15..64.85,
    // y 4.15..24.85, rounded at scale 1. With 2x2 dilation: 40 x 10, score 0.9*400/451,
    // distance 6.4 -> x 13.6..66.4, y 3.6..26.4.
    std::vector<float> prob(40 * 80, 0.f);
    for (int y = 10; y < 20; ++y)
        for (int x = 20; x < 60; ++x) prob[static_cast<std::size_t>(y * 80 + x)] = 0.9f;
    edgemed::ocr::DbParams p;
    p.dilate = false, p.dest_width = 80, p.dest_height = 40;
    auto boxes = edgemed::ocr::db_boxes(prob.data(), 40, 80, 80, p);
    CHECK(boxes.size() == 1);
    const std::int32_t want[4][2] = {{14, 4}, {65, 4}, {65, 25}, {14, 25}};
    for (int i = 0; i < 4; ++i)
        for (int c = 0; c < 2; ++c) CHECK(boxes[0].pts[static_cast<std::size_t>(i)][static_cast<std::size_t>(c)] == want[i][c]);
    CHECK_NEAR(boxes[0].score, 0.9, 1e-7);
    p.dilate = true;
    boxes = edgemed::ocr::db_boxes(prob.data(), 40, 80, 80, p);
    CHECK(boxes.size() == 1 && boxes[0].pts[0][0] == 14 && boxes[0].pts[2][0] == 66);
    CHECK(boxes[0].pts[0][1] == 4 && boxes[0].pts[2][1] == 26);
    CHECK_NEAR(boxes[0].score, 0.9 * 400 / 451, 1e-7);
    p.box_thresh = 0.85f;  // 0.798 < 0.85: dropped
    CHECK(edgemed::ocr::db_boxes(prob.data(), 40, 80, 80, p).empty());
    p.box_thresh = 0.5f, p.dest_width = 160, p.dest_height = 20;  // scaling: x * 2, y / 2
    boxes = edgemed::ocr::db_boxes(prob.data(), 40, 80, 80, p);
    CHECK(boxes.size() == 1 && boxes[0].pts[1][0] == 133 && boxes[0].pts[2][1] == 13);
}

int main() {
    test_ctc();
    test_hull();
    test_min_area_rect();
    test_db_boxes();
    return check_report("test_ocr");
}
