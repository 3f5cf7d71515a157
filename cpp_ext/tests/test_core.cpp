// C++ unit tests of the gear_edge core (no Python): known vectors, round trips against brute-force
// implementations, and error paths. Run with ctest (see CMakeLists.txt, GEAR_EDGE_BUILD_TESTS).
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "crops.hpp"
#include "postprocess.hpp"
#include "rle.hpp"

namespace {

int g_failures = 0;
int g_checks = 0;

#define CHECK(cond)                                                        \
  do {                                                                     \
    ++g_checks;                                                            \
    if (!(cond)) {                                                         \
      ++g_failures;                                                        \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                      \
  } while (0)

bool throws_input_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const gear::InputError&) {
    return true;
  }
  return false;
}

using gear::rle::Counts;

Counts brute_runs_col_major(const std::vector<uint8_t>& rowmajor, uint32_t h, uint32_t w) {
  Counts c;
  uint8_t cur = 0;
  uint32_t len = 0;
  for (uint32_t x = 0; x < w; ++x)
    for (uint32_t y = 0; y < h; ++y) {
      const uint8_t v = rowmajor[size_t(y) * w + x];
      if (v != cur) {
        c.push_back(len);
        len = 0;
        cur = v;
      }
      ++len;
    }
  c.push_back(len);
  return c;
}

void test_known_vectors() {
  // 4x5 mask, rows 1-2 x cols 1-3 set -> "5220003"; 2x2 all ones -> "04".
  std::vector<uint8_t> m(20, 0);
  for (int y = 1; y <= 2; ++y)
    for (int x = 1; x <= 3; ++x) m[y * 5 + x] = 1;
  Counts c;
  gear::rle::Scratch s;
  gear::rle::encode_row_major(m.data(), 4, 5, c, s);
  std::string str;
  gear::rle::counts_to_string(c, str);
  CHECK(str == "5220003");
  std::vector<uint8_t> ones(4, 1);
  gear::rle::encode_row_major(ones.data(), 2, 2, c, s);
  gear::rle::counts_to_string(c, str);
  CHECK(str == "04");
  Counts parsed;
  gear::rle::counts_from_string("5220003", 7, 20, parsed);
  CHECK((parsed == Counts{5, 2, 2, 2, 2, 2, 5}));
  double box[4];
  gear::rle::bbox(parsed, 4, 5, box);
  CHECK(box[0] == 1 && box[1] == 1 && box[2] == 3 && box[3] == 2);
  CHECK(gear::rle::area(parsed) == 6);
}

void test_round_trips() {
  std::mt19937 rng(1234);
  gear::rle::Scratch s;
  for (int iter = 0; iter < 400; ++iter) {
    const uint32_t h = 1 + rng() % 37, w = 1 + rng() % 41;
    const double p = (rng() % 100) / 100.0;
    std::vector<uint8_t> m(size_t(h) * w);
    for (auto& v : m) v = (rng() % 1000) < p * 1000 ? 1 : 0;
    Counts c, cf;
    gear::rle::encode_row_major(m.data(), h, w, c, s);
    CHECK(c == brute_runs_col_major(m, h, w));
    std::vector<uint8_t> colmajor(m.size());
    for (uint32_t y = 0; y < h; ++y)
      for (uint32_t x = 0; x < w; ++x) colmajor[size_t(x) * h + y] = m[size_t(y) * w + x];
    gear::rle::encode_col_major(colmajor.data(), h, w, cf);
    CHECK(cf == c);
    std::string str;
    gear::rle::counts_to_string(c, str);
    Counts back;
    gear::rle::counts_from_string(str.data(), str.size(), uint64_t(h) * w, back);
    CHECK(back == c);
    std::vector<uint8_t> dec(m.size(), 7);
    gear::rle::decode_row_major(back, h, w, dec.data(), s);
    CHECK(dec == m);
    uint64_t a = 0;
    for (auto v : m) a += v;
    CHECK(gear::rle::area(c) == a);
    // intersection with itself == area, with the complement == 0
    std::vector<uint8_t> inv(m.size());
    for (size_t i = 0; i < m.size(); ++i) inv[i] = 1 - m[i];
    Counts ci;
    gear::rle::encode_row_major(inv.data(), h, w, ci, s);
    CHECK(gear::rle::intersection(c, c) == a);
    CHECK(gear::rle::intersection(c, ci) == 0);
    Counts u;
    gear::rle::merge({&c, &ci}, false, uint64_t(h) * w, u);
    CHECK(gear::rle::area(u) == uint64_t(h) * w);
  }
}

