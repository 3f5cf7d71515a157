#include "postprocess.hpp"

#include <cmath>
#include <limits>

namespace gear::post {

Plan::Axis linear_axis(uint32_t in, uint32_t out) {
  Plan::Axis a;
  a.i0.resize(out);
  a.i1.resize(out);
  a.w0.resize(out);
  a.w1.resize(out);
  if (in == out) {  // torch copies in this case
    for (uint32_t o = 0; o < out; ++o) {
      a.i0[o] = a.i1[o] = o;
      a.w0[o] = 1.0f;
      a.w1[o] = 0.0f;
    }
    return a;
  }
  // area_pixel_compute_scale / area_pixel_compute_source_index / guard_index_and_lambda (float).
  const float scale = float(in) / float(out);
  for (uint32_t o = 0; o < out; ++o) {
    float src = scale * (float(o) + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(std::floor(src)), int64_t(in) - 1);
    const float l1 = std::min(std::max(src - float(i0), 0.0f), 1.0f);
    a.i0[o] = uint32_t(i0);
    a.i1[o] = uint32_t(i0 + (i0 < int64_t(in) - 1 ? 1 : 0));
    a.w1[o] = l1;
    a.w0[o] = 1.0f - l1;
  }
  return a;
}

void longest_side_shape(uint32_t h, uint32_t w, uint32_t side, uint32_t& out_h, uint32_t& out_w) {
  const double scale = double(side) / double(std::max(h, w));
  out_h = uint32_t(double(h) * scale + 0.5);
  out_w = uint32_t(double(w) * scale + 0.5);
}

Plan::Plan(const Params& p) : p_(p) {
  if (p_.lr_h == 0 || p_.lr_w == 0) fail("logits must have a non-empty spatial size, got ", p_.lr_h, "x", p_.lr_w);
  if (p_.out_h == 0 || p_.out_w == 0) fail("output size must be positive, got ", p_.out_h, "x", p_.out_w);
  if (p_.canvas_h == 0 && p_.canvas_w == 0) {
    p_.canvas_h = p_.out_h;
    p_.canvas_w = p_.out_w;
  }
  if (uint64_t(p_.off_x) + p_.out_w > p_.canvas_w || uint64_t(p_.off_y) + p_.out_h > p_.canvas_h)
    fail("a ", p_.out_h, "x", p_.out_w, " mask at offset (x=", p_.off_x, ", y=", p_.off_y,
         ") does not fit in the ", p_.canvas_h, "x", p_.canvas_w, " canvas");
  if (uint64_t(p_.canvas_h) * p_.canvas_w > rle::kMaxPixels)
    fail("canvas ", p_.canvas_h, "x", p_.canvas_w, " has more pixels than a COCO RLE can hold");
  if (!std::isfinite(p_.mask_threshold) || !std::isfinite(p_.stability_offset))
    fail("mask_threshold and stability_offset must be finite");

  thr = float(p_.mask_threshold);
  thr_hi = float(p_.mask_threshold + p_.stability_offset);
  thr_lo = float(p_.mask_threshold - p_.stability_offset);
  thr_min = std::min({thr, thr_hi, thr_lo});
  thr_max = std::max({thr, thr_hi, thr_lo});

  if (p_.convention == Convention::kSam2) {
    col_first = linear_axis(p_.lr_w, p_.out_w);
    row_final = linear_axis(p_.lr_h, p_.out_h);
    src_h = p_.lr_h;
  } else {
    if (p_.input_size == 0) fail("input_size must be positive");
    uint32_t h_in = 0, w_in = 0;
    longest_side_shape(p_.out_h, p_.out_w, p_.input_size, h_in, w_in);
    if (h_in == 0 || w_in == 0)
      fail("a ", p_.out_h, "x", p_.out_w, " image resized to longest side ", p_.input_size, " has an empty side");
    col_inner = linear_axis(p_.lr_w, p_.input_size);
    row_inner = linear_axis(p_.lr_h, p_.input_size);
    col_first = linear_axis(w_in, p_.out_w);
    row_final = linear_axis(h_in, p_.out_h);
    src_h = h_in;
  }
  auto group = [](const Axis& a, uint32_t n, std::vector<Group>& out) {
    for (uint32_t y = 0; y < n; ++y) {
      const uint32_t r0 = a.i0[y], r1 = a.i1[y];
      if (out.empty() || out.back().r0 != r0 || out.back().r1 != r1)
        out.push_back({r0, r1, y, y + 1});
      else
        out.back().y_end = y + 1;
    }
  };
  group(row_final, p_.out_h, groups);
  group(col_first, p_.out_w, col_groups);
}

namespace {

// dst[i] = a[i] * wa + b[i] * wb  (torch's order of operations for one bilinear tap pair)
inline void combine(const float* a, const float* b, float wa, float wb, float* dst, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) dst[i] = a[i] * wa + b[i] * wb;
}

class RunWriter {
 public:
  explicit RunWriter(rle::Counts& out) : out_(out) { out_.clear(); }
  void push(uint8_t v, uint64_t n) {
    if (n == 0) return;
    if (v == cur_) {
      len_ += n;
    } else {
      out_.push_back(uint32_t(len_));
      cur_ = v;
      len_ = n;
    }
  }
  void finish() { out_.push_back(uint32_t(len_)); }

