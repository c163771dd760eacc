// Thin pybind11 layer over edgemed::post: validate layout, release the GIL, call the core.
// Inputs are used in place whatever their strides (views need no copy); outputs are new arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "edgemed/post.hpp"

namespace py = pybind11;

namespace edgemed::bindings {
namespace {

using post::Strided2D;

std::ptrdiff_t element_stride(const py::array& arr, py::ssize_t axis, const char* name) {
    const py::ssize_t s = arr.strides(axis);
    if (s % static_cast<py::ssize_t>(sizeof(float)) != 0) {
        throw py::value_error(std::string(name) + ": strides must be multiples of 4 bytes");
    }
    return s / static_cast<py::ssize_t>(sizeof(float));
}

// A float32 array of exactly `ndim` dims (1 or 2), any strides, all finite. `layout` names the
// expected shape in messages, e.g. "(rows, n)".
Strided2D check(const py::array& arr, const char* name, py::ssize_t ndim, const char* layout) {
    if (!arr.dtype().is(py::dtype::of<float>())) {
        throw py::type_error(std::string(name) + ": expected a float32 array, got dtype " +
                             std::string(py::str(arr.dtype())));
    }
    if (arr.ndim() != ndim) {
        throw py::value_error(std::string(name) + ": expected shape " + layout + ", got ndim " +
                              std::to_string(arr.ndim()));
    }
    const Strided2D x =
        ndim == 1 ? Strided2D{static_cast<const float*>(arr.data()), 1,
                              static_cast<std::size_t>(arr.shape(0)), 0,
                              element_stride(arr, 0, name)}
                  : Strided2D{static_cast<const float*>(arr.data()),
                              static_cast<std::size_t>(arr.shape(0)),
                              static_cast<std::size_t>(arr.shape(1)), element_stride(arr, 0, name),
                              element_stride(arr, 1, name)};
    bool finite = true;
    {
        py::gil_scoped_release release;
        finite = post::all_finite(x);
    }
    if (!finite) throw py::value_error(std::string(name) + ": contains NaN or infinity");
    return x;
}

py::ssize_t ssize(std::size_t n) { return static_cast<py::ssize_t>(n); }

py::array_t<float> softmax(const py::array& x) {
    const Strided2D in = check(x, "x", 2, "(rows, n)");
    py::array_t<float> out({ssize(in.rows), ssize(in.n)});
    float* dst = out.mutable_data();
    py::gil_scoped_release release;
    post::softmax_rows(in, dst);
    return out;
}

// (outer, classes, inner) C-contiguous float32 -> softmax along the middle axis.
py::array_t<float> softmax_planes(const py::array& x) {
    if (!x.dtype().is(py::dtype::of<float>())) {
        throw py::type_error("x: expected a float32 array, got dtype " + std::string(py::str(x.dtype())));
    }
    if (x.ndim() != 3) throw py::value_error("x: expected shape (outer, classes, inner)");
    const auto item = static_cast<py::ssize_t>(sizeof(float));
    if (x.size() > 0 && (x.strides(2) != item || x.strides(1) != x.shape(2) * item ||
                         x.strides(0) != x.shape(1) * x.shape(2) * item)) {
        throw py::value_error("x: must be C-contiguous; pass np.ascontiguousarray(x)");
    }
    py::array_t<float> out({x.shape(0), x.shape(1), x.shape(2)});
    float* dst = out.mutable_data();
    bool finite = true;
    {
        py::gil_scoped_release release;
        if (x.size() > 0)
            finite = post::softmax_planes(static_cast<const float*>(x.data()),
                                          static_cast<std::size_t>(x.shape(0)),
                                          static_cast<std::size_t>(x.shape(1)),
                                          static_cast<std::size_t>(x.shape(2)), dst);
    }
    if (!finite) throw py::value_error("x: contains NaN or infinity");
    return out;
}

py::array_t<float> sigmoid(const py::array& x) {
    const Strided2D in = check(x, "x", 1, "(n,)");
    py::array_t<float> out(ssize(in.n));
    float* dst = out.mutable_data();
    py::gil_scoped_release release;
    post::sigmoid(in.data, in.n, in.col_stride, dst);
    return out;
}

py::tuple topk(const py::array& x, std::size_t k) {
    const Strided2D in = check(x, "x", 2, "(rows, n)");
    if (k == 0 || k > in.n) {
        throw py::value_error("k must be in [1, " + std::to_string(in.n) + "], got " +
                              std::to_string(k));
    }
    py::array_t<float> values({ssize(in.rows), ssize(k)});
    py::array_t<std::int64_t> index({ssize(in.rows), ssize(k)});
    float* v = values.mutable_data();
    std::int64_t* i = index.mutable_data();
    {
        py::gil_scoped_release release;
        post::topk_rows(in, k, v, i);
    }
    return py::make_tuple(values, index);
}

py::array_t<std::int64_t> argmax(const py::array& x) {
    const Strided2D in = check(x, "x", 2, "(rows, n)");
    if (in.n == 0) throw py::value_error("x: argmax of an empty last axis");
    py::array_t<std::int64_t> index(ssize(in.rows));
    std::int64_t* dst = index.mutable_data();
    py::gil_scoped_release release;
    post::argmax_rows(in, dst);
    return index;
}

py::array_t<std::int64_t> nms(const py::array& boxes, const py::array& scores, float iou_threshold,
                              float score_threshold, std::size_t max_detections) {
    const Strided2D b = check(boxes, "boxes", 2, "(n, 4) as x1, y1, x2, y2");
    const Strided2D s = check(scores, "scores", 1, "(n,)");
    if (b.n != 4 || b.col_stride != 1) {
        throw py::value_error("boxes: expected shape (n, 4) as x1, y1, x2, y2 with contiguous rows");
    }
    if (s.n != b.rows) throw py::value_error("scores: expected shape (n,) matching boxes");
    for (std::size_t i = 0; i < b.rows; ++i) {
        if (!(b.at(i, 0) <= b.at(i, 2) && b.at(i, 1) <= b.at(i, 3))) {
            throw py::value_error("boxes: expected x1 <= x2 and y1 <= y2 (row " +
                                  std::to_string(i) + ")");
        }
    }
    std::vector<std::int64_t> keep(std::min(b.rows, max_detections));
    std::size_t kept = 0;
    {
        py::gil_scoped_release release;
        kept = post::nms(b.data, b.row_stride, s.data, s.col_stride, b.rows, iou_threshold,
                         score_threshold, max_detections, keep.data());
    }
    return py::array_t<std::int64_t>(ssize(kept), keep.data());
}

py::tuple detect_events(const py::array& x, float high, float low, std::size_t min_duration,
                        std::size_t min_gap) {
    const Strided2D in = check(x, "x", 1, "(n,)");
    if (!(low <= high)) throw py::value_error("low must be <= high");
    std::vector<post::Event> events;
    {
        py::gil_scoped_release release;
        events = post::detect_events(in.data, in.n, in.col_stride, high, low, min_duration, min_gap);
    }
    py::array_t<std::int64_t> start(ssize(events.size())), end(ssize(events.size())),
        peak(ssize(events.size()));
    py::array_t<float> peak_value(ssize(events.size()));
    for (std::size_t i = 0; i < events.size(); ++i) {
        start.mutable_at(i) = events[i].start;
        end.mutable_at(i) = events[i].end;
        peak.mutable_at(i) = events[i].peak;
        peak_value.mutable_at(i) = events[i].peak_value;
    }
    return py::make_tuple(start, end, peak, peak_value);
}

}  // namespace

void bind_post(py::module_& m) {
    m.def("softmax", &softmax, py::arg("x"), "Softmax along the last axis of (rows, n) float32.");
    m.def("softmax_planes", &softmax_planes, py::arg("x"),
          "Softmax along the middle axis of C-contiguous (outer, classes, inner) float32.");
    m.def("sigmoid", &sigmoid, py::arg("x"), "Logistic function of (n,) float32.");
    m.def("topk", &topk, py::arg("x"), py::arg("k"),
          "k largest of each row of (rows, n) float32 -> (values, indices), ties to lower index.");
    m.def("argmax", &argmax, py::arg("x"), "First index of the maximum of each row.");
    m.def("nms", &nms, py::arg("boxes"), py::arg("scores"), py::arg("iou_threshold"),
          py::arg("score_threshold"), py::arg("max_detections"),
          "Greedy NMS of (n, 4) xyxy boxes -> kept indices, best first.");
    m.def("detect_events", &detect_events, py::arg("x"), py::arg("high"), py::arg("low"),
          py::arg("min_duration"), py::arg("min_gap"),
          "Hysteresis events of a 1-D signal -> (start, end, peak_index, peak_value).");
}

}  // namespace edgemed::bindings
