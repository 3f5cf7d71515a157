// pybind11 bindings: gear_edge._cpp. The Python facades (gear_edge.masks, gear_edge.crops)
// validate and normalise arguments; these functions still check everything they rely on, so a
// direct call with bad input raises ValueError instead of crashing.
#include <pybind11/numpy.h>
#include <array>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "common.hpp"
#include "crops.hpp"
#include "postprocess.hpp"
#include "rle.hpp"

namespace py = pybind11;
using gear::fail;
using gear::rle::Counts;

namespace {

PyObject* g_input_error = nullptr;  // gear_edge.errors.InputError
PyObject* g_key_size = nullptr;     // interned "size"
PyObject* g_key_counts = nullptr;   // interned "counts"

// Threads worth starting for `work` units when one thread should get at least `min_per_thread`.
int threads_for(size_t work, size_t min_per_thread, int threads) {
  const size_t useful = std::max<size_t>(1, work / std::max<size_t>(1, min_per_thread));
  return int(std::min<size_t>(size_t(std::max(threads, 1)), useful));
}
constexpr size_t kCharsPerThread = 1 << 16;    // compressed characters
constexpr size_t kPixelsPerThread = 1 << 18;   // mask pixels

std::string label(const char* what, size_t i, bool batch) {
  return batch ? std::string(what) + " " + std::to_string(i) : std::string(what);
}

// Runs fn() and prefixes InputError messages with the name of the item being processed.
template <typename Fn>
void with_label(const std::string& name, Fn&& fn) {
  try {
    fn();
  } catch (const gear::InputError& e) {
    throw gear::InputError(name + ": " + e.what());
  }
}

py::str ascii_str(const std::string& s) {
  PyObject* o = PyUnicode_New(Py_ssize_t(s.size()), 127);
  if (!o) throw py::error_already_set();
  std::memcpy(PyUnicode_1BYTE_DATA(o), s.data(), s.size());
  return py::reinterpret_steal<py::str>(o);
}

// One RLE as read from Python: size plus either a borrowed compressed string or parsed runs.
struct RleIn {
  uint32_t h = 0, w = 0;
  const char* str = nullptr;
  size_t len = 0;
  bool compressed = false;
  Counts counts;  // filled by parse() (or directly for uncompressed input)
  uint64_t total() const { return uint64_t(h) * w; }
};

// Python integer (or numpy integer) -> long long; InputError for other types or overflow.
bool py_integer(py::handle v, long long& out) {
  if (PyBool_Check(v.ptr()) || PyFloat_Check(v.ptr()) || !PyIndex_Check(v.ptr())) return false;
  PyObject* idx = PyNumber_Index(v.ptr());
  if (!idx) {
    PyErr_Clear();
    return false;
  }
  int overflow = 0;
  out = PyLong_AsLongLongAndOverflow(idx, &overflow);
  Py_DECREF(idx);
  if (overflow != 0 || (out == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    out = overflow < 0 ? LLONG_MIN : LLONG_MAX;
  }
  return true;
}

uint32_t size_dim(py::handle v, const std::string& name) {
  long long x = 0;
  if (!py_integer(v, x))
    fail(name, ": 'size' must hold two integers [height, width], got ", std::string(py::str(py::repr(v))));
  if (x < 0 || x > 0xFFFFFFFFll) fail(name, ": 'size' values must be in 0..2^32-1, got ", std::string(py::str(v)));
  return uint32_t(x);
}

RleIn read_rle(py::handle obj, const std::string& name, std::vector<py::object>& keep) {
  RleIn r;
  if (!PyDict_Check(obj.ptr()))
    fail(name, ": expected a dict {'size': [h, w], 'counts': ...}, got ", Py_TYPE(obj.ptr())->tp_name);
  PyObject* size = PyDict_GetItemWithError(obj.ptr(), g_key_size);
  PyObject* counts = size ? PyDict_GetItemWithError(obj.ptr(), g_key_counts) : nullptr;
  if (PyErr_Occurred()) throw py::error_already_set();
  if (!size || !counts) fail(name, ": missing key '", size ? "counts" : "size", "'");
  py::handle hs(size), hc(counts);
  if (!PySequence_Check(size) || PySequence_Size(size) != 2 || PyUnicode_Check(size) || PyBytes_Check(size))
    fail(name, ": 'size' must be [height, width], got ", std::string(py::str(py::repr(hs))));
  {
    py::object h0 = py::reinterpret_steal<py::object>(PySequence_GetItem(size, 0));
    py::object w0 = py::reinterpret_steal<py::object>(PySequence_GetItem(size, 1));
    if (!h0 || !w0) throw py::error_already_set();
    r.h = size_dim(h0, name);
    r.w = size_dim(w0, name);
  }
  if (r.total() > gear::rle::kMaxPixels)
    fail(name, ": a ", r.h, "x", r.w, " mask has more pixels than a COCO RLE can hold");
  if (PyUnicode_Check(counts)) {
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(counts, &n);
    if (!s) {
      PyErr_Clear();
      fail(name, ": 'counts' is not a valid string (compressed COCO RLE uses '0'..'o')");
    }
    r.str = s;
    r.len = size_t(n);
    r.compressed = true;
    keep.push_back(py::reinterpret_borrow<py::object>(counts));
  } else if (PyBytes_Check(counts)) {
    r.str = PyBytes_AS_STRING(counts);
    r.len = size_t(PyBytes_GET_SIZE(counts));
    r.compressed = true;
    keep.push_back(py::reinterpret_borrow<py::object>(counts));
  } else if (PyList_Check(counts) || PyTuple_Check(counts) ||
             (py::isinstance<py::array>(hc) && py::reinterpret_borrow<py::array>(hc).ndim() == 1)) {
    py::sequence seq = py::reinterpret_borrow<py::sequence>(counts);
    r.counts.reserve(seq.size());
    for (size_t i = 0; i < seq.size(); ++i) {
      py::object item = seq[i];
      long long v = 0;
      if (!py_integer(item, v))
        fail(name, ": uncompressed 'counts' must hold integers, item ", i, " is ", Py_TYPE(item.ptr())->tp_name);
      if (v < 0) fail(name, ": run ", i, " is negative (", std::string(py::str(item)), ")");
      if (uint64_t(v) > r.total())
        fail(name, ": run ", i, " has length ", std::string(py::str(item)), " but the mask has only ", r.total(), " pixels");
      r.counts.push_back(uint32_t(v));
    }
    with_label(name, [&] { gear::rle::check_counts(r.counts, r.total()); });
  } else {
    fail(name, ": 'counts' must be a str or bytes (compressed RLE) or a list of ints (uncompressed), got ",
         Py_TYPE(counts)->tp_name);
  }
  return r;
}

std::vector<RleIn> read_rles(py::handle seq_obj, const char* what, bool batch, std::vector<py::object>& keep) {
  if (!PyList_Check(seq_obj.ptr()) && !PyTuple_Check(seq_obj.ptr()))
    fail("expected a list of RLE dicts, got ", Py_TYPE(seq_obj.ptr())->tp_name);
  py::sequence seq = py::reinterpret_borrow<py::sequence>(seq_obj);
  std::vector<RleIn> out;
  out.reserve(seq.size());
  for (size_t i = 0; i < seq.size(); ++i) out.push_back(read_rle(seq[i], label(what, i, batch), keep));
  return out;
}

// Parses the compressed strings of `rles` (in parallel, GIL released by the caller).
size_t total_chars(const std::vector<RleIn>& rles) {
  size_t n = 0;
  for (const auto& r : rles) n += r.compressed ? r.len : r.counts.size();
  return n;
}

void parse_all(std::vector<RleIn>& rles, const char* what, bool batch, int threads) {
  threads = threads_for(total_chars(rles), kCharsPerThread, threads);
  gear::parallel_for(rles.size(), threads, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      RleIn& r = rles[i];
      if (!r.compressed) continue;
      with_label(label(what, i, batch), [&] { gear::rle::counts_from_string(r.str, r.len, r.total(), r.counts); });
    }
  });
}

