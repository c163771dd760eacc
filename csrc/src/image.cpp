#include "edgemed/image.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(EDGEMED_PORTABLE_VECTORS)
// GCC 12 flags the intrinsics' own "undefined" placeholders as maybe-uninitialized once inlined
// into a function built for another target (a false positive in the header).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <emmintrin.h>
#include <immintrin.h>
#pragma GCC diagnostic pop
#define EDGEMED_VBMI 1  // run-time dispatched: the build itself targets the baseline ISA
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace edgemed::image {
namespace {

// Source taps of each visible output coordinate along one axis, padded to a fixed `width`
// (extra taps repeat the last index with weight 0) so the inner loops have no ragged ends.
struct Taps {
    std::size_t width = 0;
    bool contiguous = false;  // set by compact_columns: tap j of each output is index[0] + j pixels
    std::vector<std::int64_t> index;  // size() * width source indices
    std::vector<float> weight;        // matching weights

    std::size_t size() const { return width ? index.size() / width : 0; }
};

// Ragged taps while building: one (first index, weights) entry per output coordinate, the
// weights of all entries in one array (no allocation per coordinate).
struct RaggedTaps {
    std::vector<std::int64_t> first;
    std::vector<std::size_t> end;  // weights of entry o: [end[o - 1], end[o])
    std::vector<float> weights;

    void add(std::int64_t src_first, const float* w, std::int32_t n) {
        first.push_back(src_first);
        weights.insert(weights.end(), w, w + n);
        end.push_back(weights.size());
    }

    Taps padded() const {
        Taps t;
        for (std::size_t o = 0, begin = 0; o < first.size(); begin = end[o++]) t.width = std::max(t.width, end[o] - begin);
        t.index.reserve(first.size() * t.width);
        t.weight.reserve(first.size() * t.width);
        for (std::size_t o = 0, begin = 0; o < first.size(); begin = end[o++]) {
            const std::size_t count = end[o] - begin;
            for (std::size_t j = 0; j < t.width; ++j) {
                const bool real = j < count;
                t.index.push_back(first[o] + static_cast<std::int64_t>(real ? j : count - 1));
                t.weight.push_back(real ? weights[begin + j] : 0.f);
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
    // Linear in the columns' range (a sort and a binary search per tap cost ~90 us at 1080p).
    const auto [lo, hi] = std::minmax_element(h.index.begin(), h.index.end());
    const std::int64_t first = *lo;
    std::vector<std::int64_t> pos(static_cast<std::size_t>(*hi - first + 1), -1);
    for (const std::int64_t i : h.index) pos[static_cast<std::size_t>(i - first)] = 0;
    std::vector<std::int64_t> cols;
    for (std::size_t d = 0; d < pos.size(); ++d) {
        if (pos[d] == 0) pos[d] = static_cast<std::int64_t>(cols.size()), cols.push_back(first + static_cast<std::int64_t>(d));
    }
    for (auto& i : h.index) i = pos[static_cast<std::size_t>(i - first)] * channels;
    h.contiguous = true;
    for (std::size_t o = 0; o < h.size(); ++o) {
        for (std::size_t j = 0; j < h.width; ++j) {
            const std::int64_t want = h.index[o * h.width] + static_cast<std::int64_t>(j) * channels;
            const bool padding = h.weight[o * h.width + j] == 0.f;
            h.contiguous &= h.index[o * h.width + j] == want || padding;
        }
    }
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

// Area cells are long (~9 taps for 1080p -> 224), so every path sums a cell's taps in two
// chains, the even taps and the odd ones, and adds the two at the end: the same adds in the same
// order on every path (bit-identical results), half the latency of one chain, and for two taps
// (bilinear) simply w0 * p0 + w1 * p1.

#if defined(EDGEMED_VBMI)
// EDGEMED_IMAGE_BASELINE=1 keeps these kernels on the baseline x86-64 paths whatever the CPU, so
// a test can check that every path gives the very same floats.
bool dispatch_allowed() {
    static const bool yes = [] {
        const char* v = std::getenv("EDGEMED_IMAGE_BASELINE");
        return v == nullptr || std::strcmp(v, "1") != 0;
    }();
    return yes;
}

bool has_avx2() {
    static const bool yes = dispatch_allowed() && __builtin_cpu_supports("avx2");
    return yes;
}

// Packed 3-channel rows, taps on consecutive pixels: for each output pixel, each pair of taps is
// one 8-float load (B, G, R of both pixels and two floats of the next, weighted 0) times the pair's
// weights, spread to the lanes by the caller once per call (`pair_w`: 8 floats per pair). Lanes
// 0-2 are the even chains, 3-5 the odd ones. Four outputs in lockstep keep four chains in flight.
__attribute__((target("avx2"))) inline void store_pair_sums(__m256 acc, const Normalization& norm, float* out,
                                                            std::size_t plane) {
    alignas(32) float lane[8];
    _mm256_store_ps(lane, acc);
    for (int c = 0; c < 3; ++c) {
        const int m = norm.channel_map[c];
        out[static_cast<std::size_t>(c) * plane] = (lane[m] + lane[3 + m]) * norm.alpha[c] + norm.beta[c];
    }
}

__attribute__((target("avx2"))) void area_row_avx2(const float* row_buf, const Taps& h, const float* pair_w,
                                                  const Normalization& norm, std::int64_t x0, std::int64_t x1,
                                                  float* out_row, std::size_t plane) {
    const std::size_t k = h.width, pairs = (k + 1) / 2;
    std::int64_t x = x0;
    for (; x + 4 <= x1; x += 4) {
        const std::size_t o = static_cast<std::size_t>(x - x0);
        __m256 acc[4];
        const float* p[4];
        for (std::size_t u = 0; u < 4; ++u) acc[u] = _mm256_setzero_ps(), p[u] = row_buf + h.index[(o + u) * k];
        for (std::size_t j = 0; j < pairs; ++j) {
            for (std::size_t u = 0; u < 4; ++u) {
                const __m256 w = _mm256_loadu_ps(pair_w + ((o + u) * pairs + j) * 8);
                acc[u] = _mm256_add_ps(acc[u], _mm256_mul_ps(w, _mm256_loadu_ps(p[u] + 6 * j)));
            }
        }
        for (std::size_t u = 0; u < 4; ++u) store_pair_sums(acc[u], norm, out_row + x + static_cast<std::int64_t>(u), plane);
    }
    for (; x < x1; ++x) {
        const std::size_t o = static_cast<std::size_t>(x - x0);
        const float* p = row_buf + h.index[o * k];
        __m256 acc = _mm256_setzero_ps();
        for (std::size_t j = 0; j < pairs; ++j) {
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(pair_w + (o * pairs + j) * 8), _mm256_loadu_ps(p + 6 * j)));
        }
        store_pair_sums(acc, norm, out_row + x, plane);
    }
}
#endif

// The weights of area_row_avx2: per output pixel and pair of taps, the even tap's weight in lanes
// 0-2, the odd tap's in 3-5, 0 in 6-7 (and for the missing odd tap of an odd width).
std::vector<float> pair_weights(const Taps& h) {
    const std::size_t k = h.width, pairs = (k + 1) / 2;
    std::vector<float> w(h.size() * pairs * 8, 0.f);
    for (std::size_t o = 0; o < h.size(); ++o) {
        for (std::size_t j = 0; j < k; ++j) {
            float* lane = w.data() + (o * pairs + j / 2) * 8 + 3 * (j % 2);
            lane[0] = lane[1] = lane[2] = h.weight[o * k + j];
        }
    }
    return w;
}

// One output row: horizontal taps over the row buffer, then scale and shift per channel.
void horizontal_pass(const float* row_buf, std::int64_t channels, const Taps& h,
                     const Normalization& norm, std::int64_t x0, std::int64_t x1, float* out_row,
                     std::size_t plane) {
    const std::size_t k = h.width;
#if defined(__GNUC__) && !defined(EDGEMED_PORTABLE_VECTORS)  // MSVC: the scalar chains below
    if (channels == 3 && norm.out_channels == 3 && k != 2 && h.contiguous) {
        // Without AVX2 (baseline x86-64, NEON on aarch64): the three channels' chains as lanes
        // 0-2 of one 4-float vector, each tap one load of the pixel (B, G, R and the next
        // pixel's first byte, weighted too but unused), four outputs in lockstep. Padding taps
        // (weight 0) read the pixel after the last real one: the row buffer has room for them.
        typedef float v4f __attribute__((vector_size(16)));
        const auto store = [&](std::int64_t x, const v4f& even, const v4f& odd) {
            const v4f acc = even + odd;
            for (int c = 0; c < 3; ++c) {
                out_row[static_cast<std::size_t>(c) * plane + static_cast<std::size_t>(x)] =
                    acc[norm.channel_map[c]] * norm.alpha[c] + norm.beta[c];
            }
        };
        const auto load = [](const float* p) {
            v4f v;
            std::memcpy(&v, p, sizeof v);
            return v;
        };
        std::int64_t x = x0;
        for (; x + 4 <= x1; x += 4) {
            const std::size_t t = static_cast<std::size_t>(x - x0) * k;
            const float* w = h.weight.data() + t;
            const float* p[4];
            for (std::size_t u = 0; u < 4; ++u) p[u] = row_buf + h.index[t + u * k];
            v4f acc[2][4] = {};
            for (std::size_t j = 0; j < k; ++j) {
                for (std::size_t u = 0; u < 4; ++u) acc[j % 2][u] += w[u * k + j] * load(p[u] + 3 * j);
            }
            for (std::size_t u = 0; u < 4; ++u) store(x + static_cast<std::int64_t>(u), acc[0][u], acc[1][u]);
        }
        for (; x < x1; ++x) {
            const std::size_t t = static_cast<std::size_t>(x - x0) * k;
            v4f acc[2] = {};
            for (std::size_t j = 0; j < k; ++j) acc[j % 2] += h.weight[t + j] * load(row_buf + h.index[t] + 3 * j);
            store(x, acc[0], acc[1]);
        }
        return;
    }
#endif
    if (channels == 3 && norm.out_channels == 3 && k != 2) {
        // The three channels' chains side by side.
        const std::int64_t* idx = h.index.data();
        const float* w = h.weight.data();
        for (std::int64_t x = x0; x < x1; ++x, idx += k, w += k) {
            float even[3] = {0.f, 0.f, 0.f}, odd[3] = {0.f, 0.f, 0.f};
            for (std::size_t j = 0; j < k; ++j) {
                const float* p = row_buf + idx[j];
                float* acc = j % 2 == 0 ? even : odd;
                acc[0] += w[j] * p[0];
                acc[1] += w[j] * p[1];
                acc[2] += w[j] * p[2];
            }
            for (int c = 0; c < 3; ++c) {
                const int m = norm.channel_map[c];
                out_row[static_cast<std::size_t>(c) * plane + static_cast<std::size_t>(x)] =
                    (even[m] + odd[m]) * norm.alpha[c] + norm.beta[c];
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
            float even = 0.f, odd = 0.f;
            for (std::size_t j = 0; j < k; j += 2) even += w[j] * in[idx[j]];
            for (std::size_t j = 1; j < k; j += 2) odd += w[j] * in[idx[j]];
            dst[x] = (even + odd) * a + b;
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

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(EDGEMED_PORTABLE_VECTORS)
#define EDGEMED_IMAGE_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define EDGEMED_IMAGE_CLONES
#endif

constexpr std::size_t kMaxEdges = 4;

// row_buf[j] = interior * (sum of the interior rows' bytes j) + edge_w[e] * edge_rows[e][j], in
// blocks of 512 bytes so each block's sums stay in L1 and every row is read once, in one pass
// (wide vectors where the CPU has them; the arithmetic is the same on every path).
EDGEMED_IMAGE_CLONES void area_rows(const std::uint8_t* const* interior_rows, std::size_t n_interior,
                                    float interior, const std::uint8_t* const* edge_rows,
                                    const float* edge_w, std::size_t n_edges, std::size_t n,
                                    std::uint16_t* sum, float* row_buf) {
    constexpr std::size_t kBlock = 512;
    for (std::size_t j0 = 0; j0 < n; j0 += kBlock) {
        const std::size_t m = std::min(kBlock, n - j0);
        float* rb = row_buf + j0;
        const std::uint8_t* p = interior_rows[0] + j0;
        for (std::size_t j = 0; j < m; ++j) sum[j] = p[j];
        for (std::size_t k = 1; k < n_interior; ++k) {
            p = interior_rows[k] + j0;
            for (std::size_t j = 0; j < m; ++j) sum[j] = static_cast<std::uint16_t>(sum[j] + p[j]);
        }
        if (n_edges == 2) {  // the usual cell: one pass that stores each float once
            const std::uint8_t *e0 = edge_rows[0] + j0, *e1 = edge_rows[1] + j0;
            const float w0 = edge_w[0], w1 = edge_w[1];
            for (std::size_t j = 0; j < m; ++j) {
                rb[j] = interior * static_cast<float>(sum[j]) + w0 * static_cast<float>(e0[j]) +
                        w1 * static_cast<float>(e1[j]);
            }
            continue;
        }
        for (std::size_t j = 0; j < m; ++j) rb[j] = interior * static_cast<float>(sum[j]);
        for (std::size_t e = 0; e < n_edges; ++e) {
            const float w = edge_w[e];
            p = edge_rows[e] + j0;
            for (std::size_t j = 0; j < m; ++j) rb[j] += w * static_cast<float>(p[j]);
        }
    }
}

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
    const std::uint8_t* interior_rows[257];
    const std::uint8_t* edge_rows[kMaxEdges];
    float edge_w[kMaxEdges];
    std::size_t n_edges = 0;
    n_interior = 0;
    for (std::size_t k = 0; k < v.width; ++k) {  // edges in tap order: the order they are added
        const std::uint8_t* p = src.data + v.index[vo + k] * src.row_stride + cols.front() * c;
        if (w[k] == interior) {
            interior_rows[n_interior++] = p;
        } else if (w[k] != 0.f) {
            if (n_edges == kMaxEdges) return false;
            edge_w[n_edges] = w[k], edge_rows[n_edges++] = p;
        }
    }
    const std::size_t n = cols.size() * static_cast<std::size_t>(c);
    area_rows(interior_rows, n_interior, interior, edge_rows, edge_w, n_edges, n, sum.data(), row_buf);
    return true;
}

// Area shrink: many rows per output row, so sum the needed source rows first (contiguous,
// vectorizes), then apply the horizontal taps to that one row buffer.
void vertical_first(const ImageU8& src, const Taps& v, Taps h, const Visible& vis,
                    const Placement& place, const Normalization& norm, std::int64_t out_w,
                    std::size_t plane, float* out) {
    const std::vector<std::int64_t> cols = compact_columns(h, src.channels);
    // Room after the last column for the vector loads of padding taps (zeros, never written).
    std::vector<float> row_buf((cols.size() + h.width + 1) * static_cast<std::size_t>(src.channels));
    std::vector<std::uint16_t> sum(512);
    bool avx2 = false;
#if defined(EDGEMED_VBMI)
    avx2 = has_avx2() && src.channels == 3 && norm.out_channels == 3 && h.width != 2 && h.contiguous;
#endif
    const std::vector<float> pair_w = avx2 ? pair_weights(h) : std::vector<float>();
    for (std::int64_t r = vis.y0; r < vis.y1; ++r) {
        const std::size_t vo = static_cast<std::size_t>(r - vis.y0) * v.width;
        if (!integer_rows(src, v, vo, cols, sum, row_buf.data())) {
            for (std::size_t k = 0; k < v.width; ++k) {
                if (k > 0 && v.weight[vo + k] == 0.f) continue;  // padding tap
                accumulate_row(src, v.index[vo + k], cols, v.weight[vo + k], k == 0, row_buf.data());
            }
        }
        float* out_row = out + (r - place.offset_y) * out_w - place.offset_x;
#if defined(EDGEMED_VBMI)
        if (avx2) {
            area_row_avx2(row_buf.data(), h, pair_w.data(), norm, vis.x0, vis.x1, out_row, plane);
            continue;
        }
#endif
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

#if defined(EDGEMED_VBMI)
// Packed 3-channel rows, two adjacent taps per output pixel (bilinear): each output pixel reads
// the 8 bytes at its first tap (both taps' B, G, R and two spare bytes). Sixteen pixels at a
// time: two 8-lane gathers, two byte permutes that sort the 128 bytes into the six (tap,
// channel) runs of 16, then widen, convert and w0 * p0 + w1 * p1 per channel, stored planar
// (hrow + ch * n). The same multiplies and add as the scalar loop: bit-identical results.
// Returns how many pixels it did (the rest need a read past their row's end, or are fewer than
// 16); requires offset[2o + 1] == offset[2o] + 3 or weight 0 on the second tap.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) std::size_t planar_row_vbmi(
    const std::uint8_t* row, const std::uint8_t* next, const std::int32_t* first, const float* w0,
    const float* w1, std::size_t n, std::size_t fast, float* hrow) {
    alignas(64) std::uint8_t ia[64], ib[64];
    for (int j = 0; j < 16; ++j) {  // byte 8j + 3t + c of the two gathered registers
        for (int run = 0; run < 4; ++run) ia[16 * run + j] = static_cast<std::uint8_t>(8 * j + run);
        for (int run = 0; run < 4; ++run) ib[16 * run + j] = static_cast<std::uint8_t>(8 * j + 4 + (run < 2 ? run : 0));
    }
    const __m512i idx_a = _mm512_load_si512(ia), idx_b = _mm512_load_si512(ib);  // t0c0..2, t1c0 | t1c1..2
    const __m512i zero = _mm512_setzero_si512();
    std::size_t o = 0;
    for (; o + 16 <= fast; o += 16) {
        if (next != nullptr) {  // the same span of the next row to resample, one row ahead
            for (std::int32_t b = first[o]; b < first[o + 15] + 8; b += 64) _mm_prefetch(reinterpret_cast<const char*>(next + b), _MM_HINT_T0);
        }
        const __m512i q0 = _mm512_mask_i32gather_epi64(
            zero, 0xFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(first + o)), row, 1);
        const __m512i q1 = _mm512_mask_i32gather_epi64(
            zero, 0xFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(first + o + 8)), row, 1);
        const __m512i a = _mm512_permutex2var_epi8(q0, idx_a, q1);
        const __m512i b = _mm512_permutex2var_epi8(q0, idx_b, q1);
        const __m512 wa = _mm512_loadu_ps(w0 + o), wb = _mm512_loadu_ps(w1 + o);
        const __m128i p0[3] = {_mm512_extracti32x4_epi32(a, 0), _mm512_extracti32x4_epi32(a, 1),
                               _mm512_extracti32x4_epi32(a, 2)};
        const __m128i p1[3] = {_mm512_extracti32x4_epi32(a, 3), _mm512_extracti32x4_epi32(b, 0),
                               _mm512_extracti32x4_epi32(b, 1)};
        for (std::size_t ch = 0; ch < 3; ++ch) {
            const __m512 f0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(p0[ch]));
            const __m512 f1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(p1[ch]));
            _mm512_storeu_ps(hrow + ch * n + o, _mm512_add_ps(_mm512_mul_ps(wa, f0), _mm512_mul_ps(wb, f1)));
        }
    }
    return o;
}

bool has_vbmi() {
    static const bool yes = dispatch_allowed() && __builtin_cpu_supports("avx512f") &&
                            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi");
    return yes;
}

// The same for CPUs with AVX2 but no VBMI (Intel Core hosts of an NPU, AMD Zen 2/3), eight pixels
// at a time and from `o` on: two pixels' 8-byte reads per 128-bit register, one byte shuffle per
// register into 16-bit runs (the two pixels' bytes of each tap and channel), then 16- and 32-bit
// unpacks that gather each run's eight bytes. The same multiplies and add as the scalar loop:
// bit-identical results. Returns how many pixels are done.
__attribute__((target("avx2"))) std::size_t planar_row_avx2(const std::uint8_t* row, const std::int32_t* first,
                                                           const float* w0, const float* w1, std::size_t n,
                                                           std::size_t o, std::size_t fast, float* hrow) {
    // Word r of a shuffled register = run r (tap r / 3, channel r % 3) of its two pixels,
    // whose 8-byte reads sit at bytes 0-7 and 8-15.
    const __m128i sort = _mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, -1, -1, -1, -1);
    for (; o + 8 <= fast; o += 8) {
        __m128i x[4];
        for (std::size_t i = 0; i < 4; ++i) {
            long long a, b;
            std::memcpy(&a, row + first[o + 2 * i], 8);
            std::memcpy(&b, row + first[o + 2 * i + 1], 8);
            x[i] = _mm_shuffle_epi8(_mm_set_epi64x(b, a), sort);
        }
        const __m128i lo01 = _mm_unpacklo_epi16(x[0], x[1]), lo23 = _mm_unpacklo_epi16(x[2], x[3]);  // runs 0-3
        const __m128i hi01 = _mm_unpackhi_epi16(x[0], x[1]), hi23 = _mm_unpackhi_epi16(x[2], x[3]);  // runs 4-5
        const __m128i r01 = _mm_unpacklo_epi32(lo01, lo23), r23 = _mm_unpackhi_epi32(lo01, lo23);
        const __m128i r45 = _mm_unpacklo_epi32(hi01, hi23);  // each 64-bit half: one run, pixels 0-7
        const __m128i p0[3] = {r01, _mm_srli_si128(r01, 8), r23};
        const __m128i p1[3] = {_mm_srli_si128(r23, 8), r45, _mm_srli_si128(r45, 8)};
        const __m256 wa = _mm256_loadu_ps(w0 + o), wb = _mm256_loadu_ps(w1 + o);
        for (std::size_t ch = 0; ch < 3; ++ch) {
            const __m256 f0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(p0[ch]));
            const __m256 f1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(p1[ch]));
            _mm256_storeu_ps(hrow + ch * n + o, _mm256_add_ps(_mm256_mul_ps(wa, f0), _mm256_mul_ps(wb, f1)));
        }
    }
    return o;
}

#endif

// The bilinear hot case with the channels split into planes right at the horizontal pass (so
// the vertical blend and the normalization run over contiguous planes, straight into the
// output): packed 3-channel rows on a CPU with AVX2 (AVX-512 VBMI: sixteen pixels a step). Each output pixel's two taps are
// adjacent pixels (or the second has weight 0). Same arithmetic, in the same order, as the
// interleaved path below: bit-identical output.
struct PlanarRows {
    std::vector<std::int32_t> first;  // byte offset of each output pixel's first tap
    std::vector<float> w0, w1;
    std::size_t fast = 0;  // pixels whose 8-byte read stays inside the row

    static bool usable(const ImageU8& src, const Taps& h) {
#if defined(EDGEMED_VBMI)
        if (src.channels != 3 || src.col_stride != 3 || src.channel_stride != 1 || h.width != 2) return false;
        if (3 * src.width > (std::int64_t{1} << 30) || !(has_vbmi() || has_avx2())) return false;
        for (std::size_t o = 0; o < h.size(); ++o) {
            if (h.index[2 * o + 1] != h.index[2 * o] + 1 && h.weight[2 * o + 1] != 0.f) return false;
        }
        return true;
#else
        (void)src, (void)h;
        return false;
#endif
    }

    PlanarRows(const ImageU8& src, const Taps& h) {
        const std::size_t n = h.size();
        for (std::size_t o = 0; o < n; ++o) {
            first.push_back(static_cast<std::int32_t>(3 * h.index[2 * o]));
            w0.push_back(h.weight[2 * o]);
            w1.push_back(h.weight[2 * o + 1]);
            if (first.back() + 8 <= 3 * src.width) fast = o + 1;
        }
    }

    // `next`: the next source row to be resampled (-1: none), prefetched a row ahead.
    void resample(const ImageU8& src, std::int64_t y, std::int64_t next, float* hrow) const {
        const std::uint8_t* row = src.data + y * src.row_stride;
        const std::size_t n = first.size();
        std::size_t o = 0;
#if defined(EDGEMED_VBMI)
        const std::uint8_t* ahead = next >= 0 ? src.data + next * src.row_stride : nullptr;
        if (has_vbmi()) o = planar_row_vbmi(row, ahead, first.data(), w0.data(), w1.data(), n, fast, hrow);
        o = planar_row_avx2(row, first.data(), w0.data(), w1.data(), n, o, fast, hrow);
#else
        (void)next;
#endif
        for (; o < n; ++o) {  // the same arithmetic as the scalar interleaved loop
            const std::uint8_t* p0 = row + first[o];
            const std::uint8_t* p1 = w1[o] != 0.f ? p0 + 3 : p0;
            for (std::size_t ch = 0; ch < 3; ++ch) {
                hrow[ch * n + o] = w0[o] * static_cast<float>(p0[ch]) + w1[o] * static_cast<float>(p1[ch]);
            }
        }
    }
};

// One plane's output row from two resampled rows (wide vectors where the CPU has them).
EDGEMED_IMAGE_CLONES void blend_two(const float* r0, const float* r1, float w0, float w1, float a, float b,
                                    std::size_t n, float* dst) {
    for (std::size_t x = 0; x < n; ++x) dst[x] = (w0 * r0[x] + w1 * r1[x]) * a + b;
}

void horizontal_first_planar(const ImageU8& src, const Taps& v, const PlanarRows& h, const Visible& vis,
                             const Placement& place, const Normalization& norm, std::int64_t out_w,
                             std::size_t plane, float* out) {
    const std::size_t n = h.first.size(), k = v.width, row_floats = 3 * n;
    std::vector<float> cache(k * row_floats), blend(n);
    std::vector<std::int64_t> cached(k, -1);
    std::vector<const float*> rows(k);
    for (std::int64_t r = vis.y0; r < vis.y1; ++r) {
        const std::size_t vo = static_cast<std::size_t>(r - vis.y0) * k;
        for (std::size_t j = 0; j < k; ++j) {  // consecutive source rows map to distinct slots
            const std::int64_t y = v.index[vo + j];
            const std::size_t slot = static_cast<std::size_t>(y) % k;
            float* hrow = cache.data() + slot * row_floats;
            if (cached[slot] != y) {
                const bool last = j + 1 == k;
                const std::int64_t next = !last ? v.index[vo + j + 1] : r + 1 < vis.y1 ? v.index[vo + k] : -1;
                h.resample(src, y, next, hrow), cached[slot] = y;
            }
            rows[j] = hrow;
        }
        const float* w = v.weight.data() + vo;
        float* out_row = out + (r - place.offset_y) * out_w - place.offset_x + vis.x0;
        for (int c = 0; c < norm.out_channels; ++c) {
            float* dst = out_row + static_cast<std::size_t>(c) * plane;
            const std::size_t off = static_cast<std::size_t>(norm.channel_map[c]) * n;
            const float a = norm.alpha[c], b = norm.beta[c];
            if (k == 2) {
                blend_two(rows[0] + off, rows[1] + off, w[0], w[1], a, b, n, dst);
                continue;
            }
            for (std::size_t x = 0; x < n; ++x) blend[x] = w[0] * rows[0][off + x];
            for (std::size_t j = 1; j < k; ++j) {
                for (std::size_t x = 0; x < n; ++x) blend[x] += w[j] * rows[j][off + x];
            }
            for (std::size_t x = 0; x < n; ++x) dst[x] = blend[x] * a + b;
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
    } else if (PlanarRows::usable(src, h)) {
        horizontal_first_planar(src, v, PlanarRows(src, h), vis, place, norm, out_w, plane, out);
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
