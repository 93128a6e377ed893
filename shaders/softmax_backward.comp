#version 450
// Softmax backward over the last axis, one workgroup per row (see src/ops/softmax.h). With
// p = softmax(x) and g = dL/dp, the vector-Jacobian product is
//   dL/dx[c] = p[c] * (g[c] - sum_j g[j] p[j])
// (the Jacobian is diag(p) - p p^T). accumulate = 1 adds into din (the llm.c convention);
// accumulate = 0 overwrites it, which lets attention turn dP into dS in place (din == dout):
// every element is read and written by the same lane.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"
#include "softmax_reduce.glsl"

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
  uint row = linear_group_id();
  if (row >= p.rows) return;  // uniform over the workgroup
  uint r = row * p.cols, dib = r + p.din_base, pb = r + p.probs_base, dob = r + p.dout_base;

  float partial = 0.0;
  for (uint c = gl_LocalInvocationID.x; c < p.cols; c += WORKGROUP_SIZE)
    partial += dout[dob + c] * probs[pb + c];
  float dot_gp = workgroup_sum(partial);

  for (uint c = gl_LocalInvocationID.x; c < p.cols; c += WORKGROUP_SIZE) {
    float g = probs[pb + c] * (dout[dob + c] - dot_gp);
    din[dib + c] = p.accumulate != 0u ? din[dib + c] + g : g;
  }
}