py::dict make_rle(uint32_t h, uint32_t w, const std::string& counts) {
  py::dict d;
  py::list size(2);
  size[0] = py::int_(h);
  size[1] = py::int_(w);
  d["size"] = size;
  d["counts"] = ascii_str(counts);
  return d;
}

py::list make_rles(uint32_t h, uint32_t w, const std::vector<std::string>& strings) {
  py::list out(strings.size());
  for (size_t i = 0; i < strings.size(); ++i) out[i] = make_rle(h, w, strings[i]);
  return out;
}

void to_strings(const std::vector<Counts>& counts, std::vector<std::string>& strings, int threads) {
  strings.resize(counts.size());
  size_t runs = 0;
  for (const auto& c : counts) runs += c.size();
  threads = threads_for(runs, kCharsPerThread, threads);
  gear::parallel_for(counts.size(), threads, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) gear::rle::counts_to_string(counts[i], strings[i]);
  });
}

// ---- RLE ops --------------------------------------------------------------------------------

py::list rle_encode(const py::array& masks, bool batch, int threads) {
  const auto dt = masks.dtype();
  if (!(dt.kind() == 'b' || (dt.kind() == 'u' && dt.itemsize() == 1)))
    fail("masks must be bool or uint8, got ", std::string(py::str(dt)));
  if (masks.ndim() != 3) fail("masks must be a [N, H, W] array, got ", masks.ndim(), " dimensions");
  const size_t n = size_t(masks.shape(0));
  const uint64_t h64 = uint64_t(masks.shape(1)), w64 = uint64_t(masks.shape(2));
  if (h64 * w64 > gear::rle::kMaxPixels) fail("a ", h64, "x", w64, " mask has more pixels than a COCO RLE can hold");
  const uint32_t h = uint32_t(h64), w = uint32_t(w64);
  const ptrdiff_t s0 = masks.strides(0), s1 = masks.strides(1), s2 = masks.strides(2);
  const uint64_t total = h64 * w64;
  bool row_major = true;
  if (total > 1 && n > 0) {
    const bool rm = (h == 1 || s1 == ptrdiff_t(w)) && (w == 1 || s2 == 1);
    const bool cm = (h == 1 || s1 == 1) && (w == 1 || s2 == ptrdiff_t(h));
    if (!rm && !cm)
      fail("each mask must be contiguous (row- or column-major); got strides (", s0, ", ", s1, ", ", s2,
           "): pass np.ascontiguousarray(masks)");
    if (n > 1 && s0 != ptrdiff_t(total))
      fail("masks must be stacked contiguously (stride of axis 0 = H*W = ", total, ", got ", s0,
           "): pass np.ascontiguousarray(masks)");
    row_major = rm;
  }
  const uint8_t* data = static_cast<const uint8_t*>(masks.data());
  std::vector<Counts> counts(n);
  std::vector<std::string> strings;
  {
    py::gil_scoped_release release;
    threads = threads_for(n * size_t(total), kPixelsPerThread, threads);
    gear::parallel_for(n, threads, [&](size_t b, size_t e) {
      gear::rle::Scratch scratch;
      for (size_t i = b; i < e; ++i) {
        with_label(label("mask", i, batch), [&] {
          const uint8_t* m = data + i * total;
          if (row_major)
            gear::rle::encode_row_major(m, h, w, counts[i], scratch);
          else
            gear::rle::encode_col_major(m, h, w, counts[i]);
        });
      }
    });
    to_strings(counts, strings, threads);
  }
  return make_rles(h, w, strings);
}

