#include "crops.hpp"

#include <cmath>

namespace gear::crops {

void validate(const Params& p) {
  if (p.size == 0 || p.size > 4096) fail("crop size must be in 1..4096, got ", p.size);
  if (!(p.context > 0.0) || !std::isfinite(p.context)) fail("context must be a positive finite factor, got ", p.context);
  if (p.background == Background::kBlur && (!(p.blur_sigma > 0.0) || p.blur_sigma > 100.0))
    fail("blur_sigma must be in (0, 100], got ", p.blur_sigma);
  for (int c = 0; c < 3; ++c)
    if (!(std::fabs(p.std[c]) > 0.0f) || !std::isfinite(p.std[c]) || !std::isfinite(p.mean[c]))
      fail("mean/std must be finite and std non-zero (channel ", c, ")");
}

Layout layout(const double box[4], const Params& p) {
  Layout l{};
  const double cx = box[0] + box[2] * 0.5, cy = box[1] + box[3] * 0.5;
  const double hw = box[2] * p.context * 0.5, hh = box[3] * p.context * 0.5;
  l.x0 = int64_t(std::floor(cx - hw));
  l.x1 = int64_t(std::ceil(cx + hw));
  l.y0 = int64_t(std::floor(cy - hh));
  l.y1 = int64_t(std::ceil(cy + hh));
  if (l.x1 <= l.x0) l.x1 = l.x0 + 1;
  if (l.y1 <= l.y0) l.y1 = l.y0 + 1;
  const int64_t cw = l.x1 - l.x0, ch = l.y1 - l.y0;
  if (p.letterbox) {
    const double scale = double(p.size) / double(std::max(cw, ch));
    l.rw = uint32_t(std::min<int64_t>(p.size, std::max<int64_t>(1, int64_t(double(cw) * scale + 0.5))));
    l.rh = uint32_t(std::min<int64_t>(p.size, std::max<int64_t>(1, int64_t(double(ch) * scale + 0.5))));
    l.ox = (p.size - l.rw) / 2;
    l.oy = (p.size - l.rh) / 2;
  } else {
    l.rw = l.rh = p.size;
    l.ox = l.oy = 0;
  }
  return l;
}

namespace {

// cv2.resize INTER_LINEAR taps along one axis (source length n -> destination length m).
void linear_taps(int64_t n, uint32_t m, std::vector<int64_t>& i0, std::vector<int64_t>& i1, std::vector<float>& f) {
  i0.resize(m);
  i1.resize(m);
  f.resize(m);
  const double inv_scale = double(m) / double(n);
  const double scale = 1.0 / inv_scale;
  for (uint32_t d = 0; d < m; ++d) {
    float fx = float((d + 0.5) * scale - 0.5);
    int64_t s = int64_t(std::floor(fx));
    fx -= float(s);
    if (s < 0) {
      fx = 0.0f;
      s = 0;
    }
    if (s >= n - 1) {
      fx = 0.0f;
      s = n - 1;
    }
    i0[d] = s;
    i1[d] = std::min<int64_t>(s + 1, n - 1);
    f[d] = fx;
  }
}

// Distinct sorted values of a and b (both non-decreasing) and, for each tap, its slot.
void distinct_taps(const std::vector<int64_t>& a, const std::vector<int64_t>& b, std::vector<uint32_t>& values,
                   std::vector<uint32_t>& slot_of_tap) {
  values.clear();
  slot_of_tap.resize(a.size() * 2);
  std::vector<int64_t> all;
  all.reserve(a.size() * 2);
  all.insert(all.end(), a.begin(), a.end());
  all.insert(all.end(), b.begin(), b.end());
  std::vector<int64_t> sorted = all;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  for (int64_t v : sorted) values.push_back(uint32_t(v));
  for (size_t i = 0; i < all.size(); ++i)
    slot_of_tap[i] = uint32_t(std::lower_bound(sorted.begin(), sorted.end(), all[i]) - sorted.begin());
}

int reflect101(int64_t i, int64_t n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) {
    if (i < 0) i = -i;
    if (i >= n) i = 2 * n - 2 - i;
  }
  return int(i);
}

// cv2.GaussianBlur(src, (0, 0), sigma) on an h x w x 3 uint8 image, float accumulation, rounded.
void gaussian_blur(const uint8_t* src, uint32_t h, uint32_t w, double sigma, uint8_t* dst, std::vector<float>& tmp) {
  int ksize = int(std::lrint(sigma * 3 * 2 + 1)) | 1;
  std::vector<float> kern(ksize);
  {
    const double scale2 = -0.5 / (sigma * sigma);
    double sum = 0;
    std::vector<double> k(ksize);
    for (int i = 0; i < ksize; ++i) {
      const double x = i - (ksize - 1) * 0.5;
      k[i] = std::exp(scale2 * x * x);
      sum += k[i];
    }
    for (int i = 0; i < ksize; ++i) kern[i] = float(k[i] / sum);
  }
  const int r = ksize / 2;
  const size_t row_len = size_t(w) * 3;
  tmp.resize(size_t(h) * row_len + (size_t(w) + 2 * r) * 3);
  float* horiz = tmp.data();
  float* pad = tmp.data() + size_t(h) * row_len;
  for (uint32_t y = 0; y < h; ++y) {
    const uint8_t* row = src + size_t(y) * row_len;
    for (int64_t x = -r; x < int64_t(w) + r; ++x) {
      const int sx = reflect101(x, w);
      for (int c = 0; c < 3; ++c) pad[size_t(x + r) * 3 + c] = row[size_t(sx) * 3 + c];
    }
    float* out = horiz + size_t(y) * row_len;
    std::fill(out, out + row_len, 0.0f);
    for (int k = 0; k < ksize; ++k) {
      const float kv = kern[k];
      const float* in = pad + size_t(k) * 3;
      for (size_t i = 0; i < row_len; ++i) out[i] += kv * in[i];
    }
  }
  std::vector<float> acc(row_len);
  for (uint32_t y = 0; y < h; ++y) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int k = 0; k < ksize; ++k) {
      const float kv = kern[k];
      const float* in = horiz + size_t(reflect101(int64_t(y) + k - r, h)) * row_len;
      for (size_t i = 0; i < row_len; ++i) acc[i] += kv * in[i];
    }
    uint8_t* out = dst + size_t(y) * row_len;
    for (size_t i = 0; i < row_len; ++i) out[i] = uint8_t(std::min(255.0f, std::max(0.0f, acc[i] + 0.5f)));
  }
}

}  // namespace

