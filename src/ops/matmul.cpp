// ops::matmul: picks a kernel for the device and chooses its tile shape and load variant; the
// shared launcher (matmul_launch.h) binds, splits and dispatches.
//
// Kernels (shared bindings in shaders/common/matmul_common.glsl; register_blocked and tiled fuse
// the epilogues of shaders/common/matmul_epilogue.glsl):
//   naive             one output per invocation (shaders/matmul_naive.comp); the baseline of
//                     `vkvit bench matmul`.
//   register_blocked  8- or 4-lane workgroups without shared memory or barriers (CPU Vulkan; see
//                     shaders/common/matmul_regblock.glsl and BENCHMARKS.md for why this shape
//                     wins on llvmpipe).
//   tiled             shared-memory tiles for GPUs (shaders/common/matmul_tiled.glsl); tile
//                     sizes from the device's limits.
#include "ops/matmul.h"

#include <algorithm>
#include <string>
#include <utility>

#include "base/error.h"
#include "ops/kernel_choice.h"
#include "ops/launch.h"
#include "ops/matmul_launch.h"
#include "vk/pipeline.h"

namespace vkvit::ops {

namespace {

using namespace matmul_detail;

// Every fp32 kernel: fp32 operands, trans_a / trans_b in the push flags and, except for naive, also
// as spec constants. Workgroup x walks M and y walks N (naive: x walks N).
MatmulPolicy fp32_policy(vk::ShaderId shader, MatmulPolicy::Spec spec, uint32_t rows_per_group,
                         uint32_t cols_per_group) {
  MatmulPolicy pol;
  pol.name = "matmul";
  pol.shader = shader;
  pol.spec = spec;
  pol.rows_per_group = rows_per_group;
  pol.cols_per_group = cols_per_group;
  pol.trans_flags = true;
  return pol;
}

// The compiled register-blocked variants (shaders/variants.cmake), by lanes per workgroup and
// block shape: TM rows per workgroup x TN columns per lane; each as a module without 64-bit types
// and a `_wide` one with the 64-bit loads and stores (common/wide.glsl), taken where the policy
// sets them.
struct RegisterBlockedVariant {
  uint32_t lanes, tm, tn;
  vk::ShaderId storage, storage_wide;  // A and B from storage buffers
  vk::ShaderId texel, texel_wide;      // A and B from texel buffers
};
#define VKVIT_REGBLOCK(tm, tn)                                                                          \
  {8, tm, tn, shaders::matmul_regblock_##tm##x##tn, shaders::matmul_regblock_##tm##x##tn##_wide,          \
   shaders::matmul_regblock_texel_##tm##x##tn, shaders::matmul_regblock_texel_##tm##x##tn##_wide}
#define VKVIT_REGBLOCK_L4(tm, tn)                                                                          \
  {4, tm, tn, shaders::matmul_regblock_l4_##tm##x##tn, shaders::matmul_regblock_l4_##tm##x##tn##_wide,     \
   shaders::matmul_regblock_texel_l4_##tm##x##tn, shaders::matmul_regblock_texel_l4_##tm##x##tn##_wide}
constexpr RegisterBlockedVariant kRegisterBlockedVariants[] = {
    VKVIT_REGBLOCK(16, 12),    VKVIT_REGBLOCK(16, 8),   VKVIT_REGBLOCK(8, 8),   VKVIT_REGBLOCK(8, 3),
    VKVIT_REGBLOCK(8, 2),      VKVIT_REGBLOCK_L4(16, 12), VKVIT_REGBLOCK_L4(8, 8), VKVIT_REGBLOCK_L4(8, 4),
    VKVIT_REGBLOCK_L4(8, 2),
};
#undef VKVIT_REGBLOCK
#undef VKVIT_REGBLOCK_L4

const RegisterBlockedVariant& register_blocked_variant(uint32_t lanes, uint32_t tm, uint32_t tn) {
  for (const RegisterBlockedVariant& v : kRegisterBlockedVariants)
    if (v.lanes == lanes && v.tm == tm && v.tn == tn) return v;
  throw Error("internal: matmul: no " + std::to_string(lanes) + "-lane register-blocked variant for a " +
              std::to_string(tm) + "x" + std::to_string(tn) + " block (shaders/variants.cmake lists the compiled ones)");
}

struct RegisterBlock {
  uint32_t tm, tn;
};

// The 8-lane block per shape (measurements in BENCHMARKS.md, "small shapes"):
//  - 16 x 12 was the best or within noise of the best for NN, NT and TN on large products, and
//    16 x 8 matches it where N is a multiple of 64 but not of 96 (N = 64, 128: a 96-column block
//    would compute a third of its columns for nothing);
//  - small batched products (attention's 17 x 17 x 16 per head) use an 8-row block that covers
//    N with the least padding, and loop over several batch entries per workgroup so lavapipe's
//    fixed cost per workgroup is paid once per several heads (small_product and
//    small_batch_per_group, matmul_launch.h).
RegisterBlock eight_lane_block(const MatmulShape& s) {
  if (small_product(s)) return {8, s.N <= 16 ? 2u : 3u};  // 16 or 24 columns per workgroup
  if (s.M <= 8) return {8, 8};  // the mean pool's 1-row products: 16 rows would waste 15
  if (s.N % 96 != 0 && s.N % 64 == 0) return {16, 8};
  return {16, 12};
}

// The 4-lane block per shape, measured on SwiftShader (BENCHMARKS.md, "SwiftShader: kernels for
// 4-lane subgroups"): 16 x 12 ran the demo's linear layers 15% faster than 16 x 8 and 32 x 8 about
// as fast; small batched products take the 8-row block whose 8, 16 or 32 columns cover N.
RegisterBlock four_lane_block(const MatmulShape& s) {
  if (small_product(s)) return {8, s.N <= 8 ? 2u : s.N <= 16 ? 4u : 8u};
  if (s.M <= 8) return {8, 8};
  return {16, 12};
}

// register_blocked: workgroups of `lanes` (8 or 4, as the kernel choice says); each computes TM
// rows (shared by its lanes) x lanes * TN columns (TN per lane), for batch_per_group batch
// entries. VKVIT_MATMUL_TM / VKVIT_MATMUL_TN force a compiled variant (kRegisterBlockedVariants)
// and VKVIT_MATMUL_BATCH_PER_GROUP the entries per workgroup, for tests and tuning experiments.
// kernel choice (ops/kernel_choice.h): the lanes and the 64-bit loads come from `choice`; `info`
// is the device at hand, whose subgroup must hold the lanes (its pin keeps the dispatch legal).
MatmulPolicy register_blocked_policy(const vk::DeviceInfo& info, const KernelChoice& choice, const vk::Tuning& tuning,
                                     const MatmulShape& s) {
  const char* kernel = "the register-blocked matmul kernel";
  const uint32_t lanes = choice.matmul.lanes;
  if (lanes == 0) throw Error(lanes_unsupported(info, kernel, 4) + " (use VKVIT_MATMUL_KERNEL=tiled)");
  if (const std::string why = lanes_unsupported(info, kernel, lanes); !why.empty())
    throw Error(why + " (use VKVIT_MATMUL_KERNEL=tiled)");
  const RegisterBlock block = lanes == 8 ? eight_lane_block(s) : four_lane_block(s);
  const uint32_t tm = tuning.matmul_tm.value_or(block.tm), tn = tuning.matmul_tn.value_or(block.tn);
  const RegisterBlockedVariant& variant = register_blocked_variant(lanes, tm, tn);
  const bool wide = choice.matmul.wide && info.int64;
  MatmulPolicy pol = fp32_policy(wide ? variant.storage_wide : variant.storage, MatmulPolicy::Spec::register_blocked,
                                 tm, lanes * tn);
  pol.batch_per_group = std::max(tuning.matmul_batch_per_group.value_or(small_batch_per_group(s)), 1u);
  // vec4 loads: of A stored (K, M) they span 4 of the TM rows, of B stored (K, N) 4 of the TN
  // columns. VKVIT_MATMUL_WIDE=0 turns off issuing them, and C's stores of four floats, as two
  // 64-bit components.
  pol.vec_width = 4;
  pol.vec_a_trans = tm % 4 == 0;
  pol.vec_b_nn = tn % 4 == 0;
  pol.wide_loads = wide;
  pol.wide_stores = wide && tn % 4 == 0 && lanes == 8;  // the 4-lane variants store one float at a time
  pol.epilogue = true;
  if (tuning.matmul_texel)
    pol.texel_shader = wide ? variant.texel_wide : variant.texel;
  // Only this kernel runs long K as accumulated chunks (kKChunk, matmul_launch.h).
  pol.k_chunk = tuning.matmul_k_chunk.value_or(kKChunk);
  pol.subgroup_pin = lane_pin(info, lanes);
  return pol;
}

MatmulPolicy tiled_policy(const KernelChoice& choice) {
  // kernel choice: the tile, refused where VKVIT_MATMUL_TILE exceeds the device's limits.
  if (!choice.tile_refused.empty()) throw Error(choice.tile_refused);
  const TiledTile t = choice.matmul.tile;
  MatmulPolicy pol = fp32_policy(shaders::matmul_tiled, MatmulPolicy::Spec::tiled, t.bm, t.bn);
  pol.tile = t;
  pol.epilogue = true;
  return pol;
}

MatmulPolicy policy_for(MatmulKernel kernel, const vk::DeviceInfo& info, const KernelChoice& choice,
                        const vk::Tuning& tuning, const MatmulShape& s) {
  switch (kernel) {
    case MatmulKernel::naive: {
      // Naive reads the transposes from the push flags only.
      MatmulPolicy pol = fp32_policy(shaders::matmul_naive, MatmulPolicy::Spec::naive, 16, 16);
      pol.x_walks_n = true;
      return pol;
    }
    case MatmulKernel::tiled: return tiled_policy(choice);
    default: return register_blocked_policy(info, choice, tuning, s);
  }
}

}  // namespace

const char* matmul_kernel_name(MatmulKernel kernel) {
  switch (kernel) {
    case MatmulKernel::naive: return "naive";
    case MatmulKernel::register_blocked: return "register_blocked";
    case MatmulKernel::tiled: return "tiled";
    default: return "auto";
  }
}

MatmulKernel parse_matmul_kernel(const std::string& name) {
  if (name == "naive") return MatmulKernel::naive;
  // "lavapipe": the kernel's name before it was named after its technique; still accepted.
  if (name == "register_blocked" || name == "lavapipe") return MatmulKernel::register_blocked;
  if (name == "tiled") return MatmulKernel::tiled;
  if (name == "auto" || name.empty()) return MatmulKernel::automatic;
  throw Error("unknown matmul kernel '" + name + "': use naive, register_blocked, tiled or auto");
}

vk::SubgroupPin lane_pin(const vk::DeviceInfo& info, uint32_t lanes) {
  // Not REQUIRE_FULL_SUBGROUPS: a pinned larger subgroup holds the workgroup partly filled.
  return vk::SubgroupPin{info.subgroup_size_for_one_group(lanes), false};
}

vk::SubgroupPin eight_lane_pin(const vk::DeviceInfo& info) { return lane_pin(info, kSubgroupKernelLanes); }

std::string lanes_unsupported(const vk::DeviceInfo& info, const std::string& kernel, uint32_t lanes) {
  if (!info.has_subgroup_ops(VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT))
    return kernel + " needs subgroup shuffles in compute shaders, which device " + info.name + " does not offer";
  if (lane_pin(info, lanes).size == 0)
    return kernel + " shuffles across workgroups of " + std::to_string(lanes) +
           " lanes that must each be one subgroup; device " + info.name + " has subgroup size " +
           info.subgroup_size_string();
  return {};
}

std::string eight_lane_unsupported(const vk::DeviceInfo& info, const std::string& kernel) {
  return lanes_unsupported(info, kernel, kSubgroupKernelLanes);
}

uint32_t register_blocked_lanes(const vk::DeviceInfo& device) {
  for (uint32_t lanes : {8u, 4u})
    if (lanes_unsupported(device, "", lanes).empty()) return lanes;
  return 0;
}

// kernel choice: decided in ops/kernel_choice.cpp (choose_matmul).
MatmulKernel matmul_kernel_for(const vk::DeviceInfo& device, const vk::Tuning& tuning) {
  return choose_kernels(device, tuning).matmul.kernel;
}

void matmul(vk::Recorder& rec, const vk::View& c, const vk::View& a, const vk::View& b, const MatmulShape& s,
            const vk::View& bias, MatmulKernel kernel, const vk::View& aux) {
  if (!matmul_detail::has_work(s, "matmul")) return;
  const vk::Context& ctx = rec.context();
  // kernel choice: for ctx.kernel_device(); an override it cannot run is refused here.
  const KernelChoice choice = kernel_choice(ctx);
  if (kernel == MatmulKernel::automatic) {
    if (!choice.matmul_refused.empty()) throw Error(choice.matmul_refused);
    kernel = choice.matmul.kernel;
  }
  matmul_detail::launch_matmul(rec, c, a, b, bias, s, policy_for(kernel, ctx.info(), choice, ctx.tuning(), s), aux);
}

bool matmul_epilogue_supported(MatmulKernel kernel, const vk::Context& ctx) {
  if (kernel == MatmulKernel::automatic) kernel = kernel_choice(ctx).matmul.kernel;  // kernel choice
  return kernel != MatmulKernel::naive;
}

}  // namespace vkvit::ops