py::array rle_decode(const py::object& rles_obj, bool batch, int threads) {
  std::vector<py::object> keep;
  std::vector<RleIn> rles = read_rles(rles_obj, "RLE", batch, keep);
  const size_t n = rles.size();
  const uint32_t h = n ? rles[0].h : 0, w = n ? rles[0].w : 0;
  for (size_t i = 1; i < n; ++i)
    if (rles[i].h != h || rles[i].w != w)
      fail("RLE ", i, " has size ", rles[i].h, "x", rles[i].w, " but RLE 0 has ", h, "x", w,
           "; decode masks of different sizes separately");
  py::array_t<bool> out({py::ssize_t(n), py::ssize_t(h), py::ssize_t(w)});
  uint8_t* dst = reinterpret_cast<uint8_t*>(out.mutable_data());
  const size_t total = size_t(h) * w;
  {
    py::gil_scoped_release release;
    parse_all(rles, "RLE", batch, threads);
    threads = threads_for(n * total, kPixelsPerThread, threads);
    gear::parallel_for(n, threads, [&](size_t b, size_t e) {
      gear::rle::Scratch scratch;
      for (size_t i = b; i < e; ++i) gear::rle::decode_row_major(rles[i].counts, h, w, dst + i * total, scratch);
    });
  }
  return out;
}

