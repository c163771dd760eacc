#include "edgemed/image.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace edgemed::image {
namespace {

// Source taps of each visible output coordinate along one axis, padded to a fixed `width`
// (extra taps repeat the last index with weight 0) so the inner loops have no ragged ends.
struct Taps {
    std::size_t width = 0;
    std::vector<std::int64_t> index;  // size() * width source indices
    std::vector<float> weight;        // matching weights

    std::size_t size() const { return width ? index.size() / width : 0; }
};

// Ragged taps while building: one (first index, weights) entry per output coordinate.
struct RaggedTaps {
    std::vector<std::int64_t> first;
    std::vector<std::vector<float>> weights;

    void add(std::int64_t src_first, const float* w, std::int32_t n) {
        first.push_back(src_first);
        weights.emplace_back(w, w + n);
    }

    Taps padded() const {
        Taps t;
        for (const auto& w : weights) t.width = std::max(t.width, w.size());
        for (std::size_t o = 0; o < first.size(); ++o) {
            for (std::size_t j = 0; j < t.width; ++j) {
                const bool real = j < weights[o].size();
                t.index.push_back(first[o] + static_cast<std::int64_t>(real ? j : weights[o].size() - 1));
                t.weight.push_back(real ? weights[o][j] : 0.f);
            }
        }
        return t;
    }
};

enum class AxisRule { linear, area_linear, area };

// OpenCV's INTER_LINEAR / INTER_AREA-upscale rule: two taps, clamped at the borders.
void linear_taps(std::int64_t src, std::int64_t dst, std::int64_t r, bool area_rule, RaggedTaps& t) {
    // OpenCV: inv_scale = dst / src and scale = 1 / inv_scale (not src / dst: they differ in the
    // last bit, which moves floor() at exact multiples).
    const double scale = 1.0 / (static_cast<double>(dst) / static_cast<double>(src));
    const double inv_scale = static_cast<double>(dst) / static_cast<double>(src);
    std::int64_t sx;
    float fx;
    if (!area_rule) {
        fx = static_cast<float>((static_cast<double>(r) + 0.5) * scale - 0.5);
        sx = static_cast<std::int64_t>(std::floor(fx));
        fx -= static_cast<float>(sx);
    } else {
        sx = static_cast<std::int64_t>(std::floor(static_cast<double>(r) * scale));
        fx = static_cast<float>(static_cast<double>(r + 1) - static_cast<double>(sx + 1) * inv_scale);
        fx = fx <= 0.f ? 0.f : fx - std::floor(fx);
    }
    if (sx < 0) fx = 0.f, sx = 0;
    if (sx >= src - 1) fx = 0.f, sx = src - 1;
    const float w[2] = {1.f - fx, fx};
    t.add(sx, w, fx > 0.f ? 2 : 1);
}

// OpenCV's computeResizeAreaTab for one output cell: the exact pixel-area overlap weights.
void area_taps(std::int64_t src, std::int64_t dst, std::int64_t r, RaggedTaps& t) {
    // OpenCV: inv_scale = dst / src and scale = 1 / inv_scale (not src / dst: they differ in the
    // last bit, which moves floor() at exact multiples).
    const double scale = 1.0 / (static_cast<double>(dst) / static_cast<double>(src));
    const double fsx1 = static_cast<double>(r) * scale;
    const double fsx2 = fsx1 + scale;
    const double cell = std::min(scale, static_cast<double>(src) - fsx1);
    std::int64_t sx1 = static_cast<std::int64_t>(std::ceil(fsx1));
    std::int64_t sx2 = static_cast<std::int64_t>(std::floor(fsx2));
    sx2 = std::min(sx2, src - 1);
    sx1 = std::min(sx1, sx2);
    std::vector<float> w;
    std::int64_t first = sx1;
    if (static_cast<double>(sx1) - fsx1 > 1e-3) {
        first = sx1 - 1;
        w.push_back(static_cast<float>((static_cast<double>(sx1) - fsx1) / cell));
    }
    for (std::int64_t s = sx1; s < sx2; ++s) w.push_back(static_cast<float>(1.0 / cell));
    if (fsx2 - static_cast<double>(sx2) > 1e-3) {
        w.push_back(static_cast<float>(std::min(std::min(fsx2 - static_cast<double>(sx2), 1.0), cell) / cell));
    }
    if (w.empty()) w.push_back(1.f), first = sx1;  // degenerate cell: nearest source pixel
    t.add(first, w.data(), static_cast<std::int32_t>(w.size()));
}

// Taps for resized coordinates [begin, end) of an axis resized from `src` to `dst`.
Taps build_taps(AxisRule rule, std::int64_t src, std::int64_t dst, std::int64_t begin,
                std::int64_t end) {
    RaggedTaps t;
    for (std::int64_t r = begin; r < end; ++r) {
        if (rule == AxisRule::area) {
            area_taps(src, dst, r, t);
        } else {
            linear_taps(src, dst, r, rule == AxisRule::area_linear, t);
        }
    }
    return t.padded();
}

// Source columns the horizontal taps read, as a sorted unique list; the taps are rewritten to
// point at their column's first float in the row buffer (position * channels) so the vertical
// pass computes only those columns.
std::vector<std::int64_t> compact_columns(Taps& h, std::int64_t channels) {
    std::vector<std::int64_t> cols(h.index);
    std::sort(cols.begin(), cols.end());
    cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
    for (auto& i : h.index) i = (std::lower_bound(cols.begin(), cols.end(), i) - cols.begin()) * channels;
    return cols;
}

// row_buf[i*C + ch] (+)= w * source(y, cols[i], ch) over the compact columns.
void accumulate_row(const ImageU8& src, std::int64_t y, const std::vector<std::int64_t>& cols,
                    float w, bool first_tap, float* row_buf) {
    const std::uint8_t* row = src.data + y * src.row_stride;
    const std::int64_t c = src.channels;
    const bool packed = src.col_stride == c && src.channel_stride == 1;
    const bool contiguous = cols.back() - cols.front() + 1 == static_cast<std::int64_t>(cols.size());
    if (packed && contiguous) {  // the common case: one contiguous run of bytes, vectorizes
        const std::uint8_t* p = row + cols.front() * c;
        const std::size_t n = cols.size() * static_cast<std::size_t>(c);
        if (first_tap) {
            for (std::size_t j = 0; j < n; ++j) row_buf[j] = w * static_cast<float>(p[j]);
        } else {
            for (std::size_t j = 0; j < n; ++j) row_buf[j] += w * static_cast<float>(p[j]);
        }
        return;
    }
    for (std::size_t i = 0; i < cols.size(); ++i) {
        const std::uint8_t* px = row + cols[i] * src.col_stride;
        for (std::int64_t ch = 0; ch < c; ++ch) {
            const float v = w * static_cast<float>(px[ch * src.channel_stride]);
            float& dst = row_buf[i * static_cast<std::size_t>(c) + static_cast<std::size_t>(ch)];
            dst = first_tap ? v : dst + v;
        }
    }
}

// One output row: horizontal taps over the row buffer, then scale and shift per channel.
void horizontal_pass(const float* row_buf, std::int64_t channels, const Taps& h,
                     const Normalization& norm, std::int64_t x0, std::int64_t x1, float* out_row,
                     std::size_t plane) {
    const std::size_t k = h.width;
    if (channels == 3 && norm.out_channels == 3 && k != 2) {
        // Area taps are long (~9 for 1080p -> 224): one accumulation chain per channel would be
        // bound by the add latency, so run the three channels' chains side by side. Each chain
        // adds in the same order as the generic loop below: bit-identical results.
        const std::int64_t* idx = h.index.data();
        const float* w = h.weight.data();
        for (std::int64_t x = x0; x < x1; ++x, idx += k, w += k) {
            float acc[3] = {0.f, 0.f, 0.f};
            for (std::size_t j = 0; j < k; ++j) {
                const float* p = row_buf + idx[j];
                acc[0] += w[j] * p[0];
                acc[1] += w[j] * p[1];
                acc[2] += w[j] * p[2];
            }
            for (int c = 0; c < 3; ++c) {
                out_row[static_cast<std::size_t>(c) * plane + static_cast<std::size_t>(x)] =
                    acc[norm.channel_map[c]] * norm.alpha[c] + norm.beta[c];
            }
        }
        return;
    }
    for (int c = 0; c < norm.out_channels; ++c) {
        const float* in = row_buf + norm.channel_map[c];
        float* dst = out_row + static_cast<std::size_t>(c) * plane;
        const float a = norm.alpha[c], b = norm.beta[c];
        const std::int64_t* idx = h.index.data();
        const float* w = h.weight.data();
        if (k == 2) {  // bilinear: the hot case, kept branch-free
            for (std::int64_t x = x0; x < x1; ++x, idx += 2, w += 2) {
                dst[x] = (w[0] * in[idx[0]] + w[1] * in[idx[1]]) * a + b;
            }
            continue;
        }
        for (std::int64_t x = x0; x < x1; ++x, idx += k, w += k) {
            float acc = 0.f;
            for (std::size_t j = 0; j < k; ++j) acc += w[j] * in[idx[j]];
            dst[x] = acc * a + b;
        }
    }
}

AxisRule axis_rule(Interpolation interp, const ImageU8& src, const Placement& p) {
    if (interp == Interpolation::bilinear) return AxisRule::linear;
    const bool shrink = src.width >= p.resized_width && src.height >= p.resized_height;
    return shrink ? AxisRule::area : AxisRule::area_linear;
}

}  // namespace

