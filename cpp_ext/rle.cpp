#include "rle.hpp"

#include <cmath>

namespace gear::rle {
namespace {

// Loads 8 bytes so that the byte at the lowest address is the least significant one, on any host.
inline uint64_t load_le64(const uint8_t* p) {
  uint64_t v = load_u64(p);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

constexpr uint64_t kHighBits = 0xFEFEFEFEFEFEFEFEull;  // any byte > 1 sets one of these

[[noreturn]] void fail_bad_value(const uint8_t* m, uint32_t h, uint32_t w, bool row_major) {
  const uint64_t total = uint64_t(h) * w;
  for (uint64_t i = 0; i < total; ++i) {
    if (m[i] > 1) {
      const uint64_t y = row_major ? i / w : i % h;
      const uint64_t x = row_major ? i % w : i / h;
      fail("mask values must be 0 or 1, found ", int(m[i]), " at row ", y, ", column ", x,
           " (pass a bool array, e.g. logits > 0)");
    }
  }
  fail("mask values must be 0 or 1");
}

// Stable counting sort of (key, value) pairs by key in [0, nkeys). On return `ends[k]` is the
// end offset of key k's values in `sorted`.
void bucket_by_key(const std::vector<uint32_t>& keys, const std::vector<uint32_t>& values,
                   uint32_t nkeys, std::vector<uint32_t>& ends, std::vector<uint32_t>& sorted) {
  ends.assign(size_t(nkeys) + 1, 0);
  for (uint32_t k : keys) ++ends[size_t(k) + 1];
  for (size_t k = 0; k < nkeys; ++k) ends[k + 1] += ends[k];
  sorted.resize(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) sorted[ends[keys[i]]++] = values[i];
}

}  // namespace

void counts_to_string(const Counts& counts, std::string& out) {
  out.clear();
  out.reserve(counts.size() * 2);
  for (size_t i = 0; i < counts.size(); ++i) {
    int64_t x = int64_t(counts[i]);
    if (i > 2) x -= int64_t(counts[i - 2]);
    bool more = true;
    while (more) {
      int64_t c = x & 0x1f;
      x >>= 5;  // arithmetic shift: x is signed (as in maskApi.c)
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      out.push_back(char(c + 48));
    }
  }
}

namespace detail {

void fail_run(size_t index, int64_t value, uint64_t total) {
  if (value < 0) fail("run ", index, " decodes to a negative length (", value, ")");
  fail("run ", index, " has length ", value, " but the mask has only ", total, " pixels");
}

void fail_sum(uint64_t sum, uint64_t total) { fail("runs sum to ", sum, " pixels but 'size' has ", total); }

int64_t parse_long_number(const unsigned char* s, const unsigned char*& p, const unsigned char* end, size_t index) {
  const size_t start = size_t(p - s);
  uint64_t ux = 0;
  for (int k = 0;; ++k) {
    if (p >= end) fail("'counts' ends inside a number (truncated string?) starting at position ", start);
    const unsigned ch = *p;
    const unsigned c = ch - 48u;
    if (c >= 64u) {
      fail("invalid character ",
           (ch >= 32 && ch < 127) ? std::string("'") + char(ch) + "'" : std::string("byte"), " (code ", ch,
           ") at position ", size_t(p - s), " of 'counts'; compressed COCO RLE uses '0'..'o'");
    }
    if (k >= 8) fail("run ", index, " in 'counts' is too long to be a pixel count (position ", start, ")");
    ux |= uint64_t(c & 0x1f) << (5 * k);
    ++p;
    if (!(c & 0x20)) {
      if (c & 0x10) ux |= ~uint64_t(0) << (5 * (k + 1));  // sign-extend
      return static_cast<int64_t>(ux);
    }
  }
}

}  // namespace detail

namespace {

// The number written in n = 1, 2 or 3 characters whose codes minus 48 are c0, c1, c2 (characters
// past the n-th are ignored): 5-bit groups, lowest first, in 5n-bit two's complement. Selected
// with conditional moves, not a branch on n.
inline int64_t short_number(uint32_t c0, uint32_t c1, uint32_t c2, size_t n) {
  const int64_t v1 = int64_t(c0 ^ 16u) - 16;
  const int64_t v2 = int64_t(((c0 & 31u) | ((c1 & 31u) << 5)) ^ 512u) - 512;
  const int64_t v3 = int64_t(((c0 & 31u) | ((c1 & 31u) << 5) | ((c2 & 31u) << 10)) ^ 16384u) - 16384;
  return n == 3 ? v3 : (n == 2 ? v2 : v1);
}

// The fast parser, handing each run to emit(index, value). emit must be safe for any value (it
// sees runs before validation finishes; on invalid input the caller's results are discarded).
template <typename Emit>
size_t parse_fast(const char* str, size_t len, uint64_t total, Emit&& emit) {
  // Numbers are 1, 2 or 3 characters long in roughly 45/35/20 proportions on real masks, so a
  // branch on the length mispredicts constantly: lengths come from bit masks (blocks below) or
  // from the continuation bits of three characters read at once (the scalar loop for the tail),
  // and short_number selects the value; longer numbers, invalid characters and the last two
  // characters of the string take the (rare) validating slow path.
  const unsigned char* s = reinterpret_cast<const unsigned char*>(str);
  uint64_t sum = 0;
  bool bad = false;
  int64_t prev1 = 0, prev2 = 0;
  size_t m = 0, p = 0;
  auto store = [&](int64_t x) {
    x += m > 2 ? prev2 : 0;
    bad |= (x < 0) | (uint64_t(x) > total);
    sum += uint64_t(x);
    emit(m++, uint32_t(x));
    prev2 = prev1;
    prev1 = x;
  };
  // Blocks of 64 characters: a SWAR pass finds the characters that end a number (bit 0x20 of
  // c - 48 clear) and flags any character outside '0'..'o'; the numbers are then taken from the
  // positions of the set bits, so the next number's start never waits for the previous number's
  // length (the loop-carried dependency of a character-by-character parser). Blocks stop 8 bytes
  // short of the end so every 3-byte read stays inside the string; the scalar loop below finishes.
  constexpr uint64_t kHigh = 0x8080808080808080ull, kOnes = 0x0101010101010101ull;
  for (size_t blk = 0; blk + 72 <= len; blk += 64) {
    uint64_t ends = 0, invalid = 0;
    for (int k = 0; k < 8; ++k) {
      const uint64_t w = load_le64(s + blk + 8 * k);
      const uint64_t t = (w | kHigh) - 0x3030303030303030ull;  // per byte: c - 48 + 128, no borrows
      const uint64_t u = (w | kHigh) - 0x7070707070707070ull;  // high bit set where c >= 112
      invalid |= (w & kHigh) | (~t & kHigh) | (u & kHigh);      // c >= 128, c < 48, c >= 112
      const uint64_t lanes = (~t >> 5) & kOnes;                 // 1 in byte j where char j ends a number
      ends |= ((lanes * 0x0102040810204080ull) >> 56) << (8 * k);  // byte lanes -> 8 bits
    }
    if (invalid) break;  // the scalar loop reports the character
    while (ends) {
      const size_t end = blk + size_t(count_trailing_zeros64(ends));
      ends &= ends - 1;
      const size_t n = end - p + 1;
      int64_t x;
      if (__builtin_expect(n <= 3, 1)) {
        x = short_number(uint32_t(s[p]) - 48u, uint32_t(s[p + 1]) - 48u, uint32_t(s[p + 2]) - 48u, n);
      } else {
        const unsigned char* q = s + p;
        x = detail::parse_long_number(s, q, s + len, m);
      }
      p = end + 1;
      store(x);
    }
  }
  while (p + 2 < len) {
    const uint32_t c0 = uint32_t(s[p]) - 48u, c1 = uint32_t(s[p + 1]) - 48u, c2 = uint32_t(s[p + 2]) - 48u;
    const uint32_t two = c0 >> 5, three = two & (c1 >> 5);
    int64_t x;
    if (__builtin_expect(((c0 | c1 | c2) >= 64u) | (three & (c2 >> 5)), 0)) {  // long or invalid
      const unsigned char* q = s + p;
      x = detail::parse_long_number(s, q, s + len, m);
      p = size_t(q - s);
    } else {
      const size_t n = 1 + two + three;
      x = short_number(c0, c1, c2, n);
      p += n;
    }
    store(x);
  }
  while (p < len) {  // the last one or two characters
    const unsigned char* q = s + p;
    const int64_t x = detail::parse_long_number(s, q, s + len, m);
    p = size_t(q - s);
    store(x);
  }
  if (bad || sum != total) {
    parse_counts(str, len, total, [](uint32_t) {});  // the validating parser says what is wrong
    fail("'counts' is not a valid compressed RLE");
  }
  return m;
}

}  // namespace

size_t parse_counts_fast(const char* str, size_t len, uint64_t total, uint32_t* out) {
  return parse_fast(str, len, total, [out](size_t i, uint32_t x) { out[i] = x; });
}

uint64_t area_from_string(const char* str, size_t len, uint64_t total) {
  uint64_t area = 0;
  parse_fast(str, len, total, [&area](size_t i, uint32_t x) { area += (i & 1) ? x : 0; });
  return area;
}

void bbox_from_string(const char* str, size_t len, uint64_t total, uint32_t h, double out[4]) {
  BboxSink sink(h);
  if (h == 0) {  // nothing to locate; still validate
    parse_fast(str, len, total, [](size_t, uint32_t) {});
  } else {
    parse_fast(str, len, total, [&sink](size_t, uint32_t x) { sink(x); });
  }
  sink.result(out);
}

void counts_from_string(const char* s, size_t len, uint64_t total, Counts& out) {
  out.resize(len + 1);  // at least one character per run, +1 for the speculative store
  out.resize(parse_counts_fast(s, len, total, out.data()));
}

void check_counts(const Counts& counts, uint64_t total) {
  uint64_t sum = 0;
  for (uint32_t c : counts) sum += c;
  if (sum != total) fail("runs sum to ", sum, " pixels but 'size' has ", total);
}

void encode_row_major(const uint8_t* m, uint32_t h, uint32_t w, Counts& out, Scratch& s) {
  out.clear();
  const uint64_t total = uint64_t(h) * w;
  if (total == 0) {
    out.push_back(0);
    return;
  }
  // Column-major runs change where a pixel differs from its column-major predecessor: the pixel
  // above it, or for row 0 the last pixel of the previous column. Collect those transitions by
  // scanning rows (contiguous memory), then bucket them by column.
  auto& tx = s.a;
  auto& ty = s.b;
  tx.clear();
  ty.clear();
  uint64_t acc = 0;
  uint8_t acc_small = 0;
  const uint8_t* last_row = m + size_t(h - 1) * w;
  uint8_t prev = 0;
  for (uint32_t x = 0; x < w; ++x) {
    const uint8_t v = m[x];
    acc_small |= v;
    if (v != prev) {
      tx.push_back(x);
      ty.push_back(0);
    }
    prev = last_row[x];
  }
  for (uint32_t y = 1; y < h; ++y) {
    const uint8_t* r = m + size_t(y) * w;
    const uint8_t* q = r - w;
    uint32_t x = 0;
    for (; x + 8 <= w; x += 8) {
      const uint64_t a = load_le64(r + x);
      acc |= a;
      uint64_t d = a ^ load_le64(q + x);
      while (d) {
        tx.push_back(x + uint32_t(count_trailing_zeros64(d) >> 3));
        ty.push_back(y);
        d &= d - 1;
      }
    }
    for (; x < w; ++x) {
      acc_small |= r[x];
      if (r[x] != q[x]) {
        tx.push_back(x);
        ty.push_back(y);
      }
    }
  }
  if ((acc & kHighBits) || (acc_small & 0xFE)) fail_bad_value(m, h, w, true);

  bucket_by_key(tx, ty, w, s.c, s.d);
  uint64_t prev_idx = 0;
  size_t i = 0;
  for (uint32_t x = 0; x < w; ++x) {
    const size_t end = s.c[x];
    const uint64_t col = uint64_t(x) * h;
    for (; i < end; ++i) {
      const uint64_t idx = col + s.d[i];
      out.push_back(uint32_t(idx - prev_idx));
      prev_idx = idx;
    }
  }
  out.push_back(uint32_t(total - prev_idx));
}

void encode_col_major(const uint8_t* m, uint32_t h, uint32_t w, Counts& out) {
  out.clear();
  const uint64_t total = uint64_t(h) * w;
  if (total == 0) {
    out.push_back(0);
    return;
  }
  uint64_t acc = 0;
  uint8_t acc_small = m[0];
  uint64_t prev_idx = 0;
  if (m[0] != 0) out.push_back(0);
  uint64_t i = 1;
  for (; i + 8 <= total; i += 8) {
    const uint64_t a = load_le64(m + i);
    acc |= a;
    uint64_t d = a ^ load_le64(m + i - 1);
    while (d) {
      const uint64_t idx = i + uint64_t(count_trailing_zeros64(d) >> 3);
      out.push_back(uint32_t(idx - prev_idx));
      prev_idx = idx;
      d &= d - 1;
    }
  }
  for (; i < total; ++i) {
    acc_small |= m[i];
    if (m[i] != m[i - 1]) {
      out.push_back(uint32_t(i - prev_idx));
      prev_idx = i;
    }
  }
  if ((acc & kHighBits) || (acc_small & 0xFE)) fail_bad_value(m, h, w, false);
  out.push_back(uint32_t(total - prev_idx));
}

void decode_row_major(const Counts& counts, uint32_t h, uint32_t w, uint8_t* out, Scratch& s) {
  const uint64_t total = uint64_t(h) * w;
  if (total == 0) return;
  // Row 0 holds the value at each column start; every other row is the row above with the
  // pixels toggled where a run boundary falls inside the column.
  auto& ty = s.a;
  auto& tx = s.b;
  ty.clear();
  tx.clear();
  uint64_t pos = 0, col = 0, col_start = 0;  // col: the column holding pixel `pos`
  auto advance = [&](uint64_t p) {
    if (p - col_start >= 8 * uint64_t(h)) {
      col = p / h;
      col_start = col * h;
    }
    while (p >= col_start + h) {
      ++col;
      col_start += h;
    }
  };
  uint8_t v = 0, last_v = 0;
  for (size_t i = 0; i < counts.size(); ++i, v ^= 1) {
    const uint64_t n = counts[i];
    if (n == 0) continue;
    if (pos > 0 && v != last_v && pos != col_start) {
      ty.push_back(uint32_t(pos - col_start));
      tx.push_back(uint32_t(col));
    }
    // Columns whose first pixel lies in [pos, end) start with value v.
    const uint64_t x0 = pos == col_start ? col : col + 1;
    const uint64_t end = pos + n;
    advance(end);
    const uint64_t x1 = end == col_start ? col : col + 1;
    if (x1 > x0) std::memset(out + x0, v, size_t(x1 - x0));
    last_v = v;
    pos = end;
  }
  bucket_by_key(ty, tx, h, s.c, s.d);
  size_t i = s.c[0];
  for (uint32_t y = 1; y < h; ++y) {
    uint8_t* r = out + size_t(y) * w;
    std::memcpy(r, r - w, w);
    for (const size_t end = s.c[y]; i < end; ++i) r[s.d[i]] ^= 1;
  }
}

uint64_t area(const Counts& counts) {
  uint64_t a = 0;
  for (size_t i = 1; i < counts.size(); i += 2) a += counts[i];
  return a;
}

void BboxSink::operator()(uint32_t n) {
  if (one && n > 0) {
    const uint64_t s = pos, e = pos + n - 1;
    const uint64_t ys0 = row_of(s), x0 = col;
    const uint64_t ye0 = row_of(e), x1 = col;
    any = true;
    xs = std::min(xs, x0);
    xe = std::max(xe, x1);
    if (x0 != x1) {  // the run wraps from the bottom of one column to the top of the next
      ys = 0;
      ye = h - 1;
    } else {
      ys = std::min(ys, ys0);
      ye = std::max(ye, ye0);
    }
  }
  pos += n;
  one = !one;
}

void BboxSink::result(double out[4]) const {
  if (!any) {
    out[0] = out[1] = out[2] = out[3] = 0.0;
    return;
  }
  out[0] = double(xs);
  out[1] = double(ys);
  out[2] = double(xe - xs + 1);
  out[3] = double(ye - ys + 1);
}

void bbox(const Counts& counts, uint32_t h, uint32_t w, double out[4]) {
  (void)w;
  BboxSink sink(h);
  for (uint32_t c : counts) sink(c);
  sink.result(out);
}

uint64_t intersection(const Counts& a, const Counts& b) {
  if (a.empty() || b.empty()) return 0;
  size_t ia = 0, ib = 0;
  uint64_t ra = a[0], rb = b[0], inter = 0;
  bool va = false, vb = false;
  for (;;) {
    while (ra == 0) {
      if (++ia >= a.size()) return inter;
      ra = a[ia];
      va = !va;
    }
    while (rb == 0) {
      if (++ib >= b.size()) return inter;
      rb = b[ib];
      vb = !vb;
    }
    const uint64_t c = std::min(ra, rb);
    if (va && vb) inter += c;
    ra -= c;
    rb -= c;
  }
}

namespace {

// Canonical merge used when pycocotools' loop would stop early: that happens only for
// non-canonical input (zero-length runs inside both masks at the same place), where
// pycocotools itself returns runs that do not cover the mask.
void merge_canonical(const std::vector<const Counts*>& masks, bool intersect, uint64_t total, Counts& out) {
  // Event sweep: every run boundary of every mask; between events the per-mask values are fixed.
  const size_t n = masks.size();
  std::vector<size_t> idx(n, 0);
  std::vector<uint64_t> rem(n);
  std::vector<uint8_t> val(n, 0);
  for (size_t k = 0; k < n; ++k) rem[k] = masks[k]->empty() ? 0 : (*masks[k])[0];
  out.clear();
  uint64_t pos = 0, run = 0;
  uint8_t cur = 0;
  while (pos < total) {
    uint64_t step = UINT64_MAX;
    size_t ones = 0;
    for (size_t k = 0; k < n; ++k) {
      while (rem[k] == 0 && idx[k] + 1 < masks[k]->size()) {
        rem[k] = (*masks[k])[++idx[k]];
        val[k] ^= 1;
      }
      step = std::min(step, rem[k]);
      ones += val[k];
    }
    if (step == 0 || step == UINT64_MAX) break;  // inputs are validated; defensive
    const uint8_t v = intersect ? uint8_t(ones == n) : uint8_t(ones > 0);
    if (v != cur) {
      out.push_back(uint32_t(run));
      run = 0;
      cur = v;
    }
    run += step;
    for (size_t k = 0; k < n; ++k) rem[k] -= step;
    pos += step;
  }
  out.push_back(uint32_t(run));
}

}  // namespace

void merge(const std::vector<const Counts*>& masks, bool intersect, uint64_t total, Counts& out) {
  const size_t n = masks.size();
  if (n == 0) fail("merge needs at least one mask");
  out = *masks[0];
  if (n == 1) return;
  if (out.empty()) out.push_back(0);
  static const Counts kEmpty{0};
  Counts a;
  for (size_t i = 1; i < n; ++i) {
    a.swap(out);
    const Counts& b = masks[i]->empty() ? kEmpty : *masks[i];
    out.clear();
    // Same state machine as pycocotools' rleMerge, so the run layout is identical.
    uint64_t ca = a[0], cb = b[0], cc = 0, ct = 1;
    bool v = false, va = false, vb = false, vp;
    size_t ia = 1, ib = 1;
    while (ct > 0) {
      const uint64_t c = std::min(ca, cb);
      cc += c;
      ct = 0;
      ca -= c;
      if (!ca && ia < a.size()) {
        ca = a[ia++];
        va = !va;
      }
      ct += ca;
      cb -= c;
      if (!cb && ib < b.size()) {
        cb = b[ib++];
        vb = !vb;
      }
      ct += cb;
      vp = v;
      v = intersect ? (va && vb) : (va || vb);
      if (v != vp || ct == 0) {
        out.push_back(uint32_t(cc));
        cc = 0;
      }
    }
    uint64_t sum = 0;
    for (uint32_t c : out) sum += c;
    if (sum != total) {
      merge_canonical(masks, intersect, total, out);
      return;
    }
  }
}

void from_polygon(const double* xy, size_t k, uint32_t h, uint32_t w, Counts& out) {
  // Same arithmetic as pycocotools' rleFrPoly: trace the boundary at 5x resolution, keep the
  // points where it crosses a pixel column centre, and turn those into column-major toggles.
  const double scale = 5.0;
  std::vector<int> x(k + 1), y(k + 1);
  for (size_t j = 0; j < k; ++j) x[j] = static_cast<int>(scale * xy[2 * j] + 0.5);
  for (size_t j = 0; j < k; ++j) y[j] = static_cast<int>(scale * xy[2 * j + 1] + 0.5);
  x[k] = x[0];
  y[k] = y[0];
  size_t m = 0;
  for (size_t j = 0; j < k; ++j) m += size_t(std::max(std::abs(x[j] - x[j + 1]), std::abs(y[j] - y[j + 1]))) + 1;
  std::vector<int> u(m), v(m);
  m = 0;
  for (size_t j = 0; j < k; ++j) {
    int xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
    const int dx = std::abs(xe - xs), dy = std::abs(ys - ye);
    const bool flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      std::swap(xs, xe);
      std::swap(ys, ye);
    }
    if (dx == 0 && dy == 0) {  // repeated vertex: one point (pycocotools divides 0/0 here, unused)
      u[m] = xs;
      v[m] = ys;
      ++m;
      continue;
    }
    const double s = dx >= dy ? double(ye - ys) / dx : double(xe - xs) / dy;
    if (dx >= dy) {
      for (int d = 0; d <= dx; ++d) {
        const int t = flip ? dx - d : d;
        u[m] = t + xs;
        v[m] = static_cast<int>(ys + s * t + 0.5);
        ++m;
      }
    } else {
      for (int d = 0; d <= dy; ++d) {
        const int t = flip ? dy - d : d;
        v[m] = t + ys;
        u[m] = static_cast<int>(xs + s * t + 0.5);
        ++m;
      }
    }
  }
  std::vector<uint32_t> a;
  a.reserve(m + 1);
  for (size_t j = 1; j < m; ++j) {
    if (u[j] == u[j - 1]) continue;
    double xd = double(u[j] < u[j - 1] ? u[j] : u[j] - 1);
    xd = (xd + 0.5) / scale - 0.5;
    if (std::floor(xd) != xd || xd < 0 || xd > double(w) - 1) continue;
    double yd = double(v[j] < v[j - 1] ? v[j] : v[j - 1]);
    yd = (yd + 0.5) / scale - 0.5;
    if (yd < 0)
      yd = 0;
    else if (yd > h)
      yd = h;
    yd = std::ceil(yd);
    a.push_back(uint32_t(static_cast<int>(xd)) * h + uint32_t(static_cast<int>(yd)));
  }
  a.push_back(uint32_t(uint64_t(h) * w));
  std::sort(a.begin(), a.end());
  uint32_t p = 0;
  for (auto& t : a) {
    const uint32_t cur = t;
    t -= p;
    p = cur;
  }
  out.clear();
  size_t j = 0;
  out.push_back(a[j++]);
  while (j < a.size()) {
    if (a[j] > 0) {
      out.push_back(a[j++]);
    } else {
      ++j;
      if (j < a.size()) out.back() += a[j++];
    }
  }
}

}  // namespace gear::rle