// Samples each mask on a strided grid: out[i][r][c] = mask_i(y0 + off + r*step, x0 + off + c*step)
// for the window [x0, x1) x [y0, y1) given per mask (boxes int64 [N, 4] as x0, y0, x1, y1; steps
// int64 [N]). Cost O(runs + samples): full-resolution masks are never materialised.
py::list rle_sample(const py::object& rles_obj, const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& boxes,
                    const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& steps, int64_t offset, int threads) {
  std::vector<py::object> keep;
  std::vector<RleIn> rles = read_rles(rles_obj, "RLE", true, keep);
  const size_t n = rles.size();
  if (boxes.ndim() != 2 || size_t(boxes.shape(0)) != n || boxes.shape(1) != 4)
    fail("boxes must be an int [N, 4] array (x0, y0, x1, y1) with N = ", n, " (one per RLE), got shape ",
         boxes.ndim() == 2 ? std::to_string(boxes.shape(0)) + "x" + std::to_string(boxes.shape(1)) : std::to_string(boxes.ndim()) + "-d");
  if (steps.ndim() != 1 || size_t(steps.shape(0)) != n) fail("steps must be an int [N] array with N = ", n);
  if (offset < 0) fail("offset must be >= 0, got ", offset);
  const int64_t* b = boxes.data();
  const int64_t* st = steps.data();
  std::vector<std::array<size_t, 2>> dims(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t x0 = b[4 * i], y0 = b[4 * i + 1], x1 = b[4 * i + 2], y1 = b[4 * i + 3];
    if (st[i] < 1) fail("steps[", i, "] must be >= 1, got ", st[i]);
    if (x0 < 0 || y0 < 0 || x1 < x0 || y1 < y0 || x1 > int64_t(rles[i].w) || y1 > int64_t(rles[i].h))
      fail("box ", i, " (", x0, ", ", y0, ", ", x1, ", ", y1, ") is not a window inside the ", rles[i].h, "x", rles[i].w, " mask");
    auto count = [&](int64_t lo, int64_t hi) { return hi - lo > offset ? size_t((hi - lo - offset + st[i] - 1) / st[i]) : size_t(0); };
    dims[i] = {count(y0, y1), count(x0, x1)};
  }
  std::vector<py::array_t<bool>> outs;
  std::vector<uint8_t*> ptrs(n);
  outs.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    outs.emplace_back(std::vector<py::ssize_t>{py::ssize_t(dims[i][0]), py::ssize_t(dims[i][1])});
    ptrs[i] = reinterpret_cast<uint8_t*>(outs.back().mutable_data());
  }
  {
    py::gil_scoped_release release;
    parse_all(rles, "RLE", true, threads);
    threads = threads_for(total_chars(rles), kCharsPerThread, threads);
    gear::parallel_for(n, threads, [&](size_t lo, size_t hi) {
      for (size_t i = lo; i < hi; ++i) {
        const auto& counts = rles[i].counts;
        const uint64_t h = rles[i].h;
        const size_t rows = dims[i][0], cols = dims[i][1];
        const uint64_t step = uint64_t(st[i]), ys = uint64_t(b[4 * i + 1] + offset), xs = uint64_t(b[4 * i] + offset);
        uint8_t* out = ptrs[i];
        size_t k = 0;              // current run
        uint64_t run_end = counts.empty() ? 0 : counts[0];  // exclusive end position of run k
        for (size_t c = 0; c < cols; ++c) {
          const uint64_t col_base = (xs + c * step) * h;
          for (size_t r = 0; r < rows; ++r) {
            const uint64_t pos = col_base + ys + r * step;
            while (run_end <= pos && k + 1 < counts.size()) run_end += counts[++k];
            out[r * cols + c] = uint8_t(k & 1);
          }
        }
      }
    });
  }
  py::list result(n);
  for (size_t i = 0; i < n; ++i) result[i] = outs[i];
  return result;
}

py::array_t<int64_t> rle_area(const py::object& rles_obj, bool batch, int threads) {
  std::vector<py::object> keep;
  std::vector<RleIn> rles = read_rles(rles_obj, "RLE", batch, keep);
  py::array_t<int64_t> out(py::ssize_t(rles.size()));
  int64_t* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    threads = threads_for(total_chars(rles), kCharsPerThread, threads);
    gear::parallel_for(rles.size(), threads, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) {
        RleIn& r = rles[i];
        if (r.compressed) {
          with_label(label("RLE", i, batch), [&] { dst[i] = int64_t(gear::rle::area_from_string(r.str, r.len, r.total())); });
        } else {
          gear::rle::AreaSink sink;
          for (uint32_t c : r.counts) sink(c);
          dst[i] = int64_t(sink.area);
        }
      }
    });
  }
  return out;
}