Placement stretch(std::int64_t, std::int64_t, std::int64_t out_h, std::int64_t out_w) noexcept {
    return {out_h, out_w, 0, 0};
}

Placement center_crop(std::int64_t src_h, std::int64_t src_w, std::int64_t shorter,
                      std::int64_t out_h, std::int64_t out_w) noexcept {
    std::int64_t rh = shorter, rw = shorter;
    if (src_h < src_w) {
        rw = static_cast<std::int64_t>(static_cast<double>(shorter) * static_cast<double>(src_w) /
                                       static_cast<double>(src_h));
    } else if (src_w < src_h) {
        rh = static_cast<std::int64_t>(static_cast<double>(shorter) * static_cast<double>(src_h) /
                                       static_cast<double>(src_w));
    }
    // torchvision's CenterCrop offset: int(round((resized - out) / 2)), negative pads.
    const auto offset = [](std::int64_t resized, std::int64_t out) {
        return static_cast<std::int64_t>(std::nearbyint(static_cast<double>(resized - out) / 2.0));
    };
    return {rh, rw, offset(rh, out_h), offset(rw, out_w)};
}

Placement letterbox(std::int64_t src_h, std::int64_t src_w, std::int64_t out_h,
                    std::int64_t out_w) noexcept {
    const double scale = std::min(static_cast<double>(out_h) / static_cast<double>(src_h),
                                  static_cast<double>(out_w) / static_cast<double>(src_w));
    const auto fit = [scale](std::int64_t n, std::int64_t limit) {
        const auto v = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(n) * scale));
        return std::clamp<std::int64_t>(v, 1, limit);
    };
    const std::int64_t rh = fit(src_h, out_h), rw = fit(src_w, out_w);
    return {rh, rw, -((out_h - rh) / 2), -((out_w - rw) / 2)};
}

