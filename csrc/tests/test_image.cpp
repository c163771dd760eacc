// Image kernels: hand-computed answers (the Python tests compare against OpenCV and NumPy).
#include <cstdint>
#include <utility>
#include <vector>

#include "check.hpp"
#include "edgemed/image.hpp"

using namespace edgemed::image;

namespace {

const Normalization kIdentity{1, {0, 0, 0, 0}, {1, 1, 1, 1}, {0, 0, 0, 0}, 0.f};

void test_identity_and_strides() {
    const std::uint8_t px[] = {10, 20, 30, 40, 50, 60};  // 2 x 3 gray
    std::vector<float> out(6);
    for (auto interp : {Interpolation::bilinear, Interpolation::area}) {
        resize_normalize({px, 2, 3, 1, 3, 1, 1}, interp, stretch(2, 3, 2, 3), kIdentity, 2, 3, out.data());
        for (int i = 0; i < 6; ++i) CHECK(out[i] == px[i]);
    }
    // The same pixels through a flipped view (negative row stride): rows swap.
    resize_normalize({px + 3, 2, 3, 1, -3, 1, 1}, Interpolation::bilinear, stretch(2, 3, 2, 3), kIdentity, 2, 3, out.data());
    CHECK(out[0] == 40 && out[3] == 10);
}

void test_area_mean_and_bilinear_midpoints() {
    const std::uint8_t px[] = {0, 100, 50, 250};  // 2 x 2 gray
    float one = 0;
    resize_normalize({px, 2, 2, 1, 2, 1, 1}, Interpolation::area, stretch(2, 2, 1, 1), kIdentity, 1, 1, &one);
    CHECK_NEAR(one, 100.0, 1e-4);  // mean of the four
    // 2 -> 4 bilinear with half-pixel centres: x = 0.25, 0.75 blend -> 0, 25, 75, 100 on row 0.
    std::vector<float> up(8);
    resize_normalize({px, 2, 2, 1, 2, 1, 1}, Interpolation::bilinear, {2, 4, 0, 0}, kIdentity, 2, 4, up.data());
    CHECK_NEAR(up[0], 0, 1e-5); CHECK_NEAR(up[1], 25, 1e-5); CHECK_NEAR(up[2], 75, 1e-5); CHECK_NEAR(up[3], 100, 1e-5);
}

void test_channels_and_normalization() {
    const std::uint8_t bgr[] = {1, 2, 3};  // one BGR pixel -> RGB, scaled and shifted
    const Normalization n{3, {2, 1, 0, 0}, {2, 2, 2, 0}, {-1, -1, -1, 0}, 0.f};
    float out[3];
    resize_normalize({bgr, 1, 1, 3, 3, 3, 1}, Interpolation::bilinear, stretch(1, 1, 1, 1), n, 1, 1, out);
    CHECK(out[0] == 5 && out[1] == 3 && out[2] == 1);
}

void test_letterbox_and_crop() {
    const Placement p = letterbox(100, 200, 64, 64);  // wide: 32 x 64, padded 16 above
    CHECK(p.resized_height == 32 && p.resized_width == 64 && p.offset_y == -16 && p.offset_x == 0);
    const std::vector<std::uint8_t> px(100 * 200, 200);
    const Normalization n{1, {0}, {1}, {0}, 114.f};
    std::vector<float> out(64 * 64);
    resize_normalize({px.data(), 100, 200, 1, 200, 1, 1}, Interpolation::area, p, n, 64, 64, out.data());
    CHECK(out[0] == 114 && out[15 * 64] == 114 && out[16 * 64] == 200 && out[47 * 64 + 63] == 200 && out[48 * 64] == 114);
    const Placement c = center_crop(480, 640, 256, 224, 224);  // 256 x 341, crop offsets 16 and 58
    CHECK(c.resized_height == 256 && c.resized_width == 341 && c.offset_y == 16 && c.offset_x == 58);
}

// Packed BGR rows take the SIMD paths (AVX2 / AVX-512 where the CPU has them); the same pixels
// with a fourth channel (alpha, dropped) take the generic loops. Same floats, and under ASan no read
// outside the frame or the row buffer.
void test_packed_paths_match_the_generic_ones() {
    const std::int64_t h = 97, w = 211;
    std::vector<std::uint8_t> bgra(static_cast<std::size_t>(h * w * 4)), bgr(static_cast<std::size_t>(h * w * 3));
    std::uint32_t state = 12345;
    for (auto& b : bgra) state = state * 1664525u + 1013904223u, b = static_cast<std::uint8_t>(state >> 24);
    for (std::int64_t i = 0; i < h * w; ++i) {
        for (int c = 0; c < 3; ++c) bgr[static_cast<std::size_t>(3 * i + c)] = bgra[static_cast<std::size_t>(4 * i + c)];
    }
    const Normalization n{3, {2, 1, 0, 0}, {0.5f, 0.25f, 2.f, 0}, {-1, 0.5f, 3, 0}, 0.f};
    for (auto interp : {Interpolation::bilinear, Interpolation::area}) {
        for (const auto& [oh, ow] : {std::pair<std::int64_t, std::int64_t>{13, 29}, {24, 24}, {97, 50}, {5, 211}}) {
            std::vector<float> packed(static_cast<std::size_t>(3 * oh * ow)), generic(packed.size());
            resize_normalize({bgr.data(), h, w, 3, 3 * w, 3, 1}, interp, stretch(h, w, oh, ow), n, oh, ow, packed.data());
            resize_normalize({bgra.data(), h, w, 4, 4 * w, 4, 1}, interp, stretch(h, w, oh, ow), n, oh, ow, generic.data());
            CHECK(packed == generic);
        }
    }
}

void test_window() {
    const Window lin{1, -1024, 40, 400, VoiFunction::linear};
    CHECK(apply_window(40 - 0.5 - 199.5, lin, 0, 1) == 0.0);   // lower edge: minimum
    CHECK(apply_window(40 - 0.5 + 199.5 + 1e-9, lin, 0, 1) == 1.0);
    CHECK_NEAR(apply_window(39.5, lin, 0, 1), 0.5, 1e-12);     // centre - 0.5 maps to the middle
    const std::int16_t stored[] = {0, 1064, 4000};             // HU -1024, 40, 2976
    std::uint8_t u8[3];
    window_to_u8<std::int16_t>({stored, {1, 1, 3}, {0, 0, 1}}, lin, u8);
    CHECK(u8[0] == 0 && u8[1] == 128 && u8[2] == 255);
    const Window sig{1, 0, 0, 4, VoiFunction::sigmoid};
    CHECK_NEAR(apply_window(0, sig, 0, 1), 0.5, 1e-12);
}

}  // namespace

int main() {
    test_identity_and_strides();
    test_area_mean_and_bilinear_midpoints();
    test_channels_and_normalization();
    test_letterbox_and_crop();
    test_packed_paths_match_the_generic_ones();
    test_window();
    return check_report("test_image");
}
