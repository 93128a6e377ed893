// Workgroup reductions for the row-wise softmax shaders (one workgroup per row). Each subgroup
// reduces with subgroup arithmetic, its elected lane writes one partial to shared memory, and every
// lane then folds the gl_NumSubgroups partials in the same order, so all lanes of the row hold the
// same, reproducible value. Nothing assumes the subgroup size: lavapipe runs 8 lanes, GPUs 32 or 64.
// Include after index.glsl (WORKGROUP_SIZE bounds the number of subgroups). Each function uses the
// shared arrays once: a shader calls at most one of them, once, from uniform control flow.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

shared float reduce_a[WORKGROUP_SIZE];
shared float reduce_b[WORKGROUP_SIZE];

// Lowest finite float: the running max of a lane that saw no element. Finite, so exp(m - M) of two
// empty lanes is exp(0) * 0 = 0 rather than the NaN that -inf - -inf would give.
const float SOFTMAX_LOWEST = -3.402823466e38;

// Sum of x over the workgroup.
float workgroup_sum(float x) {
  float s = subgroupAdd(x);
  if (subgroupElect()) reduce_a[gl_SubgroupID] = s;
  barrier();
  float total = 0.0;
  for (uint i = 0; i < gl_NumSubgroups; ++i) total += reduce_a[i];
  return total;
}

// Merges per-lane online-softmax states (m = running max, s = sum of exp(x - m)) into the row's
// (max, sum of exp(x - max)); Milakov & Gimelshein 2018, "Online normalizer calculation for softmax".
vec2 workgroup_softmax_stats(float m, float s) {
  float sub_m = subgroupMax(m);
  float sub_s = subgroupAdd(s * exp(m - sub_m));
  if (subgroupElect()) {
    reduce_a[gl_SubgroupID] = sub_m;
    reduce_b[gl_SubgroupID] = sub_s;
  }
  barrier();
  float row_m = SOFTMAX_LOWEST;
  for (uint i = 0; i < gl_NumSubgroups; ++i) row_m = max(row_m, reduce_a[i]);
  float row_s = 0.0;
  for (uint i = 0; i < gl_NumSubgroups; ++i) row_s += reduce_b[i] * exp(reduce_a[i] - row_m);
  return vec2(row_m, row_s);
}