py::array_t<double> rle_bbox(const py::object& rles_obj, bool batch, int threads) {
  std::vector<py::object> keep;
  std::vector<RleIn> rles = read_rles(rles_obj, "RLE", batch, keep);
  py::array_t<double> out({py::ssize_t(rles.size()), py::ssize_t(4)});
  double* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    threads = threads_for(total_chars(rles), kCharsPerThread, threads);
    gear::parallel_for(rles.size(), threads, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) {
        RleIn& r = rles[i];
        if (r.compressed) {
          with_label(label("RLE", i, batch), [&] { gear::rle::bbox_from_string(r.str, r.len, r.total(), r.h, dst + 4 * i); });
        } else {
          gear::rle::bbox(r.counts, r.h, r.w, dst + 4 * i);
        }
      }
    });
  }
  return out;
}

py::dict rle_merge(const py::object& rles_obj, bool intersect) {
  std::vector<py::object> keep;
  std::vector<RleIn> rles = read_rles(rles_obj, "RLE", true, keep);
  if (rles.empty()) fail("merge needs at least one RLE (the mask size is unknown for an empty list)");
  for (size_t i = 1; i < rles.size(); ++i)
    if (rles[i].h != rles[0].h || rles[i].w != rles[0].w)
      fail("RLE ", i, " has size ", rles[i].h, "x", rles[i].w, " but RLE 0 has ", rles[0].h, "x", rles[0].w,
           "; only masks of one size can be merged");
  Counts merged;
  std::string s;
  {
    py::gil_scoped_release release;
    parse_all(rles, "RLE", true, 1);
    std::vector<const Counts*> ptrs;
    for (auto& r : rles) ptrs.push_back(&r.counts);
    gear::rle::merge(ptrs, intersect, rles[0].total(), merged);
    gear::rle::counts_to_string(merged, s);
  }
  return make_rle(rles[0].h, rles[0].w, s);
}

py::array_t<double> rle_iou(const py::object& a_obj, const py::object& b_obj, const py::object& iscrowd_obj, int threads) {
  std::vector<py::object> keep;
  std::vector<RleIn> a = read_rles(a_obj, "RLE a", true, keep);
  std::vector<RleIn> b = read_rles(b_obj, "RLE b", true, keep);
  std::vector<uint8_t> crowd(b.size(), 0);
  if (!iscrowd_obj.is_none()) {
    py::sequence seq = py::reinterpret_borrow<py::sequence>(iscrowd_obj);
    if (seq.size() != b.size()) fail("iscrowd has ", seq.size(), " entries but there are ", b.size(), " masks in b");
    for (size_t j = 0; j < b.size(); ++j) crowd[j] = py::bool_(seq[j]) ? 1 : 0;
  }
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < b.size(); ++j)
      if (a[i].h != b[j].h || a[i].w != b[j].w)
        fail("RLE a ", i, " is ", a[i].h, "x", a[i].w, " but RLE b ", j, " is ", b[j].h, "x", b[j].w,
             "; IoU needs masks of one size");
  py::array_t<double> out({py::ssize_t(a.size()), py::ssize_t(b.size())});
  double* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    parse_all(a, "RLE a", true, threads);
    parse_all(b, "RLE b", true, threads);
    auto boxes_and_areas = [&](std::vector<RleIn>& v, std::vector<double>& boxes, std::vector<uint64_t>& areas) {
      boxes.resize(v.size() * 4);
      areas.resize(v.size());
      for (size_t i = 0; i < v.size(); ++i) {
        gear::rle::bbox(v[i].counts, v[i].h, v[i].w, &boxes[4 * i]);
        areas[i] = gear::rle::area(v[i].counts);
      }
    };
    std::vector<double> ba, bb;
    std::vector<uint64_t> aa, ab;
    boxes_and_areas(a, ba, aa);
    boxes_and_areas(b, bb, ab);
    const size_t nb = b.size();
    gear::parallel_for_each(a.size(), threads, [&](size_t i) {
      const double* p = &ba[4 * i];
      for (size_t j = 0; j < nb; ++j) {
        const double* q = &bb[4 * j];
        double& o = dst[i * nb + j];
        o = 0.0;
        // Masks can only overlap where their boxes do.
        if (std::min(p[0] + p[2], q[0] + q[2]) <= std::max(p[0], q[0]) ||
            std::min(p[1] + p[3], q[1] + q[3]) <= std::max(p[1], q[1]))
          continue;
        const uint64_t inter = gear::rle::intersection(a[i].counts, b[j].counts);
        if (inter == 0) continue;
        const uint64_t uni = crowd[j] ? aa[i] : aa[i] + ab[j] - inter;
        o = double(inter) / double(uni);
      }
    });
  }
  return out;
}