 private:
  rle::Counts& out_;
  uint8_t cur_ = 0;
  uint64_t len_ = 0;
};

// Writes one mask column by column: runs, counts above each threshold, and the box.
class Emitter {
 public:
  Emitter(const Plan& plan, MaskStats& out) : plan_(plan), p_(plan.params()), out_(out), runs_(out.counts) {
    runs_.push(0, uint64_t(p_.off_x) * p_.canvas_h);
  }
  void begin_column() {
    runs_.push(0, p_.off_y);
    col_ymin_ = UINT32_MAX;
  }
  void bulk(uint8_t on, uint32_t y_begin, uint32_t y_end) {
    const uint32_t n = y_end - y_begin;
    runs_.push(on, n);
    if (on) {
      area_ += n;
      above_hi_ += n;
      above_lo_ += n;
      col_ymin_ = std::min(col_ymin_, y_begin);
      col_ymax_ = y_end - 1;
    }
  }
  // Rows [y_begin, y_end) of the final stage between source values a (tap r0) and b (tap r1).
  void pixels(float a, float b, uint32_t y_begin, uint32_t y_end) {
    const auto& rf = plan_.row_final;
    for (uint32_t y = y_begin; y < y_end; ++y) {
      const float v = a * rf.w0[y] + b * rf.w1[y];
      const uint8_t on = v > plan_.thr;
      above_hi_ += v > plan_.thr_hi;
      above_lo_ += v > plan_.thr_lo;
      runs_.push(on, 1);
      if (on) {
        ++area_;
        col_ymin_ = std::min(col_ymin_, y);
        col_ymax_ = y;
      }
    }
  }
  // Classifies a group whose values all lie between lo and hi: 0 below, 1 above every
  // threshold, 2 needs per-pixel evaluation. The margin covers float rounding of the convex
  // combinations, so bulk decisions agree with per-pixel evaluation.
  static uint8_t classify(const Plan& plan, float lo, float hi) {
    const float margin = 1e-5f * std::max(1.0f, std::max(std::fabs(lo), std::fabs(hi)));
    if (hi < plan.thr_min - margin) return 0;
    if (lo > plan.thr_max + margin) return 1;
    return 2;
  }
  void end_column(uint32_t x) {
    runs_.push(0, uint64_t(p_.canvas_h) - p_.off_y - p_.out_h);
    if (col_ymin_ != UINT32_MAX) {
      xmin_ = std::min(xmin_, x);
      xmax_ = x;
      ymin_ = std::min(ymin_, col_ymin_);
      ymax_ = std::max(ymax_, col_ymax_);
    }
  }
  void finish() {
    runs_.push(0, uint64_t(p_.canvas_w - p_.off_x - p_.out_w) * p_.canvas_h);
    runs_.finish();
    out_.area = area_;
    out_.above_hi = above_hi_;
    out_.above_lo = above_lo_;
    out_.stability = above_lo_ == 0 ? 1.0f : float(above_hi_) / float(above_lo_);
    if (xmin_ == UINT32_MAX) {
      out_.box[0] = out_.box[1] = out_.box[2] = out_.box[3] = 0.0;
    } else {
      out_.box[0] = double(p_.off_x + xmin_);
      out_.box[1] = double(p_.off_y + ymin_);
      out_.box[2] = double(xmax_ - xmin_ + 1);
      out_.box[3] = double(ymax_ - ymin_ + 1);
    }
  }

