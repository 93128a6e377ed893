// The launcher that ops::matmul (fp32) and ops::matmul_f16 (fp16 storage) share: binds each
// operand to the smallest aligned range, splits calls whose operands would not fit one
// storage-buffer binding (maxStorageBufferRange) or whose workgroup counts exceed the device's,
// runs long K as accumulated chunks, and fills the push block and spec constants. The public
// functions only choose a MatmulPolicy: the shader, its workgroup shape and element sizes.
//
// Every offset, leading dimension and stride counts elements of the operand's own type, so the
// fp32 path (4-byte elements everywhere) and the fp16 path (2-byte A and B) run the same code.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "ops/matmul.h"
#include "vk/memory.h"
#include "vk/pipeline.h"
#include "vk/recorder.h"

namespace vkvit::ops::matmul_detail {

// Mirrored by the push blocks of shaders/common/matmul_common.glsl and common/matmul_f16.glsl.
struct MatmulPush {
  uint32_t M, N, K;
  uint32_t lda, ldb, ldc;
  uint32_t batch_inner;
  uint32_t a_outer, a_inner, b_outer, b_inner, c_outer, c_inner;
  float alpha, beta;
  uint32_t flags;  // bit 0 trans_a, bit 1 trans_b (fp32 kernels only), bit 2 has_bias
  uint32_t a_base, b_base, c_base, bias_base;  // elements from the start of each binding
  uint32_t batch;                              // batch entries of this dispatch
  uint32_t aux_base;                           // the epilogue operand's start in its binding
};
static_assert(sizeof(MatmulPush) == 88);

// Split points are multiples of this many rows/columns/k, so a sub-call keeps the vector-load
// alignment of the whole call (offsets stay multiples of 4 floats or 8 halves).
constexpr uint32_t kSplitQuantum = 64;

// register_blocked: a workgroup streams a K x (8 * TN) strip of B and a K x TM strip of A; for
// long K the strips no longer stay in this machine's 1.25 MiB L2 while consecutive workgroups
// reuse them, so products with K above kKSplitAbove (dW = dY^T X over all tokens) run as kKChunk
// pieces accumulated with beta = 1 (BENCHMARKS.md, "matmul (lavapipe)"). The fp16
// kernels keep the same chunk. VKVIT_MATMUL_KCHUNK overrides the chunk (0 disables).
constexpr uint32_t kKChunk = 512;  // a multiple of kSplitQuantum
constexpr uint32_t kKSplitAbove = 2048;

// Small batched products (attention's 17 x 17 x 16 per head): M and N at most kSmallProductRows
// take the small register block, and entries cheaper than kSmallEntryFlops share workgroups,
// kSmallBatchPerGroup at a time, so lavapipe's fixed cost per workgroup is paid once per several
// heads (BENCHMARKS.md, "small shapes").
constexpr uint32_t kSmallProductRows = 32;
constexpr uint32_t kSmallEntryFlops = 1u << 17;
constexpr uint32_t kSmallBatchPerGroup = 8;

inline bool small_product(const MatmulShape& s) { return s.M <= kSmallProductRows && s.N <= kSmallProductRows; }
inline uint32_t small_batch_per_group(const MatmulShape& s) {
  const uint64_t entry_flops = 2ull * s.M * s.N * s.K;
  return s.batch > 1 && entry_flops < kSmallEntryFlops ? kSmallBatchPerGroup : 1;
}

// The tiled (GPU) kernels' tile: BM x BN outputs per workgroup, BK-deep slices in shared memory,
// TM x TN outputs per invocation; chosen from the device's limits, Tuning::matmul_tile overrides
// (the kernel choice, ops/kernel_choice.cpp). Shared by the fp32 and fp16 tiled kernels.
struct TiledTile {
  uint32_t bm = 64, bn = 64, bk = 16, tm = 4, tn = 4;
  uint32_t threads() const { return (bm / tm) * (bn / tn); }
};

// The specialization constants of the matmul kernels, one struct per kernel family; the launcher
// fills them per call.

// Every kernel's, after its own: common/matmul_result_spec.glsl's layout(constant_id = 9) READS_C
// and layout(constant_id = 10) HAS_BIAS.
struct MatmulResultSpec {
  vk::SpecField<9, bool> reads_c;
  vk::SpecField<10, bool> has_bias;
  vk::SpecConstants to_spec() const { return vk::SpecConstants(reads_c, has_bias); }
};

// The constants both register-blocked kernels share (common/matmul_f16.glsl declares the fp32
// kernel's layout on purpose): layout(constant_id = 0) UNUSED_LANES, (constant_id = 1) TRANS_A,
// (2) TRANS_B, (3) VEC_A, (4) VEC_B, (5) BATCH_PER_GROUP, and common/matmul_result_spec.glsl's.
// The fp16 kernel has exactly these.
struct RegisterBlockedF16Spec {
  vk::SpecField<0, uint32_t> unused_lanes{8};
  vk::SpecField<1, bool> trans_a;
  vk::SpecField<2, bool> trans_b;
  vk::SpecField<3, bool> vec_a;
  vk::SpecField<4, bool> vec_b;
  vk::SpecField<5, uint32_t> batch_per_group{1};
  MatmulResultSpec result;
  vk::SpecConstants to_spec() const {
    return vk::SpecConstants(unused_lanes, trans_a, trans_b, vec_a, vec_b, batch_per_group).add(result);
  }
};

// The fp32 register-blocked kernel, common/matmul_regblock.glsl: the shared constants above, then
// (constant_id = 6) WIDE_LOADS, (7) WIDE_STORES and common/matmul_epilogue.glsl's (8) EPILOGUE.
struct RegisterBlockedSpec : RegisterBlockedF16Spec {
  vk::SpecField<6, bool> wide_loads;
  vk::SpecField<7, bool> wide_stores;
  vk::SpecField<8, uint32_t> epilogue;  // a MatmulEpilogue
  vk::SpecConstants to_spec() const {
    return RegisterBlockedF16Spec::to_spec().add(vk::SpecConstants(wide_loads, wide_stores, epilogue));
  }
};

// The tiled kernels, common/matmul_tiled.glsl: layout(constant_id = 0) THREADS, (constant_id = 1)
// BM, (2) BN, (3) BK, (4) TM, (5) TN, (6) TRANS_A, (7) TRANS_B; and common/matmul_epilogue.glsl's
// (constant_id = 8) EPILOGUE in the builds that fuse epilogues.
struct TiledSpec {
  vk::SpecField<0, uint32_t> threads;
  vk::SpecField<1, uint32_t> bm;
  vk::SpecField<2, uint32_t> bn;
  vk::SpecField<3, uint32_t> bk;
  vk::SpecField<4, uint32_t> tm;
  vk::SpecField<5, uint32_t> tn;
  vk::SpecField<6, bool> trans_a;
  vk::SpecField<7, bool> trans_b;
  vk::SpecField<8, uint32_t> epilogue;  // a MatmulEpilogue
  MatmulResultSpec result;
  vk::SpecConstants to_spec() const {
    return vk::SpecConstants(threads, bm, bn, bk, tm, tn, trans_a, trans_b, epilogue).add(result);
  }
};

// What one kernel configuration needs from the launcher.
struct MatmulPolicy {
  const char* name = "matmul";  // errors and the dispatch label
  vk::ShaderId shader{};
  // Which of the spec-constant structs above the kernel takes (naive: the result constants only).
  enum class Spec { naive, register_blocked, register_blocked_f16, tiled } spec = Spec::naive;
  TiledTile tile;  // Spec::tiled: the tile
  uint32_t a_size = 4, b_size = 4, c_size = 4;  // bytes per element of A, B, C (the bias is fp32)
  // fp16 views may start at any even byte, so those launches check each view's start against its
  // element size and report sizes in bytes; fp32 views are whole floats by construction.
  bool byte_views = false;
  uint32_t rows_per_group = 1;   // M per workgroup
  uint32_t cols_per_group = 1;   // N per workgroup
  uint32_t batch_per_group = 1;  // batch entries per workgroup (z)
  bool x_walks_n = false;        // naive: workgroup x walks N and y walks M (else x walks M)
  bool trans_flags = false;      // push flags carry trans_a / trans_b (the fp32 kernels read them)
  uint32_t vec_width = 0;  // elements per vector load (VEC_A, VEC_B); 0: the kernel has no vector loads
  bool vec_a_trans = true;  // the register block allows vector loads of A stored (K, M)
  bool vec_b_nn = true;     // the register block allows vector loads of B stored (K, N)
  bool wide_loads = false;  // Spec::register_blocked: WIDE_LOADS
  // Spec::register_blocked: WIDE_STORES (C stored four floats at a time), set per call where C's
  // base, ldc, N and batch strides are multiples of 4 (the kernel also needs its columns per lane
  // to be a multiple of 4).
  bool wide_stores = false;
  // The kernel has the epilogue binding (4) and EPILOGUE constant: the MatmulEpilogue kinds fused
  // into its stores. Kernels without it take none.
  bool epilogue = false;
  // The same kernel reading A and B as RGBA32F texel buffers, run instead where both take vector
  // loads; none: no such variant.
  std::optional<vk::ShaderId> texel_shader;
  uint32_t k_chunk = 0;  // K above max(kKSplitAbove, k_chunk) runs as k_chunk pieces; 0: never
  vk::SubgroupPin subgroup_pin;  // the register-blocked kernels: eight_lane_pin (matmul.h)
};

// False when `s` computes nothing (M, N or batch 0); throws vkvit::Error when batch is not a
// multiple of batch_inner. `name` prefixes the message.
bool has_work(const MatmulShape& s, const char* name);

// c, a, b, bias as ops::matmul takes them, `s` passed has_work.
// aux: the epilogue's operand (s.epilogue != none; C's layout, or (M) for row_sums), else empty.
void launch_matmul(vk::Recorder& rec, const vk::View& c, const vk::View& a, const vk::View& b, const vk::View& bias,
                   const MatmulShape& s, const MatmulPolicy& policy, const vk::View& aux = {});

}  // namespace vkvit::ops::matmul_detail