py::list rle_from_polygons(const py::list& objects, uint32_t h, uint32_t w, int threads) {
  if (h == 0 || w == 0) fail("polygons need a non-empty canvas, got ", h, "x", w);
  if (uint64_t(h) * w > gear::rle::kMaxPixels) fail("a ", h, "x", w, " canvas has more pixels than a COCO RLE can hold");
  // Coordinates far outside the canvas only cost memory in the boundary trace; bound them.
  const double limit = 16.0 * (double(h) + double(w)) + 1024.0;
  std::vector<std::vector<std::vector<double>>> polys(objects.size());
  for (size_t o = 0; o < objects.size(); ++o) {
    py::sequence obj = objects[o].cast<py::sequence>();
    if (obj.size() == 0) fail("object ", o, " has no polygons");
    for (size_t k = 0; k < obj.size(); ++k) {
      auto arr = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(obj[k]);
      if (!arr || arr.ndim() != 1) fail("object ", o, ", polygon ", k, ": expected a flat list [x0, y0, x1, y1, ...]");
      const size_t len = size_t(arr.shape(0));
      if (len < 6 || len % 2) fail("object ", o, ", polygon ", k, ": needs an even number (>= 6) of coordinates, got ", len);
      const double* d = arr.data();
      for (size_t i = 0; i < len; ++i)
        if (!std::isfinite(d[i]) || std::fabs(d[i]) > limit)
          fail("object ", o, ", polygon ", k, ": coordinate ", i, " = ", d[i], " is not finite or lies far outside the ",
               h, "x", w, " canvas");
      polys[o].emplace_back(d, d + len);
    }
  }
  std::vector<Counts> merged(objects.size());
  std::vector<std::string> strings;
  {
    py::gil_scoped_release release;
    const uint64_t total = uint64_t(h) * w;
    gear::parallel_for(objects.size(), threads, [&](size_t b, size_t e) {
      for (size_t o = b; o < e; ++o) {
        std::vector<Counts> parts(polys[o].size());
        std::vector<const Counts*> ptrs;
        for (size_t k = 0; k < polys[o].size(); ++k) {
          gear::rle::from_polygon(polys[o][k].data(), polys[o][k].size() / 2, h, w, parts[k]);
          ptrs.push_back(&parts[k]);
        }
        gear::rle::merge(ptrs, false, total, merged[o]);
      }
    });
    to_strings(merged, strings, threads);
  }
  return make_rles(h, w, strings);
}

// ---- fused post-processing ------------------------------------------------------------------

