// Image kernels: one fused pass from a uint8 HWC frame to a normalized float32 CHW tensor
// (resize, crop or letterbox, channel order, normalization), and DICOM intensity windowing.
// Pure C++17: raw pointers, sizes and byte strides (negative strides are allowed); no Python.
#pragma once

#include <cstddef>
#include <cstdint>

namespace edgemed::image {

// A uint8 image view as OpenCV/NumPy give it: any strides, in bytes, may be negative.
struct ImageU8 {
    const std::uint8_t* data;
    std::int64_t height;
    std::int64_t width;
    std::int64_t channels;  // 1, 3 or 4
    std::ptrdiff_t row_stride;
    std::ptrdiff_t col_stride;
    std::ptrdiff_t channel_stride;
};

// Interpolation with OpenCV's exact sampling grid, so models trained with cv2.resize see the
// same pixels: bilinear = INTER_LINEAR (half-pixel centres), area = INTER_AREA (pixel-area
// averaging when shrinking both axes, OpenCV's area-weighted linear rule otherwise).
enum class Interpolation { bilinear, area };

// Where the resized source sits in the output: output(y, x) = resized(y + offset_y,
// x + offset_x). Positive offsets crop, negative offsets pad (letterbox).
struct Placement {
    std::int64_t resized_height;
    std::int64_t resized_width;
    std::int64_t offset_y;
    std::int64_t offset_x;
};

// Resize the whole frame to out_h x out_w (aspect ratio not kept).
Placement stretch(std::int64_t src_h, std::int64_t src_w, std::int64_t out_h,
                  std::int64_t out_w) noexcept;
// Resize so the shorter side is `shorter` (the longer side truncated as torchvision's Resize
// does), then take the centred out_h x out_w crop. Requires shorter >= max(out_h, out_w)
// when the matching side is the shorter one; a crop larger than the image is padded.
Placement center_crop(std::int64_t src_h, std::int64_t src_w, std::int64_t shorter,
                      std::int64_t out_h, std::int64_t out_w) noexcept;
// Keep the aspect ratio, fit inside out_h x out_w and centre with padding (YOLO-style).
Placement letterbox(std::int64_t src_h, std::int64_t src_w, std::int64_t out_h,
                    std::int64_t out_w) noexcept;

// Per output channel c: value = pixel[channel_map[c]] * alpha[c] + beta[c]; pixels outside
// the placed image get pad_value * alpha[c] + beta[c].
struct Normalization {
    int out_channels;   // 1..4
    int channel_map[4]; // source channel feeding each output channel
    float alpha[4];     // scale / std
    float beta[4];      // -mean / std
    float pad_value;    // raw pixel value used for padding (e.g. 114)
};

// Writes out_channels x out_h x out_w floats (C-contiguous) to `out`. Allocates only the
// per-call tap tables and one row buffer.
void resize_normalize(const ImageU8& src, Interpolation interpolation, const Placement& place,
                      const Normalization& norm, std::int64_t out_h, std::int64_t out_w,
                      float* out);

// DICOM VOI LUT functions (PS3.3 C.11.2.1.2): linear (default), linear exact, sigmoid.
enum class VoiFunction { linear, linear_exact, sigmoid };

struct Window {
    double slope;      // Rescale Slope (modality LUT)
    double intercept;  // Rescale Intercept
    double center;     // Window Center
    double width;      // Window Width (>= 1 for linear, > 0 otherwise)
    VoiFunction function;
};

// A strided view of stored pixel values: up to 3 dimensions (frames, rows, cols); strides in
// elements. Unused leading dimensions have size 1.
template <typename T>
struct Volume {
    const T* data;
    std::int64_t shape[3];
    std::ptrdiff_t strides[3];
};

// Modality rescale + VOI windowing of stored values into [out_min, out_max] (float32, C order).
template <typename T>
void window_to_float(const Volume<T>& src, const Window& window, float out_min, float out_max,
                     float* out);

// Same into uint8 [0, 255], rounded to nearest (ties to even, as NumPy's rint).
template <typename T>
void window_to_u8(const Volume<T>& src, const Window& window, std::uint8_t* out);

// The VOI function itself on one modality value; used by both paths and by the tests.
double apply_window(double value, const Window& window, double out_min, double out_max) noexcept;

}  // namespace edgemed::image