void crop(const uint8_t* image, uint32_t h, uint32_t w, const double box[4], const rle::Counts* mask,
          const Params& p, float* out, Workspace& ws) {
  const Layout l = layout(box, p);
  const int64_t cw = l.x1 - l.x0, ch = l.y1 - l.y0;
  linear_taps(cw, l.rw, ws.xi0, ws.xi1, ws.xf);
  linear_taps(ch, l.rh, ws.yi0, ws.yi1, ws.yf);

  // 1) bilinear resize of the window, rounded to uint8 (pixels outside the image read as fill).
  ws.res.resize(size_t(l.rh) * l.rw * 3);
  auto pixel = [&](int64_t wy, int64_t wx, int c) -> float {
    const int64_t y = l.y0 + wy, x = l.x0 + wx;
    if (y < 0 || x < 0 || y >= int64_t(h) || x >= int64_t(w)) return float(p.fill[c]);
    return float(image[(size_t(y) * w + size_t(x)) * 3 + c]);
  };
  const bool inside = l.x0 >= 0 && l.y0 >= 0 && l.x1 <= int64_t(w) && l.y1 <= int64_t(h);
  for (uint32_t v = 0; v < l.rh; ++v) {
    const float fy = ws.yf[v], gy = 1.0f - fy;
    const int64_t ya = ws.yi0[v], yb = ws.yi1[v];
    uint8_t* dst = &ws.res[size_t(v) * l.rw * 3];
    for (uint32_t u = 0; u < l.rw; ++u) {
      const float fx = ws.xf[u], gx = 1.0f - fx;
      const int64_t xa = ws.xi0[u], xb = ws.xi1[u];
      for (int c = 0; c < 3; ++c) {
        float p00, p01, p10, p11;
        if (inside) {
          const uint8_t* ra = image + (size_t(l.y0 + ya) * w + size_t(l.x0)) * 3 + c;
          const uint8_t* rb = image + (size_t(l.y0 + yb) * w + size_t(l.x0)) * 3 + c;
          p00 = ra[xa * 3];
          p01 = ra[xb * 3];
          p10 = rb[xa * 3];
          p11 = rb[xb * 3];
        } else {
          p00 = pixel(ya, xa, c);
          p01 = pixel(ya, xb, c);
          p10 = pixel(yb, xa, c);
          p11 = pixel(yb, xb, c);
        }
        const float val = gy * (gx * p00 + fx * p01) + fy * (gx * p10 + fx * p11);
        dst[u * 3 + c] = uint8_t(std::min(255.0f, std::max(0.0f, val + 0.5f)));
      }
    }
  }

  // 2) soft mask at the same taps, sampled straight from the column-major runs.
  const bool use_mask = mask != nullptr && p.background != Background::kKeep;
  if (use_mask) {
    distinct_taps(ws.yi0, ws.yi1, ws.rows, ws.row_of_tap);
    distinct_taps(ws.xi0, ws.xi1, ws.cols, ws.col_of_tap);
    const size_t nr = ws.rows.size(), nc = ws.cols.size();
    ws.table.assign(nr * nc, 0);
    size_t run = 0;
    uint64_t run_end = mask->empty() ? 0 : (*mask)[0];
    uint8_t run_val = 0;
    for (size_t ci = 0; ci < nc; ++ci) {
      const int64_t x = l.x0 + ws.cols[ci];
      if (x < 0 || x >= int64_t(w)) continue;
      for (size_t ri = 0; ri < nr; ++ri) {
        const int64_t y = l.y0 + ws.rows[ri];
        if (y < 0 || y >= int64_t(h)) continue;
        const uint64_t idx = uint64_t(x) * h + uint64_t(y);
        while (run_end <= idx && run + 1 < mask->size()) {
          run_end += (*mask)[++run];
          run_val ^= 1;
        }
        ws.table[ci * nr + ri] = run_end > idx ? run_val : 0;
      }
    }
    ws.alpha.resize(size_t(l.rh) * l.rw);
    const uint32_t rh = l.rh, rw = l.rw;
    for (uint32_t v = 0; v < rh; ++v) {
      const float fy = ws.yf[v], gy = 1.0f - fy;
      const size_t ra = ws.row_of_tap[v], rb = ws.row_of_tap[rh + v];
      for (uint32_t u = 0; u < rw; ++u) {
        const float fx = ws.xf[u], gx = 1.0f - fx;
        const size_t ca = ws.col_of_tap[u], cb = ws.col_of_tap[rw + u];
        const float p00 = ws.table[ca * nr + ra], p01 = ws.table[cb * nr + ra];
        const float p10 = ws.table[ca * nr + rb], p11 = ws.table[cb * nr + rb];
        ws.alpha[size_t(v) * rw + u] = gy * (gx * p00 + fx * p01) + fy * (gx * p10 + fx * p11);
      }
    }
    if (p.background == Background::kBlur) {
      ws.blurred.resize(ws.res.size());
      gaussian_blur(ws.res.data(), l.rh, l.rw, p.blur_sigma, ws.blurred.data(), ws.tmp);
    }
  }

  // 3) compose on the canvas and normalise to channel-first float32.
  const uint32_t S = p.size;
  const size_t plane = size_t(S) * S;
  float fill_norm[3];
  for (int c = 0; c < 3; ++c) {
    fill_norm[c] = (float(p.fill[c]) / 255.0f - p.mean[c]) / p.std[c];
  }
  for (int c = 0; c < 3; ++c) {
    float* o = out + c * plane;
    for (uint32_t y = 0; y < S; ++y) {
      float* orow = o + size_t(y) * S;
      const bool row_in = y >= l.oy && y < l.oy + l.rh;
      for (uint32_t x = 0; x < S; ++x) {
        if (!row_in || x < l.ox || x >= l.ox + l.rw) {
          orow[x] = fill_norm[c];
          continue;
        }
        const size_t k = size_t(y - l.oy) * l.rw + (x - l.ox);
        float val = float(ws.res[k * 3 + c]);
        if (use_mask) {
          const float al = ws.alpha[k];
          const float bg = p.background == Background::kBlur ? float(ws.blurred[k * 3 + c]) : float(p.fill[c]);
          val = al * val + (1.0f - al) * bg;
        }
        orow[x] = (val / 255.0f - p.mean[c]) / p.std[c];
      }
    }
  }
}

}  // namespace gear::crops
