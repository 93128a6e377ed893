#version 450
// Softmax over the last axis, one workgroup per row (see src/ops/softmax.h):
//   out[r, c] = exp(x[r, c] - max_c x[r, :]) / sum_c exp(x[r, c] - max_c x[r, :]).
// Subtracting the row max keeps exp from overflowing (PyTorch's softmax does the same). Each lane
// keeps an online (max, sum) over a strided slice of the row, so the row is read twice: once for
// the statistics, once to write. Every element is read and written by the same lane, which makes
// out == in (in place, as attention uses it) safe.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"
#include "softmax_reduce.glsl"

layout(set = 0, binding = 0) writeonly buffer Out { float out_[]; };  // (rows, cols)
layout(set = 0, binding = 1) readonly buffer In { float in_[]; };     // (rows, cols)
layout(push_constant) uniform Push {
  uint rows;
  uint cols;
  uint out_base, in_base;  // floats from the start of each binding (bindings start aligned down)
} p;

void main() {
  uint row = linear_group_id();
  if (row >= p.rows) return;  // uniform over the workgroup: no lane skips the barrier alone
  uint base = row * p.cols + p.in_base, obase = row * p.cols + p.out_base;

  float m = SOFTMAX_LOWEST, s = 0.0;
  for (uint c = gl_LocalInvocationID.x; c < p.cols; c += WORKGROUP_SIZE) {
    float x = in_[base + c];
    if (x > m) {
      s = s * exp(m - x) + 1.0;
      m = x;
    } else {
      s += exp(x - m);
    }
  }
  vec2 stats = workgroup_softmax_stats(m, s);
  float inv_sum = 1.0 / stats.y;
  for (uint c = gl_LocalInvocationID.x; c < p.cols; c += WORKGROUP_SIZE)
    out_[obase + c] = exp(in_[base + c] - stats.x) * inv_sum;
}
