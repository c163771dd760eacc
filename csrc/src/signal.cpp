// IIR filtering for edgemed::signal: sosfilt, sosfilt_zi and sosfiltfilt (scipy.signal semantics).
#include "edgemed/signal.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <system_error>
#include <thread>
#include <vector>

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
typedef double vec4 __attribute__((vector_size(32)));

#define EDGEMED_LOAD4(dst, src) std::memcpy(&(dst), (src), sizeof(vec4))
#define EDGEMED_STORE4(dst, src) std::memcpy((dst), &(src), sizeof(vec4))

// One DF2T step of a section on 4 lanes; same operation order as SciPy's _sosfilt.
struct Section4 {
    vec4 b0, b1, b2, a1, a2;
    explicit Section4(const double* c) noexcept
        : b0{c[0], c[0], c[0], c[0]}, b1{c[1], c[1], c[1], c[1]}, b2{c[2], c[2], c[2], c[2]},
          a1{c[4], c[4], c[4], c[4]}, a2{c[5], c[5], c[5], c[5]} {}
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
inline __attribute__((always_inline)) void sections_tile(const double* sos, std::size_t s,
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
inline __attribute__((always_inline)) void cascade_tile(const double* sos, std::size_t n_sections,
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

// One channel: the plain recurrence (scalar; latency-bound, but no lane is wasted).
void cascade1(const double* sos, std::size_t n_sections, double* tile, std::size_t count,
              double* state) noexcept {
    for (std::size_t s = 0; s < n_sections; ++s) {
        const double* c = sos + 6 * s;
        double z0 = state[2 * s], z1 = state[2 * s + 1];
        for (std::size_t i = 0; i < count; ++i) {
            const double x = tile[i];
            const double y = c[0] * x + z0;
            z0 = c[1] * x - c[4] * y + z1;
            z1 = c[2] * x - c[5] * y;
            tile[i] = y;
        }
        state[2 * s] = z0;
        state[2 * s + 1] = z1;
    }
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

std::vector<Group> make_groups(std::size_t channels) {
    std::vector<Group> groups;
    for (std::size_t c = 0; c < channels;) {
        const std::size_t lanes = lane_width(channels - c);
        const std::size_t used = std::min(lanes, channels - c);
        groups.push_back({c, used, lanes});
        c += used;
    }
    return groups;
}

// tile[k * lanes + l] = channel (c0 + l), samples [i0, i0 + count). Sample-major: tile writes
// are sequential and each channel is one sequential stream. Dead lanes are not touched (the
// callers zero the tile once, and a zero lane stays zero through the filter).
void gather(const Block& x, const Group& g, std::size_t i0, std::size_t count,
            double* tile) noexcept {
    const double* rows[kMaxLanes];
    for (std::size_t l = 0; l < g.used; ++l) {
        rows[l] = x.data + static_cast<std::ptrdiff_t>(g.c0 + l) * x.ch_stride +
                  static_cast<std::ptrdiff_t>(i0) * x.stride;
    }
    std::ptrdiff_t off = 0;
    for (std::size_t k = 0; k < count; ++k, off += x.stride) {
        double* t = tile + k * g.lanes;
        for (std::size_t l = 0; l < g.used; ++l) t[l] = rows[l][off];
    }
}

}  // namespace

void sosfilt(const double* sos, std::size_t n_sections, const Block& x, double* y,
             double* state) noexcept {
    double tile[kTile * kMaxLanes] = {};
    std::vector<double> lane_state;  // small (n_sections x 2 x 8): one allocation per call
    for (const Group& g : make_groups(x.channels)) {
        std::fill(tile, tile + kTile * g.lanes, 0.0);  // dead lanes must hold finite values
        lane_state.assign(2 * g.lanes * n_sections, 0.0);
        for (std::size_t s = 0; state != nullptr && s < n_sections; ++s) {
            for (std::size_t l = 0; l < g.used; ++l) {
                const double* zi = state + 2 * (s * x.channels + g.c0 + l);
                lane_state[2 * g.lanes * s + l] = zi[0];
                lane_state[2 * g.lanes * s + g.lanes + l] = zi[1];
            }
        }
        for (std::size_t i0 = 0; i0 < x.n; i0 += kTile) {
            const std::size_t count = std::min(kTile, x.n - i0);
            gather(x, g, i0, count, tile);
            cascade(g.lanes, sos, n_sections, tile, count, lane_state.data());
            for (std::size_t k = 0; k < count; ++k) {  // sample-major, as gather
                for (std::size_t l = 0; l < g.used; ++l) y[(g.c0 + l) * x.n + i0 + k] = tile[k * g.lanes + l];
            }
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
    for (std::size_t l = 0; l < g.used; ++l) rows[l] = y + (g.c0 + l) * n + i0;
    // Sample-major: the tile is written (or read) sequentially and each channel row is a
    // sequential stream; lane-major order made every tile store a strided one.
    std::ptrdiff_t off = 0;
    for (std::size_t q = q0; q < q1; ++q, off += dir) {
        double* t = tile + q * g.lanes;
        for (std::size_t l = 0; l < g.used; ++l) {
            if (ToY) {
                rows[l][off] = t[l];
            } else {
                t[l] = rows[l][off];
            }
        }
    }
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
void filtfilt_group(const double* sos, std::size_t ns, const double* zi, const Extension& ext,
                    const Group& g, Workspace& ws, double* y) noexcept {
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

}  // namespace

bool sosfiltfilt(const double* sos, std::size_t n_sections, const Block& x, PadType pad,
                 std::size_t padlen, double* y) {
    std::vector<double> zi(2 * n_sections);
    if (!sosfilt_zi(sos, n_sections, zi.data())) return false;
    const Extension ext{x, pad, pad == PadType::none ? 0 : padlen};
    const std::vector<Group> groups = make_groups(x.channels);
    auto run = [&](std::size_t begin, std::size_t end, Workspace& ws) noexcept {
        for (std::size_t i = begin; i < end; ++i)
            filtfilt_group(sos, n_sections, zi.data(), ext, groups[i], ws, y);
    };
    Workspace main_ws(ext.p, n_sections);
    // Two threads only pay off when each has at least one big group; below ~1M samples the
    // thread start and the shared memory bandwidth cost more than they save.
    const std::size_t half = groups.size() / 2;
    if (half > 0 && x.n * x.channels >= (std::size_t{1} << 20)) {
        Workspace helper_ws(ext.p, n_sections);
        std::thread helper;
        try {
            helper = std::thread(run, 0, half, std::ref(helper_ws));
        } catch (const std::system_error&) {  // no thread available: run serially
            run(0, groups.size(), main_ws);
            return true;
        }
        run(half, groups.size(), main_ws);
        helper.join();
        return true;
    }
    run(0, groups.size(), main_ws);
    return true;
}

}  // namespace edgemed::signal
