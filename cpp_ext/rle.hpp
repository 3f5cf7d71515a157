// COCO run-length encoding, byte-identical to pycocotools' maskApi for canonical input.
//
// A mask of h x w pixels is read in column-major order (x outer, y inner) as alternating runs of
// 0s and 1s, starting with a (possibly empty) run of 0s. "Compressed" counts are the COCO string
// form: each run (delta-coded against the run two places back for index > 2) written as 5-bit
// groups, low group first, 0x20 = "more groups follow", 0x10 in the last group = negative,
// each group + 48 as one ASCII character.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"

namespace gear::rle {

using Counts = std::vector<uint32_t>;

// Largest pixel count a COCO RLE can describe (runs are uint32 in pycocotools).
constexpr uint64_t kMaxPixels = 0xFFFFFFFFull;

// ---- string codec ------------------------------------------------------------------------
void counts_to_string(const Counts& counts, std::string& out);

// Parses compressed counts and validates them: alphabet '0'..'o', no truncated number, no
// negative run, runs summing to exactly `total` pixels. Throws InputError naming the problem.
void counts_from_string(const char* s, size_t len, uint64_t total, Counts& out);

// Streaming form: calls sink(run_length) for every run, with the same validation.
template <typename Sink>
void parse_counts(const char* s, size_t len, uint64_t total, Sink&& sink);

// Fast form: branch-free parse into out[0 .. len] (out must hold len + 1 values); returns the
// number of runs. Invalid input is re-parsed by the validating parser for the error message.
size_t parse_counts_fast(const char* s, size_t len, uint64_t total, uint32_t* out);

// Area (number of 1-pixels) straight from a compressed string, validated like parse_counts_fast.
uint64_t area_from_string(const char* s, size_t len, uint64_t total);

// Bounding box (as bbox()) straight from a compressed string of an h-row mask, validated.
void bbox_from_string(const char* s, size_t len, uint64_t total, uint32_t h, double out[4]);

// Validates uncompressed counts (non-negative, summing to `total`).
void check_counts(const Counts& counts, uint64_t total);

// ---- masks <-> runs ----------------------------------------------------------------------
struct Scratch {
  std::vector<uint32_t> a, b, c, d;  // reused buffers (transition lists, buckets)
};

// Encodes a row-major (C order) h x w mask of 0/1 bytes.
// Throws InputError if a byte other than 0/1 is present.
void encode_row_major(const uint8_t* m, uint32_t h, uint32_t w, Counts& out, Scratch& s);

// Encodes a column-major (Fortran order) h x w mask of 0/1 bytes.
void encode_col_major(const uint8_t* m, uint32_t h, uint32_t w, Counts& out);

// Decodes runs into a row-major h x w buffer of 0/1 bytes (every byte written).
void decode_row_major(const Counts& counts, uint32_t h, uint32_t w, uint8_t* out, Scratch& s);

// ---- measurements ------------------------------------------------------------------------
uint64_t area(const Counts& counts);

// Exact bounding box of the 1-pixels as x, y, width, height; all zero for an empty mask.
void bbox(const Counts& counts, uint32_t h, uint32_t w, double out[4]);

// Run sinks for parse_counts (also usable on parsed Counts).
struct AreaSink {
  uint64_t area = 0;
  bool one = false;
  void operator()(uint32_t n) {
    if (one) area += n;
    one = !one;
  }
};

struct BboxSink {
  explicit BboxSink(uint32_t h) : h(h) {}
  void operator()(uint32_t n);
  void result(double out[4]) const;
  uint64_t h, pos = 0, col = 0, col_start = 0;
  uint64_t xs = UINT64_MAX, xe = 0, ys = UINT64_MAX, ye = 0;
  bool one = false, any = false;

 private:
  uint64_t row_of(uint64_t p) {  // advances the column cursor (positions only increase)
    if (p - col_start >= 8 * h) {
      col = p / h;
      col_start = col * h;
    }
    while (p >= col_start + h) {
      ++col;
      col_start += h;
    }
    return p - col_start;
  }
};

// Number of pixels that are 1 in both masks (same size required; not checked here).
uint64_t intersection(const Counts& a, const Counts& b);

// Union (intersect=false) or intersection of n >= 1 same-size masks, with pycocotools' exact
// run layout (it is canonical for canonical input).
void merge(const std::vector<const Counts*>& masks, bool intersect, uint64_t total, Counts& out);

// Rasterises one closed polygon (k vertices, xy interleaved, pixel-corner coordinates) exactly as
// pycocotools' rleFrPoly does.
void from_polygon(const double* xy, size_t k, uint32_t h, uint32_t w, Counts& out);

// ---- implementation of the templates ------------------------------------------------------
namespace detail {
[[noreturn]] void fail_run(size_t index, int64_t value, uint64_t total);
[[noreturn]] void fail_sum(uint64_t sum, uint64_t total);
// Parses a number of more than one character (or reports why it cannot); advances p.
int64_t parse_long_number(const unsigned char* s, const unsigned char*& p, const unsigned char* end, size_t index);
}  // namespace detail

template <typename Sink>
void parse_counts(const char* str, size_t len, uint64_t total, Sink&& sink) {
  const unsigned char* s = reinterpret_cast<const unsigned char*>(str);
  const unsigned char* p = s;
  const unsigned char* end = s + len;
  uint64_t sum = 0;
  int64_t prev1 = 0, prev2 = 0;  // runs m-1 and m-2 (delta coding for m > 2)
  size_t m = 0;
  while (p < end) {
    int64_t x;
    const unsigned c = unsigned(*p) - 48u;
    if (c < 32u) {  // one character: 5-bit two's complement value
      x = int64_t(c ^ 16u) - 16;
      ++p;
    } else {
      x = detail::parse_long_number(s, p, end, m);
    }
    if (m > 2) x += prev2;
    if (x < 0 || uint64_t(x) > total) detail::fail_run(m, x, total);
    sum += uint64_t(x);
    sink(uint32_t(x));
    prev2 = prev1;
    prev1 = x;
    ++m;
  }
  if (sum != total) detail::fail_sum(sum, total);
}

}  // namespace gear::rle