py::tuple postprocess_logits(const py::array& logits, uint32_t out_h, uint32_t out_w, uint32_t input_size,
                             const std::string& convention, double mask_threshold, double stability_offset,
                             uint32_t canvas_h, uint32_t canvas_w, uint32_t off_x, uint32_t off_y, int threads) {
  if (!logits.dtype().is(py::dtype::of<float>())) fail("logits must be float32, got ", std::string(py::str(logits.dtype())));
  if (logits.ndim() != 3) fail("logits must be [K, h, w], got ", logits.ndim(), " dimensions");
  if (!(logits.flags() & py::array::c_style)) fail("logits must be C-contiguous: pass np.ascontiguousarray(logits)");
  gear::post::Params p;
  p.lr_h = uint32_t(logits.shape(1));
  p.lr_w = uint32_t(logits.shape(2));
  p.out_h = out_h;
  p.out_w = out_w;
  p.input_size = input_size;
  if (convention == "sam2")
    p.convention = gear::post::Convention::kSam2;
  else if (convention == "sam1")
    p.convention = gear::post::Convention::kSam1;
  else
    fail("convention must be 'sam2' or 'sam1', got '", convention, "'");
  p.mask_threshold = mask_threshold;
  p.stability_offset = stability_offset;
  p.canvas_h = canvas_h;
  p.canvas_w = canvas_w;
  p.off_x = off_x;
  p.off_y = off_y;
  if (logits.shape(1) == 0 || logits.shape(2) == 0) fail("logits have an empty spatial size");
  const gear::post::Plan plan(p);
  const size_t k = size_t(logits.shape(0));
  const float* data = static_cast<const float*>(logits.data());
  const size_t plane = size_t(p.lr_h) * p.lr_w;
  std::vector<gear::post::MaskStats> stats(k);
  std::vector<Counts> counts(k);
  std::vector<std::string> strings;
  {
    py::gil_scoped_release release;
    gear::parallel_for(k, threads, [&](size_t b, size_t e) {
      gear::post::Workspace ws;
      for (size_t i = b; i < e; ++i) gear::post::process(data + i * plane, plan, stats[i], ws);
    });
    for (size_t i = 0; i < k; ++i) counts[i].swap(stats[i].counts);
    to_strings(counts, strings, threads);
  }
  const auto& pp = plan.params();
  py::array_t<float> stability{py::ssize_t(k)};
  py::array_t<double> boxes({py::ssize_t(k), py::ssize_t(4)});
  py::array_t<int64_t> areas{py::ssize_t(k)};
  for (size_t i = 0; i < k; ++i) {
    stability.mutable_data()[i] = stats[i].stability;
    for (int c = 0; c < 4; ++c) boxes.mutable_data()[4 * i + c] = stats[i].box[c];
    areas.mutable_data()[i] = int64_t(stats[i].area);
  }
  return py::make_tuple(make_rles(pp.canvas_h, pp.canvas_w, strings), stability, boxes, areas);
}

// ---- batch crops ----------------------------------------------------------------------------

py::array_t<float> crop_regions(const py::array& image, const py::array& boxes, const py::object& masks_obj,
                                uint32_t size, double context, bool letterbox, const std::string& background,
                                std::vector<int> fill, double blur_sigma, std::vector<float> mean,
                                std::vector<float> std_, int threads) {
  if (!(image.dtype().kind() == 'u' && image.dtype().itemsize() == 1)) fail("image must be uint8, got ", std::string(py::str(image.dtype())));
  if (image.ndim() != 3 || image.shape(2) != 3) fail("image must be H x W x 3 (RGB)");
  if (!(image.flags() & py::array::c_style)) fail("image must be C-contiguous: pass np.ascontiguousarray(image)");
  if (!boxes.dtype().is(py::dtype::of<double>()) || boxes.ndim() != 2 || boxes.shape(1) != 4 ||
      !(boxes.flags() & py::array::c_style))
    fail("boxes must be a C-contiguous float64 [N, 4] array (x, y, w, h)");
  const uint64_t h64 = uint64_t(image.shape(0)), w64 = uint64_t(image.shape(1));
  if (h64 == 0 || w64 == 0) fail("image is empty (", h64, "x", w64, ")");
  if (h64 * w64 > gear::rle::kMaxPixels) fail("image is too large");
  const uint32_t h = uint32_t(h64), w = uint32_t(w64);
  gear::crops::Params p;
  p.size = size;
  p.context = context;
  p.letterbox = letterbox;
  if (background == "keep")
    p.background = gear::crops::Background::kKeep;
  else if (background == "constant")
    p.background = gear::crops::Background::kConstant;
  else if (background == "blur")
    p.background = gear::crops::Background::kBlur;
  else
    fail("background must be 'keep', 'constant' or 'blur', got '", background, "'");
  if (fill.size() != 3 || mean.size() != 3 || std_.size() != 3) fail("fill, mean and std need 3 values (R, G, B)");
  for (int c = 0; c < 3; ++c) {
    if (fill[c] < 0 || fill[c] > 255) fail("fill values must be in 0..255, got ", fill[c]);
    p.fill[c] = uint8_t(fill[c]);
    p.mean[c] = mean[c];
    p.std[c] = std_[c];
  }
  p.blur_sigma = blur_sigma;
  gear::crops::validate(p);
  const size_t n = size_t(boxes.shape(0));
  const double* bx = static_cast<const double*>(boxes.data());
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < 4; ++c)
      if (!std::isfinite(bx[4 * i + c]) || std::fabs(bx[4 * i + c]) > 1e7 || (c >= 2 && bx[4 * i + c] < 0))
        fail("box ", i, " = [", bx[4 * i], ", ", bx[4 * i + 1], ", ", bx[4 * i + 2], ", ", bx[4 * i + 3],
             "] is not a finite XYWH box with w, h >= 0");
  std::vector<py::object> keep;
  std::vector<RleIn> masks;
  if (!masks_obj.is_none()) {
    masks = read_rles(masks_obj, "mask", true, keep);
    if (masks.size() != n) fail("got ", masks.size(), " masks for ", n, " boxes");
    for (size_t i = 0; i < n; ++i)
      if (masks[i].h != h || masks[i].w != w)
        fail("mask ", i, " is ", masks[i].h, "x", masks[i].w, " but the image is ", h, "x", w);
  }
  py::array_t<float> out({py::ssize_t(n), py::ssize_t(3), py::ssize_t(size), py::ssize_t(size)});
  float* dst = out.mutable_data();
  const uint8_t* img = static_cast<const uint8_t*>(image.data());
  {
    py::gil_scoped_release release;
    parse_all(masks, "mask", true, threads);
    const size_t per = size_t(3) * size * size;
    gear::parallel_for_each(n, threads, [&](size_t i) {
      thread_local gear::crops::Workspace ws;
      gear::crops::crop(img, h, w, bx + 4 * i, masks.empty() ? nullptr : &masks[i].counts, p, dst + i * per, ws);
    });
  }
  return out;
}

