// Thin pybind11 layer over edgemed::image: validate layout, release the GIL, call the core.
// Inputs are read through their strides (no copy); outputs are caller-allocated C-contiguous
// arrays so a batch is filled frame by frame in place.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "edgemed/image.hpp"

namespace py = pybind11;

namespace edgemed::bindings {
namespace {

std::string shape_of(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

image::ImageU8 check_image(const py::array& img) {
    const char* layout = "image: expected a uint8 array (height, width) or (height, width, channels) "
                         "with 1, 3 or 4 channels";
    if (!py::isinstance<py::array_t<std::uint8_t>>(img)) {
        throw py::type_error(std::string(layout) + ", got dtype " + std::string(py::str(img.dtype())));
    }
    if (img.ndim() != 2 && img.ndim() != 3) throw py::value_error(std::string(layout) + ", got shape " + shape_of(img));
    const std::int64_t c = img.ndim() == 3 ? img.shape(2) : 1;
    if ((c != 1 && c != 3 && c != 4) || img.shape(0) < 1 || img.shape(1) < 1) {
        throw py::value_error(std::string(layout) + ", got shape " + shape_of(img));
    }
    return {static_cast<const std::uint8_t*>(img.data()), img.shape(0), img.shape(1), c,
            img.strides(0), img.strides(1), img.ndim() == 3 ? img.strides(2) : 1};
}

template <typename T>
T* check_output(py::array& out, const char* dtype, const std::vector<py::ssize_t>& shape) {
    std::string want = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    want += ")";
    const bool ok = py::isinstance<py::array_t<T>>(out) && out.ndim() == static_cast<py::ssize_t>(shape.size()) &&
                    std::equal(shape.begin(), shape.end(), out.shape()) &&
                    (out.flags() & py::array::c_style) && out.writeable();
    if (!ok) {
        throw py::value_error(std::string("out: expected a writable C-contiguous ") + dtype + " array " + want +
                              ", got " + std::string(py::str(out.dtype())) + " " + shape_of(out));
    }
    return static_cast<T*>(out.mutable_data());
}

void resize_normalize(const py::array& img, py::array& out, int interpolation,
                      std::array<std::int64_t, 4> placement, const std::vector<int>& channel_map,
                      const std::vector<float>& alpha, const std::vector<float>& beta, float pad_value) {
    const image::ImageU8 src = check_image(img);
    const std::size_t n = channel_map.size();
    if (n < 1 || n > 4 || alpha.size() != n || beta.size() != n) {
        throw py::value_error("channel_map, alpha and beta must have the same length, 1 to 4");
    }
    image::Normalization norm{static_cast<int>(n), {}, {}, {}, pad_value};
    for (std::size_t c = 0; c < n; ++c) {
        if (channel_map[c] < 0 || channel_map[c] >= src.channels) {
            throw py::value_error("channel_map[" + std::to_string(c) + "]=" + std::to_string(channel_map[c]) +
                                  " is not a channel of a " + std::to_string(src.channels) + "-channel image");
        }
        norm.channel_map[c] = channel_map[c], norm.alpha[c] = alpha[c], norm.beta[c] = beta[c];
    }
    const image::Placement place{placement[0], placement[1], placement[2], placement[3]};
    if (place.resized_height < 1 || place.resized_width < 1) throw py::value_error("resized size must be >= 1");
    if (out.ndim() != 3) throw py::value_error("out: expected float32 (channels, height, width), got " + shape_of(out));
    float* dst = check_output<float>(out, "float32", {static_cast<py::ssize_t>(n), out.shape(1), out.shape(2)});
    const auto interp = interpolation == 0 ? image::Interpolation::bilinear : image::Interpolation::area;
    const std::int64_t out_h = out.shape(1), out_w = out.shape(2);
    py::gil_scoped_release release;
    image::resize_normalize(src, interp, place, norm, out_h, out_w, dst);
}

std::array<std::int64_t, 4> placement(const std::string& fit, std::int64_t src_h, std::int64_t src_w,
                                      std::int64_t out_h, std::int64_t out_w, std::int64_t shorter) {
    if (src_h < 1 || src_w < 1 || out_h < 1 || out_w < 1) throw py::value_error("sizes must be >= 1");
    image::Placement p{};
    if (fit == "stretch") {
        p = image::stretch(src_h, src_w, out_h, out_w);
    } else if (fit == "center_crop") {
        if (shorter < 1) throw py::value_error("resize_shorter_to must be >= 1");
        p = image::center_crop(src_h, src_w, shorter, out_h, out_w);
    } else if (fit == "letterbox") {
        p = image::letterbox(src_h, src_w, out_h, out_w);
    } else {
        throw py::value_error("fit must be 'stretch', 'center_crop' or 'letterbox', got '" + fit + "'");
    }
    return {p.resized_height, p.resized_width, p.offset_y, p.offset_x};
}

template <typename T>
image::Volume<T> volume(const py::array& a) {
    image::Volume<T> v{static_cast<const T*>(a.data()), {1, 1, 1}, {0, 0, 0}};
    const py::ssize_t lead = 3 - a.ndim();
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        v.shape[lead + i] = a.shape(i);
        v.strides[lead + i] = a.strides(i) / static_cast<py::ssize_t>(sizeof(T));
    }
    return v;
}

template <typename T>
void window_typed(const py::array& px, py::array& out, const image::Window& w, float lo, float hi) {
    std::vector<py::ssize_t> shape(px.shape(), px.shape() + px.ndim());
    const image::Volume<T> v = volume<T>(px);
    if (py::isinstance<py::array_t<std::uint8_t>>(out)) {
        std::uint8_t* dst = check_output<std::uint8_t>(out, "uint8", shape);
        py::gil_scoped_release release;
        image::window_to_u8(v, w, dst);
    } else {
        float* dst = check_output<float>(out, "float32", shape);
        py::gil_scoped_release release;
        image::window_to_float(v, w, lo, hi, dst);
    }
}

void window(const py::array& px, py::array& out, double slope, double intercept, double center,
            double width, int function, float out_min, float out_max) {
    const char* layout = "pixels: expected an int16 or uint16 array (rows, cols) or (frames, rows, cols)";
    if (px.ndim() != 2 && px.ndim() != 3) throw py::value_error(std::string(layout) + ", got shape " + shape_of(px));
    if (function < 0 || function > 2) throw py::value_error("function must be 0 (linear), 1 (linear_exact) or 2 (sigmoid)");
    const auto fn = static_cast<image::VoiFunction>(function);
    if (!(width >= 1.0) && fn == image::VoiFunction::linear) throw py::value_error("width must be >= 1 for the linear VOI function");
    if (!(width > 0.0)) throw py::value_error("width must be > 0");
    const image::Window w{slope, intercept, center, width, fn};
    if (py::isinstance<py::array_t<std::int16_t>>(px)) return window_typed<std::int16_t>(px, out, w, out_min, out_max);
    if (py::isinstance<py::array_t<std::uint16_t>>(px)) return window_typed<std::uint16_t>(px, out, w, out_min, out_max);
    throw py::type_error(std::string(layout) + ", got dtype " + std::string(py::str(px.dtype())));
}

}  // namespace

void bind_image(py::module_& m) {
    m.def("resize_normalize", &resize_normalize, py::arg("image"), py::arg("out"), py::arg("interpolation"),
          py::arg("placement"), py::arg("channel_map"), py::arg("alpha"), py::arg("beta"), py::arg("pad_value"),
          "Fused resize + crop/letterbox + channel order + normalization of a uint8 HWC image into out (C, H, W).");
    m.def("placement", &placement, py::arg("fit"), py::arg("src_h"), py::arg("src_w"), py::arg("out_h"),
          py::arg("out_w"), py::arg("shorter") = 0,
          "(resized_h, resized_w, offset_y, offset_x) of a source placed by 'stretch', 'center_crop' or 'letterbox'.");
    m.def("window", &window, py::arg("pixels"), py::arg("out"), py::arg("slope"), py::arg("intercept"),
          py::arg("center"), py::arg("width"), py::arg("function"), py::arg("out_min"), py::arg("out_max"),
          "DICOM modality rescale + VOI window of int16/uint16 stored values into out (float32 or uint8).");
}

}  // namespace edgemed::bindings
