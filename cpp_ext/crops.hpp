// Batched region crops for region encoders (captioners, embedders).
//
// For one region (box XYWH, optional RLE mask) of an H x W x 3 uint8 RGB image:
//  1. window: the box scaled by `context` about its centre, rounded outward to whole pixels
//     (x0 = floor, x1 = ceil; at least 1 x 1); pixels outside the image read as `fill`.
//  2. resize the window to rw x rh with bilinear interpolation, cv2.INTER_LINEAR semantics
//     (half-pixel centres, edge clamp), rounded to uint8 like cv2 does. With `letterbox`,
//     rw, rh = round(window * size / max(window side)) and the result is centred on a size x size
//     canvas of `fill`; otherwise it is stretched to size x size.
//  3. with a mask: alpha = the window's 0/1 mask resized the same way (float, no rounding);
//     pixels become alpha * crop + (1 - alpha) * background, background being `fill`
//     (kConstant) or the resized crop Gaussian-blurred with `blur_sigma` (kBlur; kernel size and
//     BORDER_REFLECT_101 as cv2.GaussianBlur(..., (0, 0), sigma) on uint8, result rounded).
//  4. out[c, y, x] = (value / 255 - mean[c]) / std[c], float32, channel-first.
#pragma once

#include <cstdint>
#include <vector>

#include "rle.hpp"

namespace gear::crops {

enum class Background { kKeep, kConstant, kBlur };

struct Params {
  uint32_t size = 224;
  double context = 1.0;
  bool letterbox = true;
  Background background = Background::kKeep;
  uint8_t fill[3] = {124, 116, 104};
  double blur_sigma = 4.0;
  float mean[3] = {0.485f, 0.456f, 0.406f};
  float std[3] = {0.229f, 0.224f, 0.225f};
};

// Integer crop window and placement for one box (exposed so the Python reference and tests
// share the exact same geometry).
struct Layout {
  int64_t x0, y0, x1, y1;  // window in image pixels, [x0, x1) x [y0, y1)
  uint32_t rw, rh;         // resized content size
  uint32_t ox, oy;         // content offset on the size x size canvas
};
Layout layout(const double box[4], const Params& p);

struct Workspace {
  std::vector<int64_t> xi0, xi1, yi0, yi1;  // tap indices (window coords)
  std::vector<float> xf, yf;                // tap fractions
  std::vector<uint8_t> res;                 // resized crop, rh x rw x 3
  std::vector<float> alpha;                 // rh x rw
  std::vector<uint8_t> blurred;             // rh x rw x 3
  std::vector<float> tmp;                   // blur scratch
  std::vector<uint32_t> rows, cols, row_of_tap, col_of_tap;
  std::vector<uint8_t> table;               // mask samples at (needed rows x needed cols)
};

void validate(const Params& p);  // throws InputError

// image: H x W x 3 row-major; mask: counts of an H x W RLE or nullptr; out: 3 x size x size.
void crop(const uint8_t* image, uint32_t h, uint32_t w, const double box[4], const rle::Counts* mask,
          const Params& p, float* out, Workspace& ws);

}  // namespace gear::crops
