// Shared part of the fused attention kernels (common/attention_fused_{fwd,dq,dkv}.glsl;
// the math is in src/ops/attention.h). They never hold a B*H*N*N matrix: the forward keeps an
// online softmax per query row (Milakov & Gimelshein 2018; Dao et al. 2022, FlashAttention) and
// saves only the row log-sum-exp; the backward recomputes each probability from it.
//
// Shaped for lavapipe like the matmul (common/matmul_regblock.glsl, BENCHMARKS.md): one 8-lane
// workgroup = one subgroup = one SIMD vector, no shared memory. A lane owns one row (a query row
// in the forward and dQ kernels, a key row in the dK/dV kernel) and its vectors of HEAD_DIM floats
// live in registers. The other side's rows are fetched 8 at a time, one row per lane, as vec4
// loads, and subgroupShuffle hands each fetched row to all lanes: llvmpipe turns a storage load
// into a per-lane loop, so every lane loading the same row would cost 8 times as many loads, and
// it turns a shuffle into one permute but subgroupBroadcast into a loop over the exec mask.
// The 8 lanes must be one subgroup (a shuffle reaches only its own subgroup): the launcher pins
// the subgroup size to 8, or 16 where that is the smallest (the workgroup then fills half of one),
// and never runs these kernels on a device of 4-lane subgroups (ops::eight_lane_unsupported).
// HEAD_DIM is a compile-time #define (one variant per head width) so every loop over it unrolls and
// the vectors stay in registers; lavapipe does not unroll loops sized by spec constants.
//
// Rows are grouped per (image b, head h) = z = b * H + h. A workgroup handles HEADS_PER_GROUP
// consecutive heads and all row chunks of each: with few tokens (17 for Fashion-MNIST) a head is
// a few thousand FMAs, and lavapipe's fixed cost per workgroup would otherwise dominate.
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "wide.glsl"

#define LANES 8u
#define HV (HEAD_DIM / 4u)  // vec4s per head row

layout(local_size_x = 8) in;
layout(constant_id = 0) const uint UNUSED_LANES = 8;  // the launcher's spec-constant layout
layout(constant_id = 1) const uint HEADS_PER_GROUP = 1;
// Rows of the other side in a chunk that can be real: min(N, LANES), set by the launcher. The
// loops over a chunk's rows are unrolled with every step under `if (t < CHUNK_ROWS)`, which folds
// at pipeline creation: with few tokens (the Fashion-MNIST demo's 5) the masked rows' dot products,
// exponentials and shuffles are dropped instead of computed and discarded (on llvmpipe an `if`
// does not branch, so a runtime test would not save them).
layout(constant_id = 2) const uint CHUNK_ROWS = LANES;
// The vec4 rows of qkv, out, dout and dqkv read and written as two 64-bit components (wide.glsl:
// half the per-lane work of a storage access on llvmpipe); the launcher sets it where shaderInt64
// is on (the views are 16-byte aligned already). Each kernel declares such a buffer twice, as
// vec4 name_[] and wide4 name8[], and reaches it through LOAD4 / STORE4.
#ifdef WIDE_MODULE
layout(constant_id = 3) const bool WIDE = false;
#else
const bool WIDE = false;  // the plain module has no 64-bit pairs (wide.glsl)
#endif
#define LOAD4(name, i) (WIDE ? unpack4(name##8[i]) : name##_[i])
#define STORE4(name, i, v) \
  if (WIDE) name##8[i] = pack4(v); \
  else name##_[i] = (v)

// Offsets are in vec4 for the vec4 bindings, in floats for the per-row float bindings.
layout(push_constant) uniform Push {
  uint heads;  // B * H in this dispatch
  uint N;      // tokens
  uint H;      // heads per image
  uint D;      // model width: qkv rows are 3D floats, out rows D
  float scale; // 1 / sqrt(HEAD_DIM)
  uint row_blocks;      // workgroups per head group: the outer rows are split into blocks
  uint rows_per_block;  // a multiple of LANES
} p;

// Scores of masked keys (past N in the last chunk): exp() of them minus any real score is 0.
const float kMasked = -1.0e30;

// Vec4 offset of row `token` of q (part 0), k (1) or v (2) of head h of image b inside qkv.
uint qkv_row(uint b, uint h, uint token, uint part) {
  return ((b * p.N + token) * 3u * p.D + part * p.D + h * HEAD_DIM) / 4u;
}
// Vec4 offset of row `token` of head h of image b inside a (B, N, D) tensor (out, dout).
uint out_row(uint b, uint h, uint token) { return ((b * p.N + token) * p.D + h * HEAD_DIM) / 4u; }

// Launchers fold more than maxComputeWorkGroupCount[0] workgroups into y.
uint group_index() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }

// The heads and outer rows of this workgroup: calls the kernel's head(b, h, z, first, last) for
// each head with the outer rows [first, last) of its block. Long sequences split a head's rows
// over several workgroups: one workgroup running a whole 2049-token head (seconds on lavapipe)
// left its last rows unwritten, and shorter workgroups also spread few heads over more cores.
#define FOR_EACH_HEAD(fn)                                                       \
  void main() {                                                                 \
    const uint block = group_index() % p.row_blocks;                            \
    const uint first = (group_index() / p.row_blocks) * HEADS_PER_GROUP;        \
    const uint row_first = block * p.rows_per_block;                            \
    const uint row_last = min(p.N, row_first + p.rows_per_block);               \
    for (uint zz = 0; zz < HEADS_PER_GROUP; ++zz) {                             \
      const uint z = first + zz;                                                \
      if (z >= p.heads) return;                                                 \
      fn(z / p.H, z % p.H, z, row_first, row_last);                             \
    }                                                                           \
  }