namespace {

struct Visible {  // resized-image coordinates that land in the output
    std::int64_t y0, y1, x0, x1;
};

// Area shrink: many rows per output row, so sum the needed source rows first (contiguous,
// vectorizes), then apply the horizontal taps to that one row buffer.
// Area cells weigh their interior rows equally: sum those as integers (16 bytes per SIMD add
// instead of 4 floats) and scale once; only the two partial edge rows go through floats.
// Applies to packed rows read as one contiguous run; up to 257 rows keep a uint16 sum exact.
bool integer_rows(const ImageU8& src, const Taps& v, std::size_t vo, const std::vector<std::int64_t>& cols,
                  std::vector<std::uint16_t>& sum, float* row_buf) {
    const std::int64_t c = src.channels;
    const bool contiguous = cols.back() - cols.front() + 1 == static_cast<std::int64_t>(cols.size());
    if (src.col_stride != c || src.channel_stride != 1 || !contiguous) return false;
    const float* w = v.weight.data() + vo;
    const float interior = *std::max_element(w, w + v.width);
    std::size_t n_interior = 0;
    for (std::size_t k = 0; k < v.width; ++k) n_interior += w[k] == interior;
    if (n_interior < 2 || n_interior > 257) return false;
    const std::size_t n = cols.size() * static_cast<std::size_t>(c);
    std::fill(sum.begin(), sum.end(), std::uint16_t{0});
    for (std::size_t k = 0; k < v.width; ++k) {
        if (w[k] != interior) continue;
        const std::uint8_t* p = src.data + v.index[vo + k] * src.row_stride + cols.front() * c;
        for (std::size_t j = 0; j < n; ++j) sum[j] = static_cast<std::uint16_t>(sum[j] + p[j]);
    }
    for (std::size_t j = 0; j < n; ++j) row_buf[j] = interior * static_cast<float>(sum[j]);
    for (std::size_t k = 0; k < v.width; ++k) {
        if (w[k] != interior && w[k] != 0.f) accumulate_row(src, v.index[vo + k], cols, w[k], false, row_buf);
    }
    return true;
}

// Area shrink: many rows per output row, so sum the needed source rows first (contiguous,
// vectorizes), then apply the horizontal taps to that one row buffer.
void vertical_first(const ImageU8& src, const Taps& v, Taps h, const Visible& vis,
                    const Placement& place, const Normalization& norm, std::int64_t out_w,
                    std::size_t plane, float* out) {
    const std::vector<std::int64_t> cols = compact_columns(h, src.channels);
    std::vector<float> row_buf(cols.size() * static_cast<std::size_t>(src.channels));
    std::vector<std::uint16_t> sum(row_buf.size());
    for (std::int64_t r = vis.y0; r < vis.y1; ++r) {
        const std::size_t vo = static_cast<std::size_t>(r - vis.y0) * v.width;
        if (!integer_rows(src, v, vo, cols, sum, row_buf.data())) {
            for (std::size_t k = 0; k < v.width; ++k) {
                if (k > 0 && v.weight[vo + k] == 0.f) continue;  // padding tap
                accumulate_row(src, v.index[vo + k], cols, v.weight[vo + k], k == 0, row_buf.data());
            }
        }
        float* out_row = out + (r - place.offset_y) * out_w - place.offset_x;
        horizontal_pass(row_buf.data(), src.channels, h, norm, vis.x0, vis.x1, out_row, plane);
    }
}

// Horizontal taps of source row y into hrow (visible outputs x channels); `offset` holds each
// tap's byte offset in the row. The packed 3-channel 2-tap case is the bilinear hot path.
void resample_row(const ImageU8& src, std::int64_t y, const Taps& h,
                  const std::vector<std::ptrdiff_t>& offset, float* hrow) {
    const std::uint8_t* row = src.data + y * src.row_stride;
    const std::size_t n = h.size(), k = h.width;
    const std::int64_t c_in = src.channels;
    if (k == 2 && c_in == 3 && src.channel_stride == 1) {
        std::size_t o = 0;
#if defined(__SSE2__)
        // Packed rows: 4 bytes per tap (the pixel and one byte of the next) widened and
        // converted at once; lane 3 is scratch that the next pixel's store overwrites, so the
        // last output pixel stays scalar (as do pixels whose 4-byte read would pass the row
        // end). Same multiplies and add as the scalar loop: results are bit-identical.
        const std::ptrdiff_t row_bytes = 3 * src.width;
        const __m128i zero = _mm_setzero_si128();
        for (; src.col_stride == 3 && o + 1 < n && offset[2 * o + 1] + 4 <= row_bytes &&
               offset[2 * o] + 4 <= row_bytes;
             ++o, hrow += 3) {
            std::uint32_t a, b;
            std::memcpy(&a, row + offset[2 * o], 4);
            std::memcpy(&b, row + offset[2 * o + 1], 4);
            const __m128 fa = _mm_cvtepi32_ps(
                _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(static_cast<int>(a)), zero), zero));
            const __m128 fb = _mm_cvtepi32_ps(
                _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(static_cast<int>(b)), zero), zero));
            const __m128 r = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(h.weight[2 * o]), fa),
                                        _mm_mul_ps(_mm_set1_ps(h.weight[2 * o + 1]), fb));
            _mm_storeu_ps(hrow, r);
        }