py::dict build_info() {
  py::dict d;
#if defined(__clang__)
  d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  d["compiler"] = std::string("gcc ") + __VERSION__;
#else
  d["compiler"] = "unknown";
#endif
#ifdef GEAR_EDGE_SANITIZE
  d["sanitize"] = true;
#else
  d["sanitize"] = false;
#endif
#ifdef GEAR_EDGE_NATIVE_ARCH
  d["native_arch"] = true;
#else
  d["native_arch"] = false;
#endif
#ifdef NDEBUG
  d["optimized"] = true;
#else
  d["optimized"] = false;
#endif
  d["hardware_threads"] = std::thread::hardware_concurrency();
  return d;
}

}  // namespace

PYBIND11_MODULE(_cpp, m) {
  m.doc() = "gear_edge native core: COCO RLE ops, fused SAM mask post-processing, batch region crops";
  g_key_size = PyUnicode_InternFromString("size");
  g_key_counts = PyUnicode_InternFromString("counts");
  py::object errors = py::module_::import("gear_edge.errors");
  g_input_error = py::object(errors.attr("InputError")).release().ptr();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const gear::InputError& e) {
      PyErr_SetString(g_input_error, e.what());
    }
  });

  m.def("build_info", &build_info);
  m.def("rle_encode", &rle_encode, py::arg("masks"), py::arg("batch"), py::arg("threads"));
  m.def("rle_decode", &rle_decode, py::arg("rles"), py::arg("batch"), py::arg("threads"));
  m.def("rle_sample", &rle_sample, py::arg("rles"), py::arg("boxes"), py::arg("steps"), py::arg("offset"), py::arg("threads"));
  m.def("rle_area", &rle_area, py::arg("rles"), py::arg("batch"), py::arg("threads"));
  m.def("rle_bbox", &rle_bbox, py::arg("rles"), py::arg("batch"), py::arg("threads"));
  m.def("rle_merge", &rle_merge, py::arg("rles"), py::arg("intersect"));
  m.def("rle_iou", &rle_iou, py::arg("a"), py::arg("b"), py::arg("iscrowd"), py::arg("threads"));
  m.def("rle_from_polygons", &rle_from_polygons, py::arg("objects"), py::arg("height"), py::arg("width"),
        py::arg("threads"));
  m.def("postprocess_logits", &postprocess_logits, py::arg("logits"), py::arg("out_h"), py::arg("out_w"),
        py::arg("input_size"), py::arg("convention"), py::arg("mask_threshold"), py::arg("stability_offset"),
        py::arg("canvas_h"), py::arg("canvas_w"), py::arg("off_x"), py::arg("off_y"), py::arg("threads"));
  m.def("crop_regions", &crop_regions, py::arg("image"), py::arg("boxes"), py::arg("masks"), py::arg("size"),
        py::arg("context"), py::arg("letterbox"), py::arg("background"), py::arg("fill"), py::arg("blur_sigma"),
        py::arg("mean"), py::arg("std"), py::arg("threads"));
}
