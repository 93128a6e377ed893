// Every tuning knob of the kernels, the model and the training loop, in one struct that the
// vk::Context carries (ContextOptions::tuning): ops and the model read ctx.tuning(), tests set it
// (Context::tuning_for_tests). Users set the knobs through VKVIT_* environment variables, which
// Tuning::from_env() reads once, at start-up (README, "Using it", lists them all). A knob whose
// default depends on the device or the shape holds "automatic" here and the op decides.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace vkvit::vk {

// Which attention kernels the model's attention blocks run.
enum class AttentionPath {
  automatic,  // fused on CPU drivers where the head width has a fused kernel, else unfused
  fused,      // one kernel per pass that keeps only the row log-sum-exp (head widths 16, 32, 64)
  unfused,    // matmul + softmax, keeping the probabilities
};

// A tiled-matmul workgroup tile: BM x BN outputs, K in BK-deep slices (matmul_launch.h, TiledTile).
struct MatmulTile {
  uint32_t bm = 0, bn = 0, bk = 0;
};

struct Tuning {
  // --- fp32 and fp16 matmuls (src/ops/matmul*.cpp)
  // The fp32 kernel: naive, register_blocked (or its older name lavapipe), tiled or auto (default:
  // register_blocked on CPU drivers, tiled on GPUs; ops::parse_matmul_kernel); the fp16 matmul
  // follows it. VKVIT_MATMUL_KERNEL.
  std::string matmul_kernel = "auto";
  // The tiled kernel's tile (default: 64x64x16 where the device allows, else 32x32x8). VKVIT_MATMUL_TILE.
  std::optional<MatmulTile> matmul_tile;
  // The register-blocked kernel's block, TM rows x lanes*TN columns (8 or 4 lanes) (default: per shape). VKVIT_MATMUL_TM, VKVIT_MATMUL_TN.
  std::optional<uint32_t> matmul_tm, matmul_tn;
  // Batch entries per register-blocked workgroup, at least 1 (default: per shape). VKVIT_MATMUL_BATCH_PER_GROUP.
  std::optional<uint32_t> matmul_batch_per_group;
  // The fp16 kernel's block (default: per shape and transposes). VKVIT_MATMUL_F16_TM, VKVIT_MATMUL_F16_TN.
  std::optional<uint32_t> matmul_f16_tm, matmul_f16_tn;
  // Depth of the K chunks that long products run as, 0: whole K (default: matmul_launch.h's
  // kKChunk). VKVIT_MATMUL_KCHUNK.
  std::optional<uint32_t> matmul_k_chunk;
  // The register-blocked kernel's 64-bit loads and four-float stores (default on where the device
  // has shaderInt64). VKVIT_MATMUL_WIDE.
  bool matmul_wide = true;
  // The register-blocked kernel's texel-buffer variant for aligned operands (default on). VKVIT_MATMUL_TEXEL.
  bool matmul_texel = true;
  // Scalar loads only in every matmul kernel (default off: vector loads where aligned). VKVIT_MATMUL_SCALAR.
  bool matmul_scalar = false;
  // With profiling on, one profile row per product shape and kernel variant (default off). VKVIT_PROFILE_SHAPES.
  bool profile_shapes = false;

  // --- other ops (src/ops)
  // Elementwise kernels move four floats as two 64-bit components (default on where the device
  // has shaderInt64). VKVIT_WIDE.
  bool wide = true;
  // The gradient norm reads whole-buffer tiles through a texel buffer (default on). VKVIT_TEXEL.
  bool texel = true;
  // Softmax rows up to this long run one row per invocation (default: softmax.cpp's kShortRow,
  // 32). VKVIT_SOFTMAX_SHORT_ROW.
  std::optional<uint32_t> softmax_short_row;

  // --- model and training (src/model, src/train)
  // The attention blocks' kernels (default automatic). VKVIT_ATTENTION=fused|unfused.
  AttentionPath attention = AttentionPath::automatic;
  // Good fp16 steps before the loss scale grows (default: the scaler's 2000). VKVIT_LOSS_SCALE_GROWTH_INTERVAL.
  std::optional<uint64_t> loss_scale_growth_interval;
  // Bytes per gradient all-reduce bucket (default: GradientSync::kDefaultBucketBytes, 25 MiB).
  // VKVIT_ALLREDUCE_BUCKET_MB, in megabytes.
  std::optional<uint64_t> allreduce_bucket_bytes;
  // Sum each finished bucket while the backward pass goes on (default on). VKVIT_ALLREDUCE_OVERLAP=0 turns it off.
  bool allreduce_overlap = true;
  // Read and submit the next batch before waiting for the step in flight (default on).
  // VKVIT_STEP_OVERLAP=0 turns it off.
  bool step_overlap = true;

  // --- tests only: never read from the environment
  // The recorder leaves out the barriers that its overlap tracking would insert between commands
  // (the ones at the start and end of a submission stay), so that the barrier test
  // (tests/test_barriers.cpp) can show synchronization validation reporting the hazards. Results
  // are then wrong on any device that overlaps dispatches.
  bool drop_barriers = false;

  // The knobs from the environment; unset or empty variables keep the defaults above. Throws
  // vkvit::Error naming the variable and its allowed values for a malformed VKVIT_MATMUL_KERNEL,
  // VKVIT_MATMUL_TILE, VKVIT_ATTENTION or VKVIT_ALLREDUCE_BUCKET_MB. The numeric knobs and on/off
  // switches read their leading digits (strtoul), as they always have: a switch is off at 0;
  // VKVIT_ALLREDUCE_OVERLAP and VKVIT_STEP_OVERLAP are off only at exactly "0".
  static Tuning from_env();
};

}  // namespace vkvit::vk