#endif
        for (; o < n; ++o, hrow += 3) {
            const std::uint8_t* p0 = row + offset[2 * o];
            const std::uint8_t* p1 = row + offset[2 * o + 1];
            const float w0 = h.weight[2 * o], w1 = h.weight[2 * o + 1];
            hrow[0] = w0 * static_cast<float>(p0[0]) + w1 * static_cast<float>(p1[0]);
            hrow[1] = w0 * static_cast<float>(p0[1]) + w1 * static_cast<float>(p1[1]);
            hrow[2] = w0 * static_cast<float>(p0[2]) + w1 * static_cast<float>(p1[2]);
        }
        return;
    }
    for (std::size_t o = 0; o < n; ++o) {
        for (std::int64_t ch = 0; ch < c_in; ++ch) {
            float acc = 0.f;
            for (std::size_t j = 0; j < k; ++j) {
                acc += h.weight[o * k + j] * static_cast<float>(row[offset[o * k + j] + ch * src.channel_stride]);
            }
            hrow[o * static_cast<std::size_t>(c_in) + static_cast<std::size_t>(ch)] = acc;
        }
    }
}

// Linear rules: at most two source rows per output row, so resample each needed source row
// once (cached: consecutive output rows share rows when enlarging) and blend vertically.
void horizontal_first(const ImageU8& src, const Taps& v, const Taps& h, const Visible& vis,
                      const Placement& place, const Normalization& norm, std::int64_t out_w,
                      std::size_t plane, float* out) {
    const std::size_t c_in = static_cast<std::size_t>(src.channels), n = h.size(), k = v.width;
    std::vector<std::ptrdiff_t> offset(h.index.size());
    for (std::size_t i = 0; i < offset.size(); ++i) offset[i] = h.index[i] * src.col_stride;
    std::vector<float> cache(k * n * c_in);
    std::vector<std::int64_t> cached(k, -1);
    std::vector<const float*> rows(k);
    std::vector<float> blend(n * c_in);
    for (std::int64_t r = vis.y0; r < vis.y1; ++r) {
        const std::size_t vo = static_cast<std::size_t>(r - vis.y0) * k;
        for (std::size_t j = 0; j < k; ++j) {  // consecutive source rows map to distinct slots
            const std::int64_t y = v.index[vo + j];
            const std::size_t slot = static_cast<std::size_t>(y) % k;
            float* hrow = cache.data() + slot * n * c_in;
            if (cached[slot] != y) resample_row(src, y, h, offset, hrow), cached[slot] = y;
            rows[j] = hrow;
        }
        // Blend the rows over the interleaved buffer (contiguous: vectorizes), then split the
        // channels into their planes with the normalization folded in.
        const float* w = v.weight.data() + vo;
        for (std::size_t i = 0; i < n * c_in; ++i) blend[i] = w[0] * rows[0][i];
        for (std::size_t j = 1; j < k; ++j) {
            for (std::size_t i = 0; i < n * c_in; ++i) blend[i] += w[j] * rows[j][i];
        }
        float* out_row = out + (r - place.offset_y) * out_w - place.offset_x + vis.x0;
        for (int c = 0; c < norm.out_channels; ++c) {
            float* dst = out_row + static_cast<std::size_t>(c) * plane;
            const float* src_c = blend.data() + norm.channel_map[c];
            const float a = norm.alpha[c], b = norm.beta[c];
            for (std::size_t x = 0; x < n; ++x) dst[x] = src_c[x * c_in] * a + b;
        }
    }
}

}  // namespace

