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

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EDGEMED_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EDGEMED_CLONES
#endif

// Whether n contiguous floats are all finite (x * 0 is NaN exactly when x is NaN or infinite:
// no branches, and eight lanes let the compiler vectorise).
EDGEMED_CLONES bool finite_run(const float* row, py::ssize_t n) noexcept {
    float acc[8] = {};
    py::ssize_t c = 0;
    for (; c + 8 <= n; c += 8)
        for (py::ssize_t j = 0; j < 8; ++j) acc[j] += row[c + j] * 0.f;
    for (; c < n; ++c) acc[0] += row[c] * 0.f;
    for (const float a : acc)
        if (a != 0.f) return false;
    return true;
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
            if (sc == 1) {
                if (!finite_run(row, cols)) return false;
                continue;
            }
            float acc = 0.f;
            for (py::ssize_t c = 0; c < cols; ++c) acc += row[c * sc] * 0.f;
            if (acc != 0.f) return false;
        }
    }
    return true;
}

// Class ids only: the caller maps them to text. Converting a 6,625-entry charset to C++
// strings on every call cost 5x the decoding itself (measured in benchmarks/bench_kernels.py).
py::tuple ctc_greedy_ids(const py::array& probs, std::size_t blank) {
    check_float32(probs, "probs", 3, "(batch, steps, classes)");
    const auto batch = static_cast<std::size_t>(probs.shape(0));
    const auto steps = static_cast<std::size_t>(probs.shape(1));
    const auto classes = static_cast<std::size_t>(probs.shape(2));
    if (blank >= classes) throw py::value_error("blank must be a class index < " + std::to_string(classes));
    if (!all_finite(probs)) throw py::value_error("probs: contains NaN or infinity");
    py::array_t<std::int64_t> ids({static_cast<py::ssize_t>(batch), static_cast<py::ssize_t>(steps)});
    py::array_t<std::int64_t> lengths(static_cast<py::ssize_t>(batch));
    py::array_t<double> confidence(static_cast<py::ssize_t>(batch));
    std::int64_t* id_data = ids.mutable_data();
    std::int64_t* len_data = lengths.mutable_data();
    double* conf_data = confidence.mutable_data();
    std::vector<std::size_t> kept(batch);
    {
        py::gil_scoped_release release;
        const py::ssize_t f = sizeof(float);
        ocr::ctc_greedy_decode(static_cast<const float*>(probs.data()), batch, steps, classes,
                               probs.strides(0) / f, probs.strides(1) / f, probs.strides(2) / f,
                               blank, id_data, kept.data(), conf_data);
        for (std::size_t b = 0; b < batch; ++b) len_data[b] = static_cast<std::int64_t>(kept[b]);
    }
    return py::make_tuple(ids, lengths, confidence);
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
    m.def("ctc_greedy_ids", &ctc_greedy_ids, py::arg("probs"), py::arg("blank"),
          "Greedy CTC decoding -> (ids (batch, steps) int64, lengths, mean confidence).");
    m.def("db_boxes", &db_boxes, py::arg("prob_map"), py::arg("thresh"), py::arg("box_thresh"),
          py::arg("unclip_ratio"), py::arg("max_candidates"), py::arg("min_size"),
          py::arg("dilate"), py::arg("dest_width"), py::arg("dest_height"),
          "DB text boxes of a (height, width) probability map -> (boxes (n, 4, 2) int32, scores).");
}

}  // namespace edgemed::bindings
