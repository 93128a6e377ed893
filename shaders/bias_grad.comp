#version 450
// Bias gradient: db[n] += sum over rows m of dy[m, n] (the backward of adding a bias to every row).
// Two-level, deterministic reduction without atomics. A workgroup owns TILE_N consecutive column
// groups (constant_id 1) of VEC columns each (constant_id 2: 4 reads vec4, needs N % 4 == 0; 1
// reads floats) and has WORKGROUP_SIZE / TILE_N row lanes: level 1, each invocation sums its
// columns over rows lane, lane + lanes, ...; level 2, the lanes' partials are added from shared
// memory in lane order. Neighbouring invocations read neighbouring columns of the same row, so
// loads are contiguous; the row lanes give each column several invocations of parallelism.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(constant_id = 1) const uint TILE_N = 32;
layout(constant_id = 2) const uint VEC = 1;

layout(set = 0, binding = 0) buffer DB { float db[]; };              // (N)
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };     // (M, N)
layout(set = 0, binding = 1) readonly buffer DY4 { vec4 dy4[]; };    // (M, N / 4), the same memory
layout(push_constant) uniform Push { uint M; uint N; } p;

shared vec4 lane_partials[256];  // (row lanes, TILE_N); the launcher keeps WORKGROUP_SIZE <= 256

vec4 load(uint r, uint c) {
  if (VEC == 4u) return dy4[r * (p.N / 4u) + c];
  return vec4(dy[r * p.N + c], 0.0, 0.0, 0.0);
}

void main() {
  uint tid = gl_LocalInvocationID.x;
  uint lanes = WORKGROUP_SIZE / TILE_N;
  uint cols = p.N / VEC;  // column groups
  uint col = linear_group_id() * TILE_N + tid % TILE_N;
  uint lane = tid / TILE_N;
  vec4 acc = vec4(0.0);
  if (col < cols) {
    // Two independent accumulators halve the dependency chain of the long row loop.
    vec4 acc2 = vec4(0.0);
    uint r = lane;
    for (; r + lanes < p.M; r += 2u * lanes) {
      acc += load(r, col);
      acc2 += load(r + lanes, col);
    }
    if (r < p.M) acc += load(r, col);
    acc += acc2;
  }
  lane_partials[tid] = acc;
  memoryBarrierShared();
  barrier();
  if (lane == 0u && col < cols) {
    vec4 total = vec4(0.0);
    for (uint l = 0u; l < lanes; ++l) total += lane_partials[l * TILE_N + tid];
    for (uint v = 0u; v < VEC; ++v) db[col * VEC + v] += total[v];
  }
}