void resize_normalize(const ImageU8& src, Interpolation interpolation, const Placement& place,
                      const Normalization& norm, std::int64_t out_h, std::int64_t out_w,
                      float* out) {
    const std::size_t plane = static_cast<std::size_t>(out_h * out_w);
    const Visible vis{std::max<std::int64_t>(0, place.offset_y),
                      std::min(place.resized_height, place.offset_y + out_h),
                      std::max<std::int64_t>(0, place.offset_x),
                      std::min(place.resized_width, place.offset_x + out_w)};
    const bool covered = vis.y1 - vis.y0 == out_h && vis.x1 - vis.x0 == out_w;
    for (int c = 0; c < norm.out_channels && !covered; ++c) {  // padding; the image overwrites it
        std::fill(out + c * plane, out + (c + 1) * plane, norm.pad_value * norm.alpha[c] + norm.beta[c]);
    }
    if (vis.y0 >= vis.y1 || vis.x0 >= vis.x1) return;
    const AxisRule rule = axis_rule(interpolation, src, place);
    const Taps v = build_taps(rule, src.height, place.resized_height, vis.y0, vis.y1);
    const Taps h = build_taps(rule, src.width, place.resized_width, vis.x0, vis.x1);
    if (rule == AxisRule::area) {
        vertical_first(src, v, h, vis, place, norm, out_w, plane, out);
    } else {
        horizontal_first(src, v, h, vis, place, norm, out_w, plane, out);
    }
}

