#version 450
// Softmax backward for short rows, one row per invocation (the short-row twin of
// shaders/softmax_backward.comp; see shaders/softmax_rows.comp for why):
//   dL/dx[c] = p[c] * (g[c] - sum_j g[j] p[j]).
// accumulate = 1 adds into din, 0 overwrites it; din may be dout (in place): each element is read
// and written by the same invocation.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) buffer DIn { float din[]; };               // (rows, cols)
layout(set = 0, binding = 1) readonly buffer Probs { float probs[]; };  // (rows, cols) forward output
layout(set = 0, binding = 2) readonly buffer DOut { float dout[]; };    // (rows, cols)
layout(push_constant) uniform Push {
  uint rows;
  uint cols;
  uint accumulate;
  uint din_base, probs_base, dout_base;  // floats from the start of each binding
} p;

void main() {
  uint row = global_index();
  if (row >= p.rows) return;
  uint r = row * p.cols, dib = r + p.din_base, pb = r + p.probs_base, dob = r + p.dout_base;

  float dot_gp = 0.0;
  for (uint c = 0; c < p.cols; ++c) dot_gp += dout[dob + c] * probs[pb + c];
  for (uint c = 0; c < p.cols; ++c) {
    float g = probs[pb + c] * (dout[dob + c] - dot_gp);
    din[dib + c] = p.accumulate != 0u ? din[dib + c] + g : g;
  }
}
