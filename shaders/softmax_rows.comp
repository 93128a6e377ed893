#version 450
// Softmax over the last axis for short rows, one row per invocation (see src/ops/softmax.h).
// Attention over few tokens (Fashion-MNIST: 17) has many rows of a few columns; one workgroup
// per row then leaves most lanes idle and pays lavapipe's per-workgroup cost once per row, so
// the launcher picks this shader when the row is short. The math is shaders/softmax.comp's:
// an online (max, sum) pass, max-subtracted, then a pass that writes. Each element is read and
// written by the same invocation, so out == in (in place) is safe.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) writeonly buffer Out { float out_[]; };  // (rows, cols)
layout(set = 0, binding = 1) readonly buffer In { float in_[]; };     // (rows, cols)
layout(push_constant) uniform Push {
  uint rows;
  uint cols;
  uint out_base, in_base;  // floats from the start of each binding (bindings start aligned down)
} p;

void main() {
  uint row = global_index();
  if (row >= p.rows) return;  // no barriers below
  uint base = row * p.cols + p.in_base, obase = row * p.cols + p.out_base;

  // Branch-free online update (lanes hold different rows, so a data-dependent branch would run
  // both sides anyway). Starts from the first element, so no sentinel is needed.
  float m = in_[base], s = 1.0;
  for (uint c = 1; c < p.cols; ++c) {
    float x = in_[base + c];
    float mn = max(m, x);
    s = s * exp(m - mn) + exp(x - mn);
    m = mn;
  }
  float inv_sum = 1.0 / s;
  for (uint c = 0; c < p.cols; ++c) out_[obase + c] = exp(in_[base + c] - m) * inv_sum;
}