double apply_window(double x, const Window& w, double out_min, double out_max) noexcept {
    const double range = out_max - out_min;
    switch (w.function) {
        case VoiFunction::linear: {
            const double c = w.center - 0.5, half = (w.width - 1.0) / 2.0;
            if (x <= c - half) return out_min;
            if (x > c + half) return out_max;
            return ((x - c) / (w.width - 1.0) + 0.5) * range + out_min;
        }
        case VoiFunction::linear_exact: {
            if (x <= w.center - w.width / 2.0) return out_min;
            if (x > w.center + w.width / 2.0) return out_max;
            return ((x - w.center) / w.width + 0.5) * range + out_min;
        }
        case VoiFunction::sigmoid:
            return range / (1.0 + std::exp(-4.0 * (x - w.center) / w.width)) + out_min;
    }
    return out_min;
}

namespace {

template <typename T, typename Visit>
void for_each_stored(const Volume<T>& src, Visit visit) noexcept {
    std::size_t i = 0;
    for (std::int64_t f = 0; f < src.shape[0]; ++f) {
        for (std::int64_t r = 0; r < src.shape[1]; ++r) {
            const T* row = src.data + f * src.strides[0] + r * src.strides[1];
            for (std::int64_t c = 0; c < src.shape[2]; ++c, ++i) visit(i, row[c * src.strides[2]]);
        }
    }
}

// Stored values are 16-bit, so when the image has more pixels than its value range a lookup
// table is cheaper than evaluating the VOI function per pixel; each entry is computed by the
// same formula, so both paths give identical results.
template <typename T, typename Out, typename Eval>
void map_stored(const Volume<T>& src, Out* out, Eval eval) {
    const std::size_t count = static_cast<std::size_t>(src.shape[0] * src.shape[1] * src.shape[2]);
    if (count == 0) return;
    T lo = std::numeric_limits<T>::max(), hi = std::numeric_limits<T>::min();
    for_each_stored(src, [&](std::size_t, T v) { lo = std::min(lo, v), hi = std::max(hi, v); });
    const std::size_t span = static_cast<std::size_t>(hi - lo) + 1;
    if (span > count) {
        for_each_stored(src, [&](std::size_t i, T v) { out[i] = eval(v); });
        return;
    }
    std::vector<Out> lut(span);
    for (std::size_t j = 0; j < span; ++j) lut[j] = eval(static_cast<T>(lo + static_cast<std::int64_t>(j)));
    for_each_stored(src, [&](std::size_t i, T v) { out[i] = lut[static_cast<std::size_t>(v - lo)]; });
}

}  // namespace

template <typename T>
void window_to_float(const Volume<T>& src, const Window& window, float out_min, float out_max,
                     float* out) {
    map_stored(src, out, [&](T v) {
        const double x = static_cast<double>(v) * window.slope + window.intercept;
        return static_cast<float>(apply_window(x, window, out_min, out_max));
    });
}

template <typename T>
void window_to_u8(const Volume<T>& src, const Window& window, std::uint8_t* out) {
    map_stored(src, out, [&](T v) {
        const double x = static_cast<double>(v) * window.slope + window.intercept;
        return static_cast<std::uint8_t>(std::nearbyint(apply_window(x, window, 0.0, 255.0)));
    });
}

template void window_to_float<std::int16_t>(const Volume<std::int16_t>&, const Window&, float, float, float*);
template void window_to_float<std::uint16_t>(const Volume<std::uint16_t>&, const Window&, float, float, float*);
template void window_to_u8<std::int16_t>(const Volume<std::int16_t>&, const Window&, std::uint8_t*);
template void window_to_u8<std::uint16_t>(const Volume<std::uint16_t>&, const Window&, std::uint8_t*);

}  // namespace edgemed::image
