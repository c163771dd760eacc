// IIR filtering for edgemed::signal: sosfilt, sosfilt_zi and sosfiltfilt (scipy.signal semantics).
#include "edgemed/signal.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(EDGEMED_PORTABLE_VECTORS)
// GCC 12 flags the intrinsics' own "undefined" placeholders as maybe-uninitialized once inlined
// into a function built for another target (a false positive in the header).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define EDGEMED_WAVE 1  // run-time dispatched (AVX2): the build itself targets the baseline ISA
#endif

// SIMD across channels: the IIR recurrence is serial in time, so the only portable parallelism is
// across independent channels. Channels are interleaved into "lanes" (sample-major, L channels per
// sample) and the lane loop auto-vectorises (SSE2 / NEON baseline, AVX2 clone on x86_64).
#if defined(__x86_64__) && defined(__GNUC__)
#define EDGEMED_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EDGEMED_SIMD_CLONES
#endif

namespace edgemed::signal {
namespace {

// Samples per tile: 256 samples x 12 lanes x 8 bytes = 24 KiB, so a tile stays in L1 while every
// section runs over it.
constexpr std::size_t kTile = 256;
constexpr std::size_t kMaxLanes = 12;

// Four lanes as one value: GCC/Clang vector extensions lower it to 2 SSE2 or NEON registers or
// 1 AVX2 register. The auto-vectoriser does not find this on its own (it keeps the delays in
// memory), which made the filter as slow as SciPy's scalar loop.
#if defined(__GNUC__) && !defined(EDGEMED_PORTABLE_VECTORS)
typedef double vec4 __attribute__((vector_size(32)));
#define EDGEMED_ALWAYS_INLINE inline __attribute__((always_inline))
#else
// MSVC has no vector extensions: the same arithmetic on plain arrays, element by element in the
// same order (so results stay bit-identical); the optimiser vectorises what it can. Built and
// tested on Linux too with -DEDGEMED_PORTABLE_VECTORS (make -C csrc/tests portable).
struct vec4 {
    double v[4];
    friend vec4 operator+(const vec4& a, const vec4& b) noexcept {
        return {{a.v[0] + b.v[0], a.v[1] + b.v[1], a.v[2] + b.v[2], a.v[3] + b.v[3]}};
    }
    friend vec4 operator-(const vec4& a, const vec4& b) noexcept {
        return {{a.v[0] - b.v[0], a.v[1] - b.v[1], a.v[2] - b.v[2], a.v[3] - b.v[3]}};
    }
    friend vec4 operator*(const vec4& a, const vec4& b) noexcept {
        return {{a.v[0] * b.v[0], a.v[1] * b.v[1], a.v[2] * b.v[2], a.v[3] * b.v[3]}};
    }
};
#if defined(_MSC_VER)
#define EDGEMED_ALWAYS_INLINE __forceinline
#else
#define EDGEMED_ALWAYS_INLINE inline
#endif
#endif

#define EDGEMED_LOAD4(dst, src) std::memcpy(&(dst), (src), sizeof(vec4))
#define EDGEMED_STORE4(dst, src) std::memcpy((dst), &(src), sizeof(vec4))

// One DF2T step of a section on 4 lanes; same operation order as SciPy's _sosfilt.
struct Section4 {
    vec4 b0, b1, b2, a1, a2;
    explicit Section4(const double* c) noexcept {
        splat(b0, c[0]);
        splat(b1, c[1]);
        splat(b2, c[2]);
        splat(a1, c[4]);
        splat(a2, c[5]);
    }
    // By reference: returning a vec4 by value changes the x86 ABI without AVX (-Wpsabi).
    static void splat(vec4& v, double x) noexcept {
        const double four[4] = {x, x, x, x};
        std::memcpy(&v, four, sizeof v);
    }
    // In place on x (references only: passing vec4 by value changes the x86 ABI without AVX).
    void step(vec4& x, vec4& z0, vec4& z1) const noexcept {
        const vec4 y = b0 * x + z0;
        z0 = b1 * x - a1 * y + z1;
        z1 = b2 * x - a2 * y;
        x = y;
    }
};

// Sections `s` and `s + 1` (or just `s` when `pair` is false) over `count` lane-interleaved
// samples (count x 4*NV), in place, with the delays in registers for the whole tile. The
// recurrence is latency-bound, so what matters is the number of independent chains in flight:
// NV vectors of lanes times two sections (section s + 1 works on sample i while section s is
// already on sample i + 1).
template <std::size_t NV>
EDGEMED_ALWAYS_INLINE void sections_tile(const double* sos, std::size_t s,
                                                         bool pair, double* tile,
                                                         std::size_t count,
                                                         double* state) noexcept {
    constexpr std::size_t L = 4 * NV;
    const Section4 f(sos + 6 * s), g(sos + 6 * (pair ? s + 1 : s));
    double* st = state + 2 * L * s;
    vec4 z[4][NV];  // z0, z1 of section s, then of section s + 1
    for (std::size_t k = 0; k < (pair ? 4u : 2u); ++k)
        for (std::size_t v = 0; v < NV; ++v) EDGEMED_LOAD4(z[k][v], st + k * L + 4 * v);
    for (std::size_t i = 0; i < count; ++i) {
        double* row = tile + i * L;
        for (std::size_t v = 0; v < NV; ++v) {
            vec4 x;
            EDGEMED_LOAD4(x, row + 4 * v);
            f.step(x, z[0][v], z[1][v]);
            if (pair) g.step(x, z[2][v], z[3][v]);
            EDGEMED_STORE4(row + 4 * v, x);
        }
    }
    for (std::size_t k = 0; k < (pair ? 4u : 2u); ++k)
        for (std::size_t v = 0; v < NV; ++v) EDGEMED_STORE4(st + k * L + 4 * v, z[k][v]);
}

template <std::size_t NV>
EDGEMED_ALWAYS_INLINE void cascade_tile(const double* sos, std::size_t n_sections,
                                                        double* tile, std::size_t count,
                                                        double* state) noexcept {
    for (std::size_t s = 0; s < n_sections; s += 2) {
        if (s + 1 < n_sections) {
            sections_tile<NV>(sos, s, true, tile, count, state);
        } else {
            sections_tile<NV>(sos, s, false, tile, count, state);
        }
    }
}

// One channel: every section in one pass over the samples, all delays in registers. The
// recurrence of a section is serial in time (about 16 cycles per sample: add, multiply,
// subtract, add), but the sections' recurrences are independent of each other within a sample,
// so with all of them in one loop the core overlaps them (section s + 1 on sample i while
// section s is already on sample i + 1) and one pass costs about one section's latency per
// sample. Same operations in the same order as SciPy's _sosfilt: bit-identical results.
// Reads `in` and writes `out` with element steps (in place, reversed or strided).
template <std::size_t NS>
void fused_pass(const double* sos, const double* in, std::ptrdiff_t in_step, double* out,
                std::ptrdiff_t out_step, std::size_t count, double* state) noexcept {
    double b0[NS], b1[NS], b2[NS], a1[NS], a2[NS], z0[NS], z1[NS];
    for (std::size_t s = 0; s < NS; ++s) {
        b0[s] = sos[6 * s], b1[s] = sos[6 * s + 1], b2[s] = sos[6 * s + 2];
        a1[s] = sos[6 * s + 4], a2[s] = sos[6 * s + 5];
        z0[s] = state[2 * s], z1[s] = state[2 * s + 1];
    }
    for (std::size_t i = 0; i < count; ++i, in += in_step, out += out_step) {
        double v = *in;
        for (std::size_t s = 0; s < NS; ++s) {
            const double y = b0[s] * v + z0[s];
            z0[s] = b1[s] * v - a1[s] * y + z1[s];
            z1[s] = b2[s] * v - a2[s] * y;
            v = y;
        }
        *out = v;
    }
    for (std::size_t s = 0; s < NS; ++s) state[2 * s] = z0[s], state[2 * s + 1] = z1[s];
}

#if defined(EDGEMED_WAVE)
// One channel, sections as SIMD lanes ("wavefront"): lane s runs section s on sample t - s, so
// one step of 4 lanes advances 4 sections at once, each with exactly SciPy's operations in
// SciPy's order (bit-identical to fused_pass); between steps the outputs move one lane up
// (section s's output is section s + 1's next input) and the next sample enters lane 0. One
// pass of a 4-section cascade is ~9 vector operations and a permute per sample instead of 36
// scalar ones, which is what bounded the scalar pass (~15 cycles a sample on the Xeon, the
// loop-carried latency is ~10). Lanes past the cascade's length pass their input through.
struct Wave {
    double b0[4], b1[4], b2[4], a1[4], a2[4], z0[4] = {}, z1[4] = {}, v[4] = {};
    std::size_t ns;  // 1..4 sections in lanes 0..ns-1

