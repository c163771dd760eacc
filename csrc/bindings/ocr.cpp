// Thin pybind11 layer over edgemed::ocr: validate layout, release the GIL, call the core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "edgemed/ocr.hpp"

namespace py = pybind11;

namespace edgemed::bindings {
namespace {

void check_float32(const py::array& arr, const char* name, py::ssize_t ndim, const char* layout) {
    if (!arr.dtype().is(py::dtype::of<float>())) {
        throw py::type_error(std::string(name) + ": expected a float32 array, got dtype " +
                             std::string(py::str(arr.dtype())));
    }
    if (arr.ndim() != ndim) {
        throw py::value_error(std::string(name) + ": expected shape " + layout + ", got ndim " +
                              std::to_string(arr.ndim()));
    }
    for (py::ssize_t i = 0; i < ndim && arr.size() > 0; ++i) {
        if (arr.strides(i) % static_cast<py::ssize_t>(sizeof(float)) != 0) {
            throw py::value_error(std::string(name) + ": strides must be multiples of 4 bytes");
        }
    }
}

// All elements of a 2-D or 3-D strided float32 array finite? Runs without the GIL.
bool all_finite(const py::array& arr) {
    const auto* base = static_cast<const char*>(arr.data());
    const bool three = arr.ndim() == 3;
    const py::ssize_t outer = three ? arr.shape(0) : 1, rows = arr.shape(three ? 1 : 0);
    const py::ssize_t cols = arr.shape(three ? 2 : 1), so = three ? arr.strides(0) : 0;
    const py::ssize_t sr = arr.strides(three ? 1 : 0);
    const py::ssize_t sc = arr.strides(three ? 2 : 1) / static_cast<py::ssize_t>(sizeof(float));
    py::gil_scoped_release release;
    for (py::ssize_t o = 0; o < outer; ++o) {
        for (py::ssize_t r = 0; r < rows; ++r) {
            const auto* row = reinterpret_cast<const float*>(base + o * so + r * sr);
            // x * 0 is NaN exactly when x is NaN or infinite: no branches, and eight lanes
            // let the compiler vectorise the contiguous case.
            float acc[8] = {};
            py::ssize_t c = 0;
            if (sc == 1)
                for (; c + 8 <= cols; c += 8)
                    for (py::ssize_t j = 0; j < 8; ++j) acc[j] += row[c + j] * 0.f;
            for (; c < cols; ++c) acc[0] += row[c * sc] * 0.f;
            for (const float a : acc)
                if (a != 0.f) return false;
        }
    }
    return true;
}

py::list ctc_greedy_decode(const py::array& probs, const std::vector<std::string>& charset,
                           std::size_t blank) {
    check_float32(probs, "probs", 3, "(batch, steps, classes)");
    const auto batch = static_cast<std::size_t>(probs.shape(0));
    const auto steps = static_cast<std::size_t>(probs.shape(1));
    const auto classes = static_cast<std::size_t>(probs.shape(2));
    if (classes != charset.size()) {
        throw py::value_error("charset: expected one entry per class (" + std::to_string(classes) +
                              "), got " + std::to_string(charset.size()));
    }
    if (blank >= classes) throw py::value_error("blank must be a class index < " + std::to_string(classes));
    if (!all_finite(probs)) throw py::value_error("probs: contains NaN or infinity");
    std::vector<std::int64_t> ids(batch * steps);
    std::vector<std::size_t> lengths(batch);
    std::vector<double> confidence(batch);
    {
        py::gil_scoped_release release;
        const py::ssize_t f = sizeof(float);
        ocr::ctc_greedy_decode(static_cast<const float*>(probs.data()), batch, steps, classes,
                               probs.strides(0) / f, probs.strides(1) / f, probs.strides(2) / f,
                               blank, ids.data(), lengths.data(), confidence.data());
    }
    py::list out;
    for (std::size_t b = 0; b < batch; ++b) {
        std::string text;
        for (std::size_t i = 0; i < lengths[b]; ++i)
            text += charset[static_cast<std::size_t>(ids[b * steps + i])];
        out.append(py::make_tuple(py::str(text), confidence[b]));
    }
    return out;
}

py::tuple db_boxes(const py::array& prob, float thresh, float box_thresh, double unclip_ratio,
                   std::size_t max_candidates, double min_size, bool dilate,
                   std::size_t dest_width, std::size_t dest_height) {
    check_float32(prob, "prob_map", 2, "(height, width)");
    if (prob.size() > 0 && prob.shape(1) > 1 &&
        prob.strides(1) != static_cast<py::ssize_t>(sizeof(float))) {
        throw py::value_error("prob_map: rows must be contiguous (inner stride 4 bytes)");
    }
    if (!all_finite(prob)) throw py::value_error("prob_map: contains NaN or infinity");
    ocr::DbParams p;
    p.thresh = thresh, p.box_thresh = box_thresh, p.unclip_ratio = unclip_ratio;
    p.max_candidates = max_candidates, p.min_size = min_size, p.dilate = dilate;
    p.dest_width = dest_width, p.dest_height = dest_height;
    std::vector<ocr::TextBox> found;
    {
        py::gil_scoped_release release;
        found = ocr::db_boxes(static_cast<const float*>(prob.data()),
                              static_cast<std::size_t>(prob.shape(0)),
                              static_cast<std::size_t>(prob.shape(1)),
                              prob.strides(0) / static_cast<py::ssize_t>(sizeof(float)), p);
    }
    const auto n = static_cast<py::ssize_t>(found.size());
    py::array_t<std::int32_t> boxes({n, py::ssize_t{4}, py::ssize_t{2}});
    py::array_t<float> scores(n);
    auto b = boxes.mutable_unchecked<3>();
    auto s = scores.mutable_unchecked<1>();
    for (py::ssize_t i = 0; i < n; ++i) {
        const auto& box = found[static_cast<std::size_t>(i)];
        for (py::ssize_t k = 0; k < 4; ++k)
            for (py::ssize_t c = 0; c < 2; ++c)
                b(i, k, c) = box.pts[static_cast<std::size_t>(k)][static_cast<std::size_t>(c)];
        s(i) = static_cast<float>(box.score);
    }
    return py::make_tuple(boxes, scores);
}

}  // namespace

void bind_ocr(py::module_& m) {
    m.def("ctc_greedy_decode", &ctc_greedy_decode, py::arg("probs"), py::arg("charset"),
          py::arg("blank"), "Greedy CTC decoding -> [(text, mean confidence)] per batch item.");
    m.def("db_boxes", &db_boxes, py::arg("prob_map"), py::arg("thresh"), py::arg("box_thresh"),
          py::arg("unclip_ratio"), py::arg("max_candidates"), py::arg("min_size"),
          py::arg("dilate"), py::arg("dest_width"), py::arg("dest_height"),
          "DB text boxes of a (height, width) probability map -> (boxes (n, 4, 2) int32, scores).");
}

}  // namespace edgemed::bindings
