#version 450
// Cross-entropy backward (accumulates), one invocation per logit:
//   dlogits[b, k] += (exp(x[b, k] - lse[b]) - q_k) * dloss / B,   q_k = (1 - eps) [k == y_b] + eps / K.
// lse comes from the forward, so each element needs no reduction. dloss is read from a buffer so a
// loss scale computed on the GPU can be applied without a host round trip.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) buffer DLogits { float dlogits[]; };         // (B, K)
layout(set = 0, binding = 1) readonly buffer Lse { float lse[]; };        // (B)
layout(set = 0, binding = 2) readonly buffer Logits { float logits[]; };  // (B, K)
layout(set = 0, binding = 3) readonly buffer Labels { uint labels[]; };   // (B)
layout(set = 0, binding = 4) readonly buffer DLoss { float dloss[]; };    // (1)
layout(push_constant) uniform Push {
  uint rows;
  uint K;
  float eps;
  float inv_batch;  // 1 / B of the whole batch
} p;

void main() {
  uint i = global_index();
  if (i >= p.rows * p.K) return;
  uint row = i / p.K;
  uint k = i - row * p.K;
  uint y = min(labels[row], p.K - 1);  // never out of bounds; callers validate labels on the host
  float q = (k == y ? 1.0 - p.eps : 0.0) + p.eps / float(p.K);
  float prob = exp(logits[i] - lse[row]);
  dlogits[i] += (prob - q) * (dloss[0] * p.inv_batch);
}