 private:
  const Plan& plan_;
  const Params& p_;
  MaskStats& out_;
  RunWriter runs_;
  uint64_t area_ = 0, above_hi_ = 0, above_lo_ = 0;
  uint32_t xmin_ = UINT32_MAX, xmax_ = 0, ymin_ = UINT32_MAX, ymax_ = 0;
  uint32_t col_ymin_ = UINT32_MAX, col_ymax_ = 0;
};

// kSam2: one bilinear stage. Every output pixel is a convex combination of the four corners of
// one low-res 2x2 cell, so cells entirely below (or above) every threshold are emitted as runs;
// only mixed cells are evaluated pixel by pixel, with torch's arithmetic.
void process_single_stage(const float* L, const Plan& plan, MaskStats& out, Workspace& ws) {
  const Params& p = plan.p_;
  const uint32_t lh = p.lr_h, lw = p.lr_w;
  ws.cell_class.resize(size_t(lh) * lw);
  for (uint32_t i = 0; i < lh; ++i) {
    const float* r0 = L + size_t(i) * lw;
    const float* r1 = L + size_t(std::min(i + 1, lh - 1)) * lw;
    uint8_t* cls = &ws.cell_class[size_t(i) * lw];
    for (uint32_t j = 0; j < lw; ++j) {
      const uint32_t j1 = std::min(j + 1, lw - 1);
      const float lo = std::min(std::min(r0[j], r0[j1]), std::min(r1[j], r1[j1]));
      const float hi = std::max(std::max(r0[j], r0[j1]), std::max(r1[j], r1[j1]));
      // min/max may drop a NaN corner; the sum does not (nor inf + -inf): such cells are
      // evaluated per pixel, where NaN compares false (off), as in torch.
      const float sum = (r0[j] + r0[j1]) + (r1[j] + r1[j1]);
      cls[j] = sum == sum ? Emitter::classify(plan, lo, hi) : 2;
    }
  }
  Emitter em(plan, out);
  const auto& cf = plan.col_first;
  for (const Plan::Group& cg : plan.col_groups) {
    const uint32_t c0 = cg.r0, c1 = cg.r1;
    // Class runs down this column group (shared by all its output columns).
    ws.runs.clear();
    for (uint32_t g = 0; g < plan.groups.size(); ++g) {
      const Plan::Group& rg = plan.groups[g];
      const uint8_t cls = ws.cell_class[size_t(rg.r0) * lw + c0];
      if (cls != 2 && !ws.runs.empty() && ws.runs.back().cls == cls)
        ws.runs.back().y_end = rg.y_end;
      else
        ws.runs.push_back({cls, rg.y_begin, rg.y_end, g});
    }
    for (uint32_t x = cg.y_begin; x < cg.y_end; ++x) {
      const float w0 = cf.w0[x], w1 = cf.w1[x];
      em.begin_column();
      for (const Workspace::Run& r : ws.runs) {
        if (r.cls != 2) {
          em.bulk(r.cls, r.y_begin, r.y_end);
          continue;
        }
        const Plan::Group& rg = plan.groups[r.group];
        const float* a_row = L + size_t(rg.r0) * lw;
        const float* b_row = L + size_t(rg.r1) * lw;
        em.pixels(a_row[c0] * w0 + a_row[c1] * w1, b_row[c0] * w0 + b_row[c1] * w1, r.y_begin, r.y_end);
      }
      em.end_column(x);
    }
  }
  em.finish();
}

// kSam1 (two stages): builds each output column's source column through the cached
// intermediate (input_size-resolution) columns, then skips groups the same way.
void process_two_stage(const float* logits, const Plan& plan, MaskStats& out, Workspace& ws) {
  const Params& p = plan.p_;
  const uint32_t lh = p.lr_h, lw = p.lr_w;
  ws.lt.resize(size_t(lh) * lw);  // transposed: every low-res column contiguous
  for (uint32_t i = 0; i < lh; ++i) {
    const float* row = logits + size_t(i) * lw;
    for (uint32_t j = 0; j < lw; ++j) ws.lt[size_t(j) * lh + i] = row[j];
  }
  ws.src.resize(plan.src_h);
  ws.low.resize(lh);
  ws.inter_a.resize(plan.src_h);
  ws.inter_b.resize(plan.src_h);
  ws.inter_a_idx = ws.inter_b_idx = -1;
  auto intermediate = [&](uint32_t c, int64_t keep) -> const float* {
    if (ws.inter_a_idx == int64_t(c)) return ws.inter_a.data();
    if (ws.inter_b_idx == int64_t(c)) return ws.inter_b.data();
    const bool use_a = ws.inter_a_idx != keep;
    std::vector<float>& slot = use_a ? ws.inter_a : ws.inter_b;
    (use_a ? ws.inter_a_idx : ws.inter_b_idx) = int64_t(c);
    const auto& ci = plan.col_inner;
    combine(&ws.lt[size_t(ci.i0[c]) * lh], &ws.lt[size_t(ci.i1[c]) * lh], ci.w0[c], ci.w1[c], ws.low.data(), lh);
    const auto& ri = plan.row_inner;
    for (uint32_t r = 0; r < plan.src_h; ++r) slot[r] = ws.low[ri.i0[r]] * ri.w0[r] + ws.low[ri.i1[r]] * ri.w1[r];
    return slot.data();
  };
  Emitter em(plan, out);
  const auto& cf = plan.col_first;
  float* s = ws.src.data();
  for (uint32_t x = 0; x < p.out_w; ++x) {
    const uint32_t c0 = cf.i0[x], c1 = cf.i1[x];
    const float* a = intermediate(c0, -1);
    const float* b = intermediate(c1, int64_t(c0));
    combine(a, b, cf.w0[x], cf.w1[x], s, plan.src_h);
    em.begin_column();
    for (const Plan::Group& g : plan.groups) {
      const float va = s[g.r0], vb = s[g.r1];
      const uint8_t cls = (va == va && vb == vb) ? Emitter::classify(plan, std::min(va, vb), std::max(va, vb)) : 2;
      if (cls != 2)
        em.bulk(cls, g.y_begin, g.y_end);
      else
        em.pixels(va, vb, g.y_begin, g.y_end);
    }
    em.end_column(x);
  }
  em.finish();
}

}  // namespace

void process(const float* logits, const Plan& plan, MaskStats& out, Workspace& ws) {
  if (plan.params().convention == Convention::kSam2)
    process_single_stage(logits, plan, out, ws);
  else
    process_two_stage(logits, plan, out, ws);
}

}  // namespace gear::post
