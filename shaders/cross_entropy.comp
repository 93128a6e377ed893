#version 450
// Cross-entropy forward with label smoothing, one workgroup per row (see src/ops/cross_entropy.h):
//   loss_b = (1 - eps) (lse - x_y) + eps (lse - mean_k x_k),  lse = m + log sum_k exp(x_k - m).
// Each lane keeps an online softmax (running max m and sum of exp(x - m), Milakov & Gimelshein
// 2018, "Online normalizer calculation for softmax"), the sum of its logits and its argmax over a
// strided slice of the row, so the row is read once; lanes are merged by a shared-memory tree in a
// fixed order, which makes the result reproducible bit for bit. WORKGROUP_SIZE must be a power of two.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) writeonly buffer Losses { float losses[]; };    // (B)
layout(set = 0, binding = 1) writeonly buffer Correct { float correct[]; };  // (B) 1.0 where argmax == label
layout(set = 0, binding = 2) writeonly buffer Lse { float lse[]; };          // (B) saved for backward
layout(set = 0, binding = 3) readonly buffer Logits { float logits[]; };     // (B, K)
layout(set = 0, binding = 4) readonly buffer Labels { uint labels[]; };      // (B)
// WITH_GRAD: also the gradient in the same pass over the row (the training step's loss):
//   dlogits += (exp(x - lse) - q) * dloss / B,  q_k = (1 - eps) [k == y] + eps / K.
// dloss is read from a buffer so a loss scale computed on the GPU needs no host round trip.
layout(constant_id = 1) const bool WITH_GRAD = false;
layout(set = 0, binding = 5) buffer DLogits { float dlogits[]; };           // (B, K), WITH_GRAD only
layout(set = 0, binding = 6) readonly buffer DLoss { float dloss[]; };      // (1), WITH_GRAD only
// MIXED (Mixup / CutMix, src/train/mixup.h): row b's target is lam_b smooth(y_b) + (1 - lam_b)
// smooth(labels_b[b]), and since the loss is linear in the target,
//   loss_b = (1 - eps) (lse - lam x_y - (1 - lam) x_yb) + eps (lse - mean_k x_k),
//   q_k = (1 - eps) (lam [k == y] + (1 - lam) [k == yb]) + eps / K.
// Without it the two bindings are never read and the code is the single-label form, bit for bit.
layout(constant_id = 2) const bool MIXED = false;
layout(set = 0, binding = 7) readonly buffer LabelsB { uint labels_b[]; };  // (B), MIXED only
layout(set = 0, binding = 8) readonly buffer Lam { float lam[]; };          // (B), MIXED only
layout(push_constant) uniform Push {
  uint rows;
  uint K;
  float eps;
  float inv_batch;  // 1 / B of the whole batch (WITH_GRAD)
} p;

shared float s_max[WORKGROUP_SIZE];
shared float s_sum[WORKGROUP_SIZE];   // sum of exp(x - s_max)
shared float s_xsum[WORKGROUP_SIZE];  // sum of x, for the smoothing term
shared float s_best[WORKGROUP_SIZE];
shared uint s_arg[WORKGROUP_SIZE];

#define NEG_INF uintBitsToFloat(0xff800000u)

void main() {
  uint row = linear_group_id();
  if (row >= p.rows) return;  // uniform over the workgroup: no barrier is skipped by some lanes only
  uint t = gl_LocalInvocationID.x;
  uint base = row * p.K;

  // A lane that sees no element keeps sum 0, which the merge below treats as "empty".
  float m = NEG_INF, s = 0.0, xs = 0.0, best = NEG_INF;
  uint arg = 0xffffffffu;
  for (uint k = t; k < p.K; k += WORKGROUP_SIZE) {
    float x = logits[base + k];
    xs += x;
    if (x > m) {
      s = s * exp(m - x) + 1.0;
      m = x;
    } else {
      s += exp(x - m);
    }
    if (x > best) {  // k grows within a lane, so the lane keeps its first maximum
      best = x;
      arg = k;
    }
  }
  s_max[t] = m;
  s_sum[t] = s;
  s_xsum[t] = xs;
  s_best[t] = best;
  s_arg[t] = arg;
  barrier();

  for (uint h = WORKGROUP_SIZE / 2; h > 0; h >>= 1) {
    if (t < h) {
      float m2 = s_max[t + h], s2 = s_sum[t + h];
      if (s2 != 0.0) {  // NaN sums are != 0 and propagate
        float m1 = s_max[t], s1 = s_sum[t];
        if (s1 == 0.0) {
          s_max[t] = m2;
          s_sum[t] = s2;
        } else {
          float mm = max(m1, m2);
          s_sum[t] = s1 * exp(m1 - mm) + s2 * exp(m2 - mm);
          s_max[t] = mm;
        }
      }
      s_xsum[t] += s_xsum[t + h];
      float b2 = s_best[t + h];
      uint a2 = s_arg[t + h];
      if (b2 > s_best[t] || (b2 == s_best[t] && a2 < s_arg[t])) {  // first index wins ties
        s_best[t] = b2;
        s_arg[t] = a2;
      }
    }
    barrier();
  }

  if (t == 0) {
    uint label = labels[row];
    uint y = min(label, p.K - 1);  // never read out of bounds; callers validate labels on the host
    float mx = s_max[0];
    float log_s = log(s_sum[0]);
    float x_y = logits[base + y];
    float mean_x = s_xsum[0] / float(p.K);
    // Both terms are >= 0; subtracting within the shifted frame keeps them accurate for large logits.
    if (MIXED) {
      const float w = lam[row];
      const float x_b = logits[base + min(labels_b[row], p.K - 1)];
      losses[row] = (1.0 - p.eps) * ((w * (mx - x_y) + (1.0 - w) * (mx - x_b)) + log_s) + p.eps * ((mx - mean_x) + log_s);
    } else {
      losses[row] = (1.0 - p.eps) * ((mx - x_y) + log_s) + p.eps * ((mx - mean_x) + log_s);
    }
    correct[row] = s_arg[0] == label ? 1.0 : 0.0;
    lse[row] = mx + log_s;
  }
  if (WITH_GRAD) {  // every lane has the merged row in shared memory since the last barrier
    const float row_lse = s_max[0] + log(s_sum[0]);  // the same float as lse[row]
    const uint y = min(labels[row], p.K - 1u);
    const float scale = dloss[0] * p.inv_batch;
    if (MIXED) {
      const uint yb = min(labels_b[row], p.K - 1u);
      const float w = lam[row];
      for (uint k = t; k < p.K; k += WORKGROUP_SIZE) {
        const float hot = (k == y ? w : 0.0) + (k == yb ? 1.0 - w : 0.0);
        const float q = (1.0 - p.eps) * hot + p.eps / float(p.K);
        dlogits[base + k] += (exp(logits[base + k] - row_lse) - q) * scale;
      }
    } else {
      for (uint k = t; k < p.K; k += WORKGROUP_SIZE) {
        const float q = (k == y ? 1.0 - p.eps : 0.0) + p.eps / float(p.K);
        dlogits[base + k] += (exp(logits[base + k] - row_lse) - q) * scale;
      }
    }
  }
}