    Wave(const double* sos, std::size_t n_sections, const double* state) noexcept : ns(n_sections) {
        for (std::size_t s = 0; s < 4; ++s) {
            const bool real = s < ns;
            b0[s] = real ? sos[6 * s] : 1.0, b1[s] = real ? sos[6 * s + 1] : 0.0;
            b2[s] = real ? sos[6 * s + 2] : 0.0, a1[s] = real ? sos[6 * s + 4] : 0.0;
            a2[s] = real ? sos[6 * s + 5] : 0.0;
            if (real) z0[s] = state[2 * s], z1[s] = state[2 * s + 1];
        }
    }

    // Step t of `count` samples, lane by lane: the pipeline's fill and drain, where only lanes
    // with 0 <= t - s < count run (the others keep their delays).
    void scalar_step(std::size_t t, std::size_t count, double x, double* out) noexcept {
        double y[4];
        v[0] = x;
        for (std::size_t s = 0; s < 4; ++s) {
            y[s] = b0[s] * v[s] + z0[s];
            if (s < ns && s <= t && t - s < count) {
                z0[s] = b1[s] * v[s] - a1[s] * y[s] + z1[s];
                z1[s] = b2[s] * v[s] - a2[s] * y[s];
            }
        }
        const std::size_t d = ns - 1;
        if (t >= d && t - d < count) *out = y[d];
        for (std::size_t s = 3; s > 0; --s) v[s] = y[s - 1];
    }
};

// `steps` full steps; v[0] holds the step's sample on entry, `ip` the next one's. SHIFT makes
// the next step's inputs (x, y0, y1, y2): a permute and a blend (AVX2), or one two-source
// permute (AVX-512VL, a cycle shorter on the step's critical path).
#define EDGEMED_WAVE_STEPS(SHIFT)                                                                    \
    const __m256d b0 = _mm256_loadu_pd(w.b0), b1 = _mm256_loadu_pd(w.b1), b2 = _mm256_loadu_pd(w.b2); \
    const __m256d a1 = _mm256_loadu_pd(w.a1), a2 = _mm256_loadu_pd(w.a2);                           \
    __m256d z0 = _mm256_loadu_pd(w.z0), z1 = _mm256_loadu_pd(w.z1), v = _mm256_loadu_pd(w.v);         \
    for (std::size_t t = 0; t < steps; ++t, ip += is, op += os) {                                     \
        const __m256d y = _mm256_add_pd(_mm256_mul_pd(b0, v), z0);                                    \
        z0 = _mm256_add_pd(_mm256_sub_pd(_mm256_mul_pd(b1, v), _mm256_mul_pd(a1, y)), z1);           \
        z1 = _mm256_sub_pd(_mm256_mul_pd(b2, v), _mm256_mul_pd(a2, y));                               \
        const __m128d half = D >= 2 ? _mm256_extractf128_pd(y, 1) : _mm256_castpd256_pd128(y);        \
        if (D % 2 == 1) {                                                                             \
            _mm_storeh_pd(op, half);                                                                  \
        } else {                                                                                      \
            _mm_storel_pd(op, half);                                                                  \
        }                                                                                             \
        v = SHIFT;                                                                                    \
    }                                                                                                 \
    _mm256_storeu_pd(w.z0, z0), _mm256_storeu_pd(w.z1, z1), _mm256_storeu_pd(w.v, v);

template <int D>
__attribute__((target("avx2"))) void wave_steps(Wave& w, const double* ip, std::ptrdiff_t is,
                                                double* op, std::ptrdiff_t os, std::size_t steps) noexcept {
    EDGEMED_WAVE_STEPS(_mm256_blend_pd(_mm256_permute4x64_pd(y, 0x90), _mm256_broadcast_sd(ip), 1))
}

template <int D>
__attribute__((target("avx2,avx512f,avx512vl"))) void wave_steps_vl(Wave& w, const double* ip,
                                                                   std::ptrdiff_t is, double* op,
                                                                   std::ptrdiff_t os, std::size_t steps) noexcept {
    EDGEMED_WAVE_STEPS(_mm256_permutex2var_pd(y, _mm256_set_epi64x(2, 1, 0, 4), _mm256_broadcast_sd(ip)))
}
#undef EDGEMED_WAVE_STEPS

bool has_avx512vl() noexcept {
    static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    return yes;
}

template <int D>
void wave_run(Wave& w, const double* ip, std::ptrdiff_t is, double* op, std::ptrdiff_t os,
              std::size_t steps) noexcept {
    if (has_avx512vl()) {
        wave_steps_vl<D>(w, ip, is, op, os, steps);
    } else {
        wave_steps<D>(w, ip, is, op, os, steps);
    }
}

void wave_pass(const double* sos, std::size_t ns, const double* in, std::ptrdiff_t is, double* out,
               std::ptrdiff_t os, std::size_t count, double* state) noexcept {
    Wave w(sos, ns, state);
    const std::size_t d = ns - 1, total = count + d;
    const auto at = [](auto* p, std::ptrdiff_t step, std::size_t i) { return p + static_cast<std::ptrdiff_t>(i) * step; };
    std::size_t t = 0;
    for (; t < std::min(d, total); ++t) w.scalar_step(t, count, t < count ? *at(in, is, t) : 0.0, at(out, os, t - d));
    if (t + 1 < count) {  // steps d .. count - 2 read the next sample, which exists
        w.v[0] = *at(in, is, t);
        const std::size_t steps = count - 1 - t;
        const double* ip = at(in, is, t + 1);
        double* op = at(out, os, t - d);
        switch (d) {
            case 0: wave_run<0>(w, ip, is, op, os, steps); break;
            case 1: wave_run<1>(w, ip, is, op, os, steps); break;
            case 2: wave_run<2>(w, ip, is, op, os, steps); break;
            default: wave_run<3>(w, ip, is, op, os, steps); break;
        }
        t += steps;
    }
    for (; t < total; ++t) w.scalar_step(t, count, t < count ? *at(in, is, t) : 0.0, at(out, os, t - d));
    for (std::size_t s = 0; s < ns; ++s) state[2 * s] = w.z0[s], state[2 * s + 1] = w.z1[s];
}

bool has_avx2() noexcept {
    static const bool yes = __builtin_cpu_supports("avx2");
    return yes;
}
#endif

// One channel through the whole cascade: with AVX2, 4 sections per pass as lanes (wave_pass);
// else up to 6 sections per pass (6 x 7 doubles fit the 16 registers of SSE2/NEON with a few
// spilled coefficients). Longer cascades take several passes, the first from `in` to `out`,
// the others in place on `out`.
void pass1(const double* sos, std::size_t n_sections, const double* in, std::ptrdiff_t in_step,
           double* out, std::ptrdiff_t out_step, std::size_t count, double* state) noexcept {
#if defined(EDGEMED_WAVE)
    if (has_avx2()) {  // 4 sections per pass as SIMD lanes; the same results
        for (std::size_t s = 0; s < n_sections; s += 4) {
            wave_pass(sos + 6 * s, std::min<std::size_t>(4, n_sections - s), in, in_step, out, out_step, count,
                      state + 2 * s);
            in = out, in_step = out_step;
        }
        return;
    }
#endif
    for (std::size_t s = 0; s < n_sections; s += 6) {
        const double* c = sos + 6 * s;
        double* st = state + 2 * s;
        switch (std::min<std::size_t>(6, n_sections - s)) {
            case 1: fused_pass<1>(c, in, in_step, out, out_step, count, st); break;
            case 2: fused_pass<2>(c, in, in_step, out, out_step, count, st); break;
            case 3: fused_pass<3>(c, in, in_step, out, out_step, count, st); break;
            case 4: fused_pass<4>(c, in, in_step, out, out_step, count, st); break;
            case 5: fused_pass<5>(c, in, in_step, out, out_step, count, st); break;
            default: fused_pass<6>(c, in, in_step, out, out_step, count, st); break;
        }
        in = out, in_step = out_step;
    }
}

void cascade1(const double* sos, std::size_t n_sections, double* tile, std::size_t count,
              double* state) noexcept {
    pass1(sos, n_sections, tile, 1, tile, 1, count, state);
}

EDGEMED_SIMD_CLONES void cascade12(const double* sos, std::size_t ns, double* t, std::size_t n,
                                   double* st) noexcept {
    cascade_tile<3>(sos, ns, t, n, st);
}
EDGEMED_SIMD_CLONES void cascade8(const double* sos, std::size_t ns, double* t, std::size_t n,
                                  double* st) noexcept {
    cascade_tile<2>(sos, ns, t, n, st);
}
EDGEMED_SIMD_CLONES void cascade4(const double* sos, std::size_t ns, double* t, std::size_t n,
                                  double* st) noexcept {
    cascade_tile<1>(sos, ns, t, n, st);
}

void cascade(std::size_t lanes, const double* sos, std::size_t ns, double* t, std::size_t n,
             double* st) noexcept {
    if (lanes == 12) {
        cascade12(sos, ns, t, n, st);
    } else if (lanes == 8) {
        cascade8(sos, ns, t, n, st);
    } else if (lanes == 4) {
        cascade4(sos, ns, t, n, st);
    } else {
        cascade1(sos, ns, t, n, st);
    }
}

// Lane width for a group starting with `remaining` channels: wider groups keep more independent
// chains in flight; a single channel runs scalar. Dead lanes of a group are zero-filled.
std::size_t lane_width(std::size_t remaining) noexcept {
    return remaining >= 9 ? 12 : remaining >= 5 ? 8 : remaining >= 2 ? 4 : 1;
}

// A group of `used` channels starting at channel `c0`, processed in `lanes` lanes.
struct Group {
    std::size_t c0, used, lanes;
};

std::vector<Group> make_groups(std::size_t begin, std::size_t end) {
    std::vector<Group> groups;
    for (std::size_t c = begin; c < end;) {
        const std::size_t lanes = lane_width(end - c);
        const std::size_t used = std::min(lanes, end - c);
        groups.push_back({c, used, lanes});
        c += used;
    }
    return groups;
}

// Two doubles: unpack-low/high shuffles of this type are single SSE2/NEON instructions (4-wide
// shuffles lower to scalar code without AVX, which was slower than plain copying).
#if defined(__GNUC__) && !defined(EDGEMED_PORTABLE_VECTORS)
typedef double vec2 __attribute__((vector_size(16)));
#if defined(__clang__)
#define EDGEMED_LO(a, b) __builtin_shufflevector(a, b, 0, 2)
#define EDGEMED_HI(a, b) __builtin_shufflevector(a, b, 1, 3)
#else
typedef long long mask2 __attribute__((vector_size(16)));
#define EDGEMED_LO(a, b) __builtin_shuffle(a, b, mask2{0, 2})
#define EDGEMED_HI(a, b) __builtin_shuffle(a, b, mask2{1, 3})
#endif
#else
struct vec2 {
    double v[2];
};
#define EDGEMED_LO(a, b) (vec2{{(a).v[0], (b).v[0]}})
#define EDGEMED_HI(a, b) (vec2{{(a).v[1], (b).v[1]}})
#endif

inline vec2 load2(const double* p) noexcept {
    vec2 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store2(double* p, const vec2& v) noexcept { std::memcpy(p, &v, sizeof v); }

// 4 channels x 4 samples between rows (4 consecutive doubles from `at`) and 4 tile rows, as 2x2
// block transposes. t[m] is the tile row of the sample at memory offset at + m (Step -1 rows
// run backwards in time, so their tile rows come in reverse order).
template <bool ToTile, int Step, typename Ptr>
inline void quad(Ptr const* rows, std::size_t q, std::size_t lanes, double* tile) noexcept {
    const std::ptrdiff_t at = Step == 1 ? static_cast<std::ptrdiff_t>(q)
                                        : -static_cast<std::ptrdiff_t>(q + 3);
    double* t[4];
    for (std::size_t m = 0; m < 4; ++m) t[m] = tile + (Step == 1 ? m : 3 - m) * lanes;
    if (ToTile) {
        for (std::size_t h = 0; h < 2; ++h) {  // channel pairs (0, 1) and (2, 3)
            for (std::size_t m = 0; m < 4; m += 2) {
                const vec2 u = load2(rows[2 * h] + at + static_cast<std::ptrdiff_t>(m));
                const vec2 v = load2(rows[2 * h + 1] + at + static_cast<std::ptrdiff_t>(m));
                store2(t[m] + 2 * h, EDGEMED_LO(u, v));
                store2(t[m + 1] + 2 * h, EDGEMED_HI(u, v));
            }
        }
    } else {
        for (std::size_t h = 0; h < 2; ++h) {
            for (std::size_t m = 0; m < 4; m += 2) {
                const vec2 u = load2(t[m] + 2 * h), v = load2(t[m + 1] + 2 * h);
                store2(const_cast<double*>(rows[2 * h]) + at + static_cast<std::ptrdiff_t>(m),
                       EDGEMED_LO(u, v));
                store2(const_cast<double*>(rows[2 * h + 1]) + at + static_cast<std::ptrdiff_t>(m),
                       EDGEMED_HI(u, v));
            }
        }
    }
}

// One element: tile row q, lane l <-> rows[l][q * step].
template <bool ToTile, typename Ptr>
inline void single(Ptr const* rows, std::ptrdiff_t step, std::size_t q, std::size_t l,
                   std::size_t lanes, double* tile) noexcept {
    const std::ptrdiff_t off = static_cast<std::ptrdiff_t>(q) * step;
    if (ToTile) {
        tile[q * lanes + l] = rows[l][off];
    } else {
        const_cast<double*>(rows[l])[off] = tile[q * lanes + l];
    }
}

template <bool ToTile, int Step, typename Ptr>
std::size_t interleave_quads(Ptr const* rows, std::size_t used, std::size_t lanes, double* tile,
                             std::size_t count) noexcept {
    const std::size_t quads = used / 4;
    std::size_t q = 0;
    for (; q + 4 <= count; q += 4) {
        for (std::size_t b = 0; b < quads; ++b)
            quad<ToTile, Step>(rows + 4 * b, q, lanes, tile + q * lanes + 4 * b);
        for (std::size_t l = 4 * quads; l < used; ++l)
            for (std::size_t k = q; k < q + 4; ++k) single<ToTile>(rows, Step, k, l, lanes, tile);
    }
    return q;
}

// Moves `count` samples between channel rows and the lane-interleaved tile: tile row q, lane l
// <-> rows[l][q * step]. Unit steps (+1 forward, -1 time-reversed) go through 4x4 register
// transposes; element-wise copying was ~40% of the filter time. Dead lanes are not touched
// (callers zero the tile once, and a zero lane stays zero through the filter).
template <bool ToTile, typename Ptr>
void interleave(Ptr const* rows, std::ptrdiff_t step, std::size_t used, std::size_t lanes,
                double* tile, std::size_t count) noexcept {
    std::size_t q = 0;
    if (step == 1) q = interleave_quads<ToTile, 1>(rows, used, lanes, tile, count);
    if (step == -1) q = interleave_quads<ToTile, -1>(rows, used, lanes, tile, count);
    for (; q < count; ++q)
        for (std::size_t l = 0; l < used; ++l) single<ToTile>(rows, step, q, l, lanes, tile);
}

// tile[k * lanes + l] = channel (c0 + l), samples [i0, i0 + count).
void gather(const Block& x, const Group& g, std::size_t i0, std::size_t count,
            double* tile) noexcept {
    const double* rows[kMaxLanes];
    for (std::size_t l = 0; l < g.used; ++l) {
        rows[l] = x.data + static_cast<std::ptrdiff_t>(g.c0 + l) * x.ch_stride +
                  static_cast<std::ptrdiff_t>(i0) * x.stride;
    }
    interleave<true>(rows, x.stride, g.used, g.lanes, tile, count);
}

// Channel rows of y (n samples each) at sample i0, for interleave.
void y_rows(const Group& g, double* y, std::size_t n, std::size_t i0, double** rows) noexcept {
    for (std::size_t l = 0; l < g.used; ++l) rows[l] = y + (g.c0 + l) * n + i0;
}

}  // namespace

void sosfilt(const double* sos, std::size_t n_sections, const Block& x, double* y,
             double* state) noexcept {
    double tile[kTile * kMaxLanes] = {};
    std::vector<double> lane_state;  // small (n_sections x 2 x 8): one allocation per call
    for (const Group& g : make_groups(0, x.channels)) {
        std::fill(tile, tile + kTile * g.lanes, 0.0);  // dead lanes must hold finite values
        lane_state.assign(2 * g.lanes * n_sections, 0.0);
        for (std::size_t s = 0; state != nullptr && s < n_sections; ++s) {
            for (std::size_t l = 0; l < g.used; ++l) {
                const double* zi = state + 2 * (s * x.channels + g.c0 + l);
                lane_state[2 * g.lanes * s + l] = zi[0];
                lane_state[2 * g.lanes * s + g.lanes + l] = zi[1];
            }
        }
        if (g.lanes == 1) {  // one channel: straight from x to y, no tile
            pass1(sos, n_sections, x.data + static_cast<std::ptrdiff_t>(g.c0) * x.ch_stride,
                  x.stride, y + g.c0 * x.n, 1, x.n, lane_state.data());
        }
        for (std::size_t i0 = 0; g.lanes > 1 && i0 < x.n; i0 += kTile) {
            const std::size_t count = std::min(kTile, x.n - i0);
            gather(x, g, i0, count, tile);
            cascade(g.lanes, sos, n_sections, tile, count, lane_state.data());
            double* rows[kMaxLanes];
            y_rows(g, y, x.n, i0, rows);
            interleave<false>(rows, 1, g.used, g.lanes, tile, count);
        }
        for (std::size_t s = 0; state != nullptr && s < n_sections; ++s) {
            for (std::size_t l = 0; l < g.used; ++l) {
                double* zf = state + 2 * (s * x.channels + g.c0 + l);
                zf[0] = lane_state[2 * g.lanes * s + l];
                zf[1] = lane_state[2 * g.lanes * s + g.lanes + l];
            }
        }
    }
}

bool all_finite(const Block& x) noexcept {
    for (std::size_t c = 0; c < x.channels; ++c) {
        const double* row = x.data + static_cast<std::ptrdiff_t>(c) * x.ch_stride;
        for (std::size_t i = 0; i < x.n; ++i) {
            if (!std::isfinite(row[static_cast<std::ptrdiff_t>(i) * x.stride])) return false;
        }
    }
    return true;
}

// lfilter_zi per section solves (I - A^T) zi = b[1:] - a[1:] b0, a 2x2 system. Solved the way
// LAPACK's dgesv does it (partial pivoting, reciprocal pivot scaling) so that near-singular
// sections (poles close to z = 1, e.g. a 0.5 Hz high-pass) round like SciPy's.
bool sosfilt_zi(const double* sos, std::size_t n_sections, double* zi) noexcept {
    for (std::size_t s = 0; s < n_sections; ++s) {
        const double* c = sos + 6 * s;
        if (c[3] + c[4] + c[5] == 0.0) return false;  // pole at z = 1: no steady state
    }
    double scale = 1.0;
    for (std::size_t s = 0; s < n_sections; ++s) {
        const double* c = sos + 6 * s;
        const double b0 = c[0], b1 = c[1], b2 = c[2], a1 = c[4], a2 = c[5];
        double m[2][2] = {{1.0 + a1, -1.0}, {a2, 1.0}};
        double r[2] = {b1 - a1 * b0, b2 - a2 * b0};
        if (std::fabs(m[1][0]) > std::fabs(m[0][0])) {
            std::swap(m[0], m[1]);
            std::swap(r[0], r[1]);
        }
        const double l10 = m[1][0] * (1.0 / m[0][0]);
        const double u11 = m[1][1] - l10 * m[0][1];
        const double x1 = (r[1] - l10 * r[0]) / u11;
        const double x0 = (r[0] - x1 * m[0][1]) / m[0][0];
        zi[2 * s] = scale * x0;
        zi[2 * s + 1] = scale * x1;
        scale *= (b0 + b1 + b2) / (c[3] + a1 + a2);
    }
    return true;
}

std::size_t default_padlen(const double* sos, std::size_t n_sections) noexcept {
    std::size_t b2_zero = 0, a2_zero = 0;
    for (std::size_t s = 0; s < n_sections; ++s) {
        b2_zero += sos[6 * s + 2] == 0.0;
        a2_zero += sos[6 * s + 5] == 0.0;
    }
    return 3 * (2 * n_sections + 1 - std::min(b2_zero, a2_zero));
}

namespace {

// Extended signal of one channel (SciPy's odd_ext / even_ext / const_ext by `p` samples) and the
// filtfilt passes over a lane group. ext[j] = x[j - p] for p <= j < p + n.
struct Extension {
    const Block& x;
    PadType pad;
    std::size_t p;

