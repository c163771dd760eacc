#include "edgemed/ocr.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

// An AVX2 clone picked at load time on x86-64 (GCC), the baseline elsewhere; as search.cpp.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EDGEMED_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EDGEMED_CLONES
#endif

namespace edgemed::ocr {
namespace {

double cross(const Point& o, const Point& a, const Point& b) noexcept {
    return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
}

double dot(const Point& a, const Point& b) noexcept { return a.x * b.x + a.y * b.y; }

Point sub(const Point& a, const Point& b) noexcept { return {a.x - b.x, a.y - b.y}; }

// rapidocr's get_mini_boxes: sort the corners by x (stable), then take the upper of the two
// left-most as the first point and go top-left, top-right, bottom-right, bottom-left.
std::array<Point, 4> rapidocr_order(std::array<Point, 4> p) {
    std::stable_sort(p.begin(), p.end(), [](const Point& a, const Point& b) { return a.x < b.x; });
    const bool left_down = p[1].y > p[0].y;
    const bool right_down = p[3].y > p[2].y;
    return {left_down ? p[0] : p[1], right_down ? p[2] : p[3], right_down ? p[3] : p[2],
            left_down ? p[1] : p[0]};
}

// Marks the pixels of an 8-connected line from (x0, y0) to (x1, y1), clipped to w x h, stepping
// as OpenCV's LineIterator does (left to right; a minor step only while the error is negative),
// so that ties fall on the same pixels as in cv2.fillPoly's outline.
void draw_line(std::vector<std::uint8_t>& mask, int w, int h, int x0, int y0, int x1, int y1) {
    if (x0 > x1) std::swap(x0, x1), std::swap(y0, y1);
    const int sy = y1 >= y0 ? 1 : -1;
    int major = x1 - x0, minor = std::abs(y1 - y0);
    int major_x = 1, major_y = 0, minor_x = 0, minor_y = sy;
    if (minor > major) {
        std::swap(major, minor);
        major_x = 0, major_y = sy, minor_x = 1, minor_y = 0;
    }
    int err = major - 2 * minor;
    for (int i = 0; i <= major; ++i) {
        if (x0 >= 0 && x0 < w && y0 >= 0 && y0 < h) mask[static_cast<std::size_t>(y0 * w + x0)] = 1;
        const bool step_minor = err < 0;
        err += -2 * minor + (step_minor ? 2 * major : 0);
        x0 += major_x + (step_minor ? minor_x : 0);
        y0 += major_y + (step_minor ? minor_y : 0);
    }
}

// Rasterises a convex polygon with integer vertices like cv2.fillPoly: every pixel centre on or
// inside it, plus the 8-connected lines of its edges.
std::vector<std::uint8_t> fill_quad(const std::array<std::array<int, 2>, 4>& v, int w, int h) {
    std::vector<std::uint8_t> mask(static_cast<std::size_t>(w) * static_cast<std::size_t>(h), 0);
    for (int y = 0; y < h; ++y) {
        double lo = std::numeric_limits<double>::infinity(), hi = -lo;
        for (int i = 0; i < 4; ++i) {
            const auto& a = v[static_cast<std::size_t>(i)];
            const auto& b = v[static_cast<std::size_t>((i + 1) % 4)];
            if (y < std::min(a[1], b[1]) || y > std::max(a[1], b[1])) continue;
            if (a[1] == b[1]) {
                lo = std::min({lo, double(a[0]), double(b[0])});
                hi = std::max({hi, double(a[0]), double(b[0])});
                continue;
            }
            const double x = a[0] + double(y - a[1]) * (b[0] - a[0]) / double(b[1] - a[1]);
            lo = std::min(lo, x);
            hi = std::max(hi, x);
        }
        const int x0 = std::max(0, static_cast<int>(std::ceil(lo - 1e-9)));
        const int x1 = std::min(w - 1, static_cast<int>(std::floor(hi + 1e-9)));
        for (int x = x0; x <= x1; ++x) mask[static_cast<std::size_t>(y * w + x)] = 1;
    }
    for (int i = 0; i < 4; ++i) {
        const auto& a = v[static_cast<std::size_t>(i)];
        const auto& b = v[static_cast<std::size_t>((i + 1) % 4)];
        draw_line(mask, w, h, a[0], a[1], b[0], b[1]);
    }
    return mask;
}

// rapidocr's box_score_fast: mean probability over the box rasterised inside its clipped
// bounding rectangle, vertices truncated toward zero (numpy's astype(int32)).
double box_score(const float* prob, int width, int height, std::ptrdiff_t row_stride,
                 const std::array<Point, 4>& box) {
    double min_x = box[0].x, max_x = box[0].x, min_y = box[0].y, max_y = box[0].y;
    for (const Point& p : box) {
        min_x = std::min(min_x, p.x), max_x = std::max(max_x, p.x);
        min_y = std::min(min_y, p.y), max_y = std::max(max_y, p.y);
    }
    const int x0 = std::clamp(static_cast<int>(std::floor(min_x)), 0, width - 1);
    const int x1 = std::clamp(static_cast<int>(std::ceil(max_x)), 0, width - 1);
    const int y0 = std::clamp(static_cast<int>(std::floor(min_y)), 0, height - 1);
    const int y1 = std::clamp(static_cast<int>(std::ceil(max_y)), 0, height - 1);
    std::array<std::array<int, 2>, 4> v{};
    for (std::size_t i = 0; i < 4; ++i)
        v[i] = {static_cast<int>(box[i].x - x0), static_cast<int>(box[i].y - y0)};
    const int w = x1 - x0 + 1, h = y1 - y0 + 1;
    const std::vector<std::uint8_t> mask = fill_quad(v, w, h);
    double sum = 0.0;
    std::size_t count = 0;
    for (int y = 0; y < h; ++y) {
        const float* row = prob + static_cast<std::ptrdiff_t>(y0 + y) * row_stride + x0;
        for (int x = 0; x < w; ++x) {
            if (!mask[static_cast<std::size_t>(y * w + x)]) continue;
            sum += row[x];
            ++count;
        }
    }
    return count ? sum / static_cast<double>(count) : 0.0;
}

// prob > thresh, then optionally rapidocr's 2x2 dilation (anchor at the kernel's lower right:
// a pixel is set if it or its left, upper or upper-left neighbour is set).
std::vector<std::uint8_t> binarize(const float* prob, std::size_t h, std::size_t w,
                                   std::ptrdiff_t row_stride, const DbParams& p) {
    std::vector<std::uint8_t> bits(h * w);
    for (std::size_t y = 0; y < h; ++y) {  // row pointers: branch-free loops that vectorise
        const float* row = prob + static_cast<std::ptrdiff_t>(y) * row_stride;
        std::uint8_t* dst = &bits[y * w];
        for (std::size_t x = 0; x < w; ++x) dst[x] = row[x] > p.thresh;
    }
    if (!p.dilate || w == 0) return bits;
    std::vector<std::uint8_t> out(h * w);
    for (std::size_t y = 0; y < h; ++y) {
        const std::uint8_t* cur = &bits[y * w];
        const std::uint8_t* up = y ? cur - w : cur;
        std::uint8_t* dst = &out[y * w];
        dst[0] = cur[0] | up[0];
        for (std::size_t x = 1; x < w; ++x) dst[x] = cur[x] | up[x] | cur[x - 1] | up[x - 1];
    }
    return out;
}

// Flood-fills the 8-connected component containing (sx, sy), clearing it from `bits`, and
// returns the left-most and right-most pixel of each of its rows: enough for the convex hull.
// Scanline fill: each popped seed grows to its whole run of set pixels in its row, and one seed
// is pushed per run touching [left - 1, right + 1] in the rows above and below (8-connected).
// A pixel-by-pixel fill cost 0.75x OpenCV's contour tracing on large, thick text lines.
std::vector<Point> take_component(std::vector<std::uint8_t>& bits, std::size_t h, std::size_t w,
                                  std::size_t sx, std::size_t sy,
                                  std::vector<std::size_t>& stack) {
    std::vector<std::pair<std::size_t, std::size_t>> extent;  // (min x, max x) per row from sy
    stack.assign(1, sy * w + sx);
    while (!stack.empty()) {
        const std::size_t at = stack.back();
        stack.pop_back();
        if (!bits[at]) continue;  // filled from another seed since it was pushed
        const std::size_t y = at / w;
        std::uint8_t* row = &bits[y * w];
        std::size_t left = at % w, right = left;
        while (left > 0 && row[left - 1]) --left;
        while (right + 1 < w && row[right + 1]) ++right;
        std::fill(row + left, row + right + 1, std::uint8_t{0});
        if (y - sy >= extent.size()) extent.resize(y - sy + 1, {w, 0});
        extent[y - sy] = {std::min(extent[y - sy].first, left),
                          std::max(extent[y - sy].second, right)};
        const std::size_t a = left ? left - 1 : 0, b = std::min(w - 1, right + 1);
        for (const std::size_t ny : {y - 1, y + 1}) {
            if (ny >= h) continue;  // y - 1 wraps around for y == 0
            const std::uint8_t* next = &bits[ny * w];
            for (std::size_t x = a; x <= b; ++x)
                if (next[x] && (x == a || !next[x - 1])) stack.push_back(ny * w + x);
        }
    }
    std::vector<Point> pts;  // rows above sy cannot occur: sy is the component's first row
    for (std::size_t i = 0; i < extent.size(); ++i) {
        pts.push_back({double(extent[i].first), double(sy + i)});
        if (extent[i].second != extent[i].first) pts.push_back({double(extent[i].second), double(sy + i)});
    }
    return pts;
}

#if defined(__GNUC__) && !defined(EDGEMED_PORTABLE_VECTORS)
typedef float vf8 __attribute__((vector_size(32)));

// First maximum of n >= 8 contiguous floats: the maximum in eight lanes, then its first
// position compared 16 at a time up to the block that holds it. Written with GCC vectors:
// without -ffast-math GCC keeps `std::max` lanes and a search loop scalar (measured: 4x slower
// than numpy.argmax on PP-OCR output).
EDGEMED_CLONES std::size_t first_max_contiguous(const float* x, std::size_t n) noexcept {
    vf8 m, v, w;
    std::memcpy(&m, x, sizeof m);
    std::size_t i = 8;
    for (; i + 8 <= n; i += 8) {
        std::memcpy(&v, x + i, sizeof v);
        m = m < v ? v : m;
    }
    float best = m[0];
    for (int j = 1; j < 8; ++j) best = std::max(best, m[j]);
    for (; i < n; ++i) best = std::max(best, x[i]);
    for (i = 0; i + 16 <= n; i += 16) {
        std::memcpy(&v, x + i, sizeof v);
        std::memcpy(&w, x + i + 8, sizeof w);
        const auto hit = (v == best) | (w == best);
        bool any = false;
        for (int j = 0; j < 8; ++j) any |= hit[j] != 0;
        if (any) break;
    }
    for (; i < n; ++i)
        if (x[i] == best) return i;
    return 0;  // not found only if NaN slipped past the binding's check
}
#else
// The same without vector extensions (MSVC): lanes for the maximum, then std::find.
std::size_t first_max_contiguous(const float* x, std::size_t n) noexcept {
    float lane[8];
    std::copy(x, x + 8, lane);
    std::size_t i = 8;
    for (; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j < 8; ++j) lane[j] = std::max(lane[j], x[i + j]);
    for (; i < n; ++i) lane[0] = std::max(lane[0], x[i]);
    const float best = *std::max_element(lane, lane + 8);
    const auto at = static_cast<std::size_t>(std::find(x, x + n, best) - x);
    return at < n ? at : 0;
}
#endif

// Index of the first maximum of n values `stride` apart (n >= 1), as numpy.argmax.
std::size_t first_argmax(const float* x, std::size_t n, std::ptrdiff_t stride) noexcept {
    if (stride == 1 && n >= 8) return first_max_contiguous(x, n);
    float best = x[0];
    std::size_t at = 0;
    for (std::size_t c = 1; c < n; ++c) {
        const float v = x[static_cast<std::ptrdiff_t>(c) * stride];
        if (v > best) best = v, at = c;
    }
    return at;
}

struct AreaPerimeter {
    double area, perimeter;
};

// Shoelace area and perimeter of the box, as shapely's Polygon(box).area and .length.
AreaPerimeter area_perimeter(const std::array<Point, 4>& b) noexcept {
    double twice_area = 0.0, length = 0.0;
    for (std::size_t i = 0; i < 4; ++i) {
        const Point& a = b[i];
        const Point& c = b[(i + 1) % 4];
        twice_area += a.x * c.y - c.x * a.y;
        length += std::hypot(c.x - a.x, c.y - a.y);
    }
    return {std::fabs(twice_area) / 2.0, length};
}

// One component's hull -> a scored, unclipped, scaled box, or nothing if a filter drops it.
std::optional<TextBox> box_from_hull(const float* prob, std::size_t height, std::size_t width,
                                     std::ptrdiff_t row_stride, const DbParams& p,
                                     const std::vector<Point>& hull) {
    const RotatedRect rect = min_area_rect(hull);
    if (std::min(rect.width, rect.height) < p.min_size) return std::nullopt;
    const std::array<Point, 4> box = rapidocr_order(rect.corner);
    const double score =
        box_score(prob, static_cast<int>(width), static_cast<int>(height), row_stride, box);
    if (p.box_thresh > score) return std::nullopt;
    // rapidocr offsets the box with pyclipper (JT_ROUND), which first truncates it to integers;
    // the minimum-area rectangle of that rounded polygon is the truncated box's rectangle grown
    // by the offset distance on every side (the arcs never reach beyond the offset edges).
    const auto [area, perimeter] = area_perimeter(box);
    std::vector<Point> truncated;
    for (const Point& q : box) truncated.push_back({std::trunc(q.x), std::trunc(q.y)});
    const RotatedRect grown =
        min_area_rect(convex_hull(truncated), area * p.unclip_ratio / perimeter);
    if (std::min(grown.width, grown.height) < p.min_size + 2) return std::nullopt;
    TextBox out{{}, score};
    const std::array<Point, 4> ordered = rapidocr_order(grown.corner);
    auto scale = [](double v, std::size_t from, std::size_t to) {  // float32, like NumPy there
        const float s = static_cast<float>(v) / static_cast<float>(from) * static_cast<float>(to);
        return static_cast<std::int32_t>(std::clamp(std::nearbyint(s), 0.f, static_cast<float>(to)));
    };
    for (std::size_t i = 0; i < 4; ++i)
        out.pts[i] = {scale(ordered[i].x, width, p.dest_width),
                      scale(ordered[i].y, height, p.dest_height)};
    return out;
}

}  // namespace

void ctc_greedy_decode(const float* probs, std::size_t batch, std::size_t steps,
                       std::size_t classes, std::ptrdiff_t sb, std::ptrdiff_t st,
                       std::ptrdiff_t sc, std::size_t blank, std::int64_t* ids,
                       std::size_t* lengths, double* confidence) noexcept {
    for (std::size_t b = 0; b < batch; ++b) {
        std::size_t kept = 0, prev = classes;  // `classes` = no previous step
        double sum = 0.0;
        for (std::size_t t = 0; t < steps; ++t) {
            const float* row = probs + static_cast<std::ptrdiff_t>(b) * sb +
                               static_cast<std::ptrdiff_t>(t) * st;
            const std::size_t best = first_argmax(row, classes, sc);
            if (best != prev && best != blank) {
                ids[b * steps + kept++] = static_cast<std::int64_t>(best);
                sum += row[static_cast<std::ptrdiff_t>(best) * sc];
            }
            prev = best;
        }
        lengths[b] = kept;
        confidence[b] = kept ? sum / static_cast<double>(kept) : 0.0;
    }
}

std::vector<Point> convex_hull(std::vector<Point> pts) {
    std::sort(pts.begin(), pts.end(),
              [](const Point& a, const Point& b) { return a.x < b.x || (a.x == b.x && a.y < b.y); });
    pts.erase(std::unique(pts.begin(), pts.end(),
                          [](const Point& a, const Point& b) { return a.x == b.x && a.y == b.y; }),
              pts.end());
    if (pts.size() < 3) return pts;
    std::vector<Point> hull(2 * pts.size());
    std::size_t k = 0;
    for (std::size_t i = 0; i < pts.size(); ++i) {  // lower chain (Andrew's monotone chain)
        while (k >= 2 && cross(hull[k - 2], hull[k - 1], pts[i]) <= 0) --k;
        hull[k++] = pts[i];
    }
    for (std::size_t i = pts.size() - 1, lower = k + 1; i-- > 0;) {  // upper chain
        while (k >= lower && cross(hull[k - 2], hull[k - 1], pts[i]) <= 0) --k;
        hull[k++] = pts[i];
    }
    hull.resize(k - 1);  // the last point repeats the first
    return hull;
}

RotatedRect min_area_rect(const std::vector<Point>& hull, double grow) {
    RotatedRect best{0.0, 0.0, {}};
    const std::size_t n = hull.size();
    if (n < 3) return best;
    auto at = [&](std::size_t i) -> const Point& { return hull[i % n]; };
    double best_area = std::numeric_limits<double>::infinity();
    std::size_t right = 0, top = 0, left = 0;  // caliper indices, each only moves forward
    for (std::size_t i = 0; i < n; ++i) {
        const Point e = sub(at(i + 1), at(i));
        const double len = std::hypot(e.x, e.y);
        const Point u{e.x / len, e.y / len};
        const Point v{-u.y, u.x};  // inward normal: the hull is counter-clockwise (x right, y up)
        if (i == 0) right = 1;
        while (dot(sub(at(right + 1), at(right)), u) > 0) ++right;
        if (i == 0) top = right;
        while (dot(sub(at(top + 1), at(top)), v) > 0) ++top;
        if (i == 0) left = top;
        while (dot(sub(at(left + 1), at(left)), u) < 0) ++left;
        const double a0 = dot(sub(at(left), at(i)), u) - grow;
        const double a1 = dot(sub(at(right), at(i)), u) + grow;
        const double b1 = dot(sub(at(top), at(i)), v) + grow;
        const double area = (a1 - a0) * (b1 + grow);
        if (area < best_area) {
            best_area = area;
            auto corner = [&](double a, double b) {
                return Point{at(i).x + a * u.x + b * v.x, at(i).y + a * u.y + b * v.y};
            };
            best = {a1 - a0, b1 + grow, {corner(a0, -grow), corner(a1, -grow), corner(a1, b1),
                                         corner(a0, b1)}};
        }
    }
    return best;
}

std::vector<TextBox> db_boxes(const float* prob, std::size_t height, std::size_t width,
                              std::ptrdiff_t row_stride, const DbParams& p) {
    std::vector<std::uint8_t> bits = binarize(prob, height, width, row_stride, p);
    std::vector<TextBox> out;
    std::vector<std::size_t> stack;
    std::size_t candidates = 0;
    for (std::size_t y = 0; y < height && candidates < p.max_candidates; ++y) {
        const std::uint8_t* row = &bits[y * width];
        for (std::size_t x = 0; x < width && candidates < p.max_candidates; ++x) {
            for (std::uint64_t word = 0; x + 8 <= width; x += 8) {  // skip empty 8-pixel words
                std::memcpy(&word, row + x, sizeof word);
                if (word != 0) break;
            }
            if (x >= width || !row[x]) continue;
            ++candidates;
            const std::vector<Point> hull =
                convex_hull(take_component(bits, height, width, x, y, stack));
            if (auto box = box_from_hull(prob, height, width, row_stride, p, hull)) out.push_back(*box);
        }
    }
    return out;
}

}  // namespace edgemed::ocr