void test_decode_rejects() {
  Counts c;
  CHECK(throws_input_error([&] { gear::rle::counts_from_string("5~", 2, 20, c); }));       // bad char
  CHECK(throws_input_error([&] { gear::rle::counts_from_string("522000", 6, 20, c); }));   // short sum
  CHECK(throws_input_error([&] { gear::rle::counts_from_string("5220004", 7, 20, c); }));  // long sum
  CHECK(throws_input_error([&] { gear::rle::counts_from_string("P", 1, 20, c); }));        // truncated (0x20 set)
  CHECK(throws_input_error([&] { gear::rle::counts_from_string("111K", 4, 20, c); }));     // run 3 = 1 + (-5) < 0
  CHECK(throws_input_error([&] { gear::rle::counts_from_string("oooooooooo", 10, 20, c); }));  // overlong
  std::vector<uint8_t> bad = {0, 1, 2, 0};
  gear::rle::Scratch s;
  CHECK(throws_input_error([&] { gear::rle::encode_row_major(bad.data(), 2, 2, c, s); }));
  CHECK(throws_input_error([&] { gear::rle::encode_col_major(bad.data(), 2, 2, c); }));
}

void test_postprocess_matches_direct_evaluation() {
  // Per-pixel bilinear evaluation (torch's formula) vs the fused run-emitting path.
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 2.0f);
  const uint32_t lh = 17, lw = 23;
  std::vector<float> logits(size_t(lh) * lw);
  for (auto& v : logits) v = noise(rng);
  gear::post::Params p;
  p.lr_h = lh;
  p.lr_w = lw;
  p.out_h = 61;
  p.out_w = 45;
  gear::post::Plan plan(p);
  gear::post::MaskStats st;
  gear::post::Workspace ws;
  gear::post::process(logits.data(), plan, st, ws);
  auto ry = gear::post::linear_axis(lh, p.out_h);
  auto rx = gear::post::linear_axis(lw, p.out_w);
  std::vector<uint8_t> m(size_t(p.out_h) * p.out_w);
  uint64_t hi = 0, lo = 0;
  for (uint32_t y = 0; y < p.out_h; ++y)
    for (uint32_t x = 0; x < p.out_w; ++x) {
      auto L = [&](uint32_t i, uint32_t j) { return logits[size_t(i) * lw + j]; };
      const float a = L(ry.i0[y], rx.i0[x]) * rx.w0[x] + L(ry.i0[y], rx.i1[x]) * rx.w1[x];
      const float b = L(ry.i1[y], rx.i0[x]) * rx.w0[x] + L(ry.i1[y], rx.i1[x]) * rx.w1[x];
      const float v = a * ry.w0[y] + b * ry.w1[y];
      m[size_t(y) * p.out_w + x] = v > 0.0f;
      hi += v > 1.0f;
      lo += v > -1.0f;
    }
  CHECK(st.counts == brute_runs_col_major(m, p.out_h, p.out_w));
  CHECK(st.above_hi == hi && st.above_lo == lo);
  CHECK(std::fabs(st.stability - float(hi) / float(lo)) < 1e-7f);
  // A mask that does not fit its canvas is refused.
  gear::post::Params bad = p;
  bad.canvas_h = 10;
  bad.canvas_w = 10;
  CHECK(throws_input_error([&] { gear::post::Plan x(bad); }));
}

void test_crop_layout_and_constant_image() {
  gear::crops::Params p;
  p.size = 32;
  const double box[4] = {10.2, 5.0, 20.0, 10.0};
  auto l = gear::crops::layout(box, p);
  CHECK(l.x0 == 10 && l.x1 == 31 && l.y0 == 5 && l.y1 == 15);
  CHECK(l.rw == 32 && l.rh == 15 && l.ox == 0 && l.oy == 8);
  // A uniform image crops to the uniform normalised value everywhere inside the image.
  std::vector<uint8_t> img(40 * 50 * 3, 200);
  std::vector<float> out(3 * 32 * 32);
  gear::crops::Workspace ws;
  p.letterbox = false;
  gear::crops::crop(img.data(), 40, 50, box, nullptr, p, out.data(), ws);
  const float expect = (200.0f / 255.0f - p.mean[0]) / p.std[0];
  bool all = true;
  for (int i = 0; i < 32 * 32; ++i) all = all && std::fabs(out[i] - expect) < 1e-5f;
  CHECK(all);
  gear::crops::Params badp = p;
  badp.size = 0;
  CHECK(throws_input_error([&] { gear::crops::validate(badp); }));
}

}  // namespace

int main() {
  test_known_vectors();
  test_round_trips();
  test_decode_rejects();
  test_postprocess_matches_direct_evaluation();
  test_crop_layout_and_constant_image();
  std::printf("%d passed, %d failed\n", g_checks - g_failures, g_failures);
  return g_failures == 0 ? 0 : 1;
}