    void load(const Group& g, std::size_t j0, std::size_t count, double* tile) const noexcept {
        const std::size_t n = x.n;
        const std::size_t k_mid = j0 < p ? std::min(p - j0, count) : 0;  // left pad rows
        const std::size_t k_end = std::max(k_mid, std::min(count, p + n > j0 ? p + n - j0 : 0));
        if (k_end > k_mid) gather(x, g, j0 + k_mid - p, k_end - k_mid, tile + k_mid * g.lanes);
        if (k_mid == 0 && k_end == count) return;
        for (std::size_t l = 0; l < g.used; ++l) {
            double* t = tile + l;
            const double* xc = x.data + static_cast<std::ptrdiff_t>(g.c0 + l) * x.ch_stride;
            const double first = xc[0];
            const double last = xc[static_cast<std::ptrdiff_t>(n - 1) * x.stride];
            for (std::size_t k = 0; k < k_mid; ++k) {  // left pad mirrors x[p - j]
                const double v = xc[static_cast<std::ptrdiff_t>(p - j0 - k) * x.stride];
                t[k * g.lanes] = edge(first, v);
            }
            for (std::size_t k = k_end; k < count; ++k) {  // right pad mirrors x[n - 2 - r]
                const std::size_t r = j0 + k - p - n;
                const double v = xc[static_cast<std::ptrdiff_t>(n - 2 - r) * x.stride];
                t[k * g.lanes] = edge(last, v);
            }
        }
    }

