// Fused post-processing of SAM-family low-resolution mask logits.
//
// For each logit map (lr_h x lr_w float32) it computes, at the output resolution and without
// materialising the up-sampled float map: the COCO RLE of `upsampled > mask_threshold`, the
// stability score (IoU of the masks at threshold +/- offset, as sam2 computes it), the area and
// the XYWH box. Up-sampling is bilinear with torch.nn.functional.interpolate(mode="bilinear",
// align_corners=False) arithmetic, in float32, in the same order of operations.
#pragma once

#include <cstdint>
#include <vector>

#include "rle.hpp"

namespace gear::post {

enum class Convention {
  kSam2,  // logits -> (out_h, out_w) in one bilinear resize (sam2's SAM2Transforms)
  kSam1,  // logits -> (input, input), crop to the resized image, -> (out_h, out_w) (segment-anything)
};

struct Params {
  uint32_t lr_h = 256, lr_w = 256;  // low-resolution logits size
  uint32_t input_size = 1024;       // model input side (used by kSam1)
  uint32_t out_h = 0, out_w = 0;    // resolution the mask is thresholded at (image or crop)
  Convention convention = Convention::kSam2;
  double mask_threshold = 0.0;
  double stability_offset = 1.0;
  // The out_h x out_w mask is pasted at (off_x, off_y) into a canvas_h x canvas_w zero canvas
  // (SAM's "uncrop"); by default canvas == output.
  uint32_t canvas_h = 0, canvas_w = 0, off_x = 0, off_y = 0;
};

struct MaskStats {
  rle::Counts counts;      // canvas-sized RLE
  uint64_t area = 0;       // pixels > mask_threshold
  uint64_t above_hi = 0;   // pixels > mask_threshold + offset
  uint64_t above_lo = 0;   // pixels > mask_threshold - offset
  float stability = 1.0f;  // above_hi / above_lo (1 when above_lo == 0), float32 as in sam2
  double box[4] = {0, 0, 0, 0};  // XYWH in canvas pixels
};

// Precomputed, shareable resampling plan for one call (all masks share sizes).
class Plan {
 public:
  explicit Plan(const Params& p);  // validates p (throws InputError)
  const Params& params() const { return p_; }

  struct Axis {  // one bilinear stage along one axis: out index -> two taps and weights
    std::vector<uint32_t> i0, i1;
    std::vector<float> w0, w1;
  };
  struct Group {  // output rows (or columns) that share the same two source taps
    uint32_t r0, r1, y_begin, y_end;
  };

  Params p_;
  uint32_t src_h = 0;        // length of the source column of the final vertical stage
  Axis col_first;            // output column -> low-res columns (kSam2) / intermediate columns (kSam1)
  Axis col_inner, row_inner; // kSam1 only: intermediate column/row -> low-res column/row
  Axis row_final;            // output row -> source column entries
  std::vector<Group> groups;      // row groups of row_final
  std::vector<Group> col_groups;  // column groups of col_first
  float thr = 0, thr_hi = 0, thr_lo = 0, thr_min = 0, thr_max = 0;
};

// Per-thread scratch buffers.
struct Workspace {
  std::vector<float> lt;              // transposed logits (lr_w x lr_h)
  std::vector<float> src;             // source column for the current output column
  std::vector<float> low;             // kSam1: low-res column combination
  std::vector<float> inter_a, inter_b;  // kSam1: cached intermediate columns
  int64_t inter_a_idx = -1, inter_b_idx = -1;
  std::vector<uint8_t> cell_class;  // kSam2: per low-res 2x2 cell: 0 below, 1 above all thresholds, 2 mixed
  struct Run {
    uint8_t cls;
    uint32_t y_begin, y_end, group;
  };
  std::vector<Run> runs;  // kSam2: class runs down one column group
};

// `logits` points at one lr_h x lr_w row-major float32 map.
void process(const float* logits, const Plan& plan, MaskStats& out, Workspace& ws);

// PyTorch's bilinear (align_corners=False) taps for resizing `in` samples to `out`.
Plan::Axis linear_axis(uint32_t in, uint32_t out);

// segment-anything's ResizeLongestSide.get_preprocess_shape: the (h, w) of the image inside
// the model input.
void longest_side_shape(uint32_t h, uint32_t w, uint32_t side, uint32_t& out_h, uint32_t& out_w);

}  // namespace gear::post