    double edge(double end, double mirrored) const noexcept {
        switch (pad) {
            case PadType::odd:
                return 2.0 * end - mirrored;
            case PadType::even:
                return mirrored;
            default:
                return end;
        }
    }
};

// Buffers are sized by the caller (Workspace) so that a helper thread never allocates or throws.
struct Workspace {
    std::vector<double> state, tail;  // lane delays; forward output over the right pad
    Workspace(std::size_t padlen, std::size_t ns)
        : state(2 * kMaxLanes * ns), tail(padlen * kMaxLanes) {}
};

// Copies tile rows [q0, q1) to (ToY) or from the channel rows of y (n samples each): row q0 is
// sample i0 and each next row is one sample further in direction `dir` (+1 or -1).
template <bool ToY>
void transfer(const Group& g, double* tile, std::size_t q0, std::size_t q1, double* y,
              std::size_t n, std::size_t i0, std::ptrdiff_t dir) noexcept {
    double* rows[kMaxLanes];
    y_rows(g, y, n, i0, rows);
    interleave<!ToY>(rows, dir, g.used, g.lanes, tile + q0 * g.lanes, q1 - q0);
}

void init_state(const double* zi, std::size_t ns, const double* first, std::size_t lanes,
                double* st) noexcept {
    for (std::size_t i = 0; i < 2 * ns; ++i)
        for (std::size_t l = 0; l < lanes; ++l) st[i * lanes + l] = zi[i] * first[l];
}

// Forward pass over the extended signal, written straight into y (and the right pad into the
// workspace); then the backward pass reads y time-reversed and overwrites it in place. No
// signal-sized buffer: the traffic is one read of x and two read+writes of y, which is what
// bounds this kernel once the recurrence is vectorised.
// One channel: the passes run straight over x and y (strided, reversed) with every section in
// one sweep; only the two pads go through the workspace. Same results as the lane path.
void filtfilt_one(const double* sos, std::size_t ns, const double* zi, const Extension& ext,
                  std::size_t c, Workspace& ws, double* y) noexcept {
    const Block& x = ext.x;
    const std::size_t n = x.n, p = ext.p;
    const double* xc = x.data + static_cast<std::ptrdiff_t>(c) * x.ch_stride;
    const auto at = [&](std::size_t i) { return xc[static_cast<std::ptrdiff_t>(i) * x.stride]; };
    double* yc = y + c * n;
    double* pad = ws.tail.data();  // the left pad, then the right pad (forward output)
    double* st = ws.state.data();
    for (std::size_t k = 0; k < p; ++k) pad[k] = ext.edge(at(0), at(p - k));  // x[p - j]
    init_state(zi, ns, p > 0 ? pad : xc, 1, st);  // SciPy scales zi by the first sample
    pass1(sos, ns, pad, 1, pad, 1, p, st);
    pass1(sos, ns, xc, x.stride, yc, 1, n, st);
    for (std::size_t r = 0; r < p; ++r) pad[r] = ext.edge(at(n - 1), at(n - 2 - r));
    pass1(sos, ns, pad, 1, pad, 1, p, st);
    // Backward, from zi times the last forward output: the right pad reversed, then y reversed.
    init_state(zi, ns, p > 0 ? pad + (p - 1) : yc + (n - 1), 1, st);
    if (p > 0) pass1(sos, ns, pad + (p - 1), -1, pad + (p - 1), -1, p, st);
    pass1(sos, ns, yc + (n - 1), -1, yc + (n - 1), -1, n, st);
}

void filtfilt_group(const double* sos, std::size_t ns, const double* zi, const Extension& ext,
                    const Group& g, Workspace& ws, double* y) noexcept {
    if (g.lanes == 1) return filtfilt_one(sos, ns, zi, ext, g.c0, ws, y);
    const std::size_t n = ext.x.n, p = ext.p, len = n + 2 * p, L = g.lanes;
    double* st = ws.state.data();
    double* tail = ws.tail.data();
    double tile[kTile * kMaxLanes] = {};
    for (std::size_t j0 = 0; j0 < len; j0 += kTile) {
        const std::size_t count = std::min(kTile, len - j0);
        ext.load(g, j0, count, tile);
        if (j0 == 0) init_state(zi, ns, tile, L, st);  // SciPy scales zi by the first sample
        cascade(L, sos, ns, tile, count, st);
        const std::size_t q_mid = j0 < p ? std::min(p - j0, count) : 0;  // rows of the left pad
        const std::size_t q_end = std::max(q_mid, std::min(count, p + n > j0 ? p + n - j0 : 0));
        if (q_end > q_mid) transfer<true>(g, tile, q_mid, q_end, y, n, j0 + q_mid - p, 1);
        for (std::size_t q = q_end; q < count; ++q)
            std::memcpy(tail + (j0 + q - p - n) * L, tile + q * L, L * sizeof(double));
    }
    // Backward: reversed row k is forward sample len - 1 - k; k < p is the right pad (in `tail`),
    // the left pad (k >= p + n) is never needed. Initial delays: zi times the last forward output.
    if (p > 0) {
        init_state(zi, ns, tail + (p - 1) * L, L, st);
    } else {
        transfer<false>(g, tile, 0, 1, y, n, n - 1, 1);
        init_state(zi, ns, tile, L, st);
    }
    for (std::size_t k0 = 0; k0 < p + n; k0 += kTile) {
        const std::size_t count = std::min(kTile, p + n - k0);
        const std::size_t q_mid = k0 < p ? std::min(p - k0, count) : 0;
        for (std::size_t q = 0; q < q_mid; ++q)
            std::memcpy(tile + q * L, tail + (p - 1 - k0 - q) * L, L * sizeof(double));
        const std::size_t i0 = n + p - 1 - k0 - q_mid;  // sample of row q_mid
        transfer<false>(g, tile, q_mid, count, y, n, i0, -1);
        cascade(L, sos, ns, tile, count, st);
        transfer<true>(g, tile, q_mid, count, y, n, i0, -1);
    }
}

// CPUs this process may run on: its affinity mask on Linux (taskset, cgroup cpusets), so a
// process pinned to one CPU filters on one thread instead of two threads sharing it.
unsigned usable_cpus() noexcept {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
#endif
    return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

bool sosfiltfilt(const double* sos, std::size_t n_sections, const Block& x, PadType pad,
                 std::size_t padlen, double* y) {
    std::vector<double> zi(2 * n_sections);
    if (!sosfilt_zi(sos, n_sections, zi.data())) return false;
    const Extension ext{x, pad, pad == PadType::none ? 0 : padlen};
    auto run = [&](std::size_t c0, std::size_t c1, Workspace& ws) noexcept {
        for (const Group& g : make_groups(c0, c1))
            filtfilt_group(sos, n_sections, zi.data(), ext, g, ws, y);
    };
    Workspace main_ws(ext.p, n_sections);
    // Large multichannel inputs: half of the channels on a helper thread. The kernel is bound by
    // memory traffic and the recurrence latency of one core, so a second core nearly halves the
    // time; below ~1M samples the thread start costs more than it saves. Not when the process
    // may use one CPU only.
    const std::size_t half = x.channels / 2;
    if (half > 0 && x.n * x.channels >= (std::size_t{1} << 20) && usable_cpus() > 1) {
        Workspace helper_ws(ext.p, n_sections);
        std::thread helper;
        try {
            helper = std::thread(run, 0, half, std::ref(helper_ws));
        } catch (const std::system_error&) {  // no thread available: run serially
            run(0, x.channels, main_ws);
            return true;
        }
        run(half, x.channels, main_ws);
        helper.join();
        return true;
    }
    run(0, x.channels, main_ws);
    return true;
}

}  // namespace edgemed::signal
