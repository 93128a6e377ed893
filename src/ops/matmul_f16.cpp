// ops::matmul_f16: picks the kernel (the register-blocked one on CPU drivers, the tiled one on GPUs,
// as ops::matmul does; VKVIT_MATMUL_KERNEL=tiled forces the latter), its block and the element
// sizes; the launcher shared with ops::matmul (matmul_launch.h) chooses the uvec4 load variants,
// splits calls whose operands would not fit one storage-buffer binding and dispatches.
#include "ops/matmul_f16.h"

#include <string>

#include "base/error.h"
#include "ops/kernel_choice.h"
#include "ops/launch.h"
#include "ops/matmul_launch.h"

namespace vkvit::ops {

namespace {

using namespace matmul_detail;

// The compiled fp16 register-blocked variants (shaders/variants.cmake), by block shape: TM rows
// per workgroup x TN columns per lane.
struct RegisterBlockedF16Variant {
  uint32_t tm, tn;
  vk::ShaderId f32_out, f16_out;
};
constexpr RegisterBlockedF16Variant kRegisterBlockedF16Variants[] = {
    {16, 12, shaders::matmul_f16_16x12, shaders::matmul_f16_16x12_h},
    {16, 8, shaders::matmul_f16_16x8, shaders::matmul_f16_16x8_h},
    {8, 8, shaders::matmul_f16_8x8, shaders::matmul_f16_8x8_h},
};

const RegisterBlockedF16Variant& register_blocked_f16_variant(uint32_t tm, uint32_t tn) {
  for (const RegisterBlockedF16Variant& v : kRegisterBlockedF16Variants)
    if (v.tm == tm && v.tn == tn) return v;
  throw Error("internal: matmul_f16: no register-blocked variant for a " + std::to_string(tm) + "x" +
              std::to_string(tn) + " block (shaders/variants.cmake lists the compiled ones)");
}

// The block per shape (BENCHMARKS.md, "fp16 matmul (lavapipe)"). The kernel is bound by the FMAs
// and the broadcasts of A values, not by loads or conversions, so more columns per broadcast pay:
// NT (B loaded along k, any TN works) takes 16 x 12, except where N is a multiple of 64 but not
// of 96 (a 96-column block would pad N = 64, 128 by half: 16 x 8 there, as ops::matmul does); NN
// and TN load B along n in uvec4s, which needs TN % 8 == 0, and take 16 x 8 (16 x 16 measured
// slower, so it is not compiled); small products (attention-sized) take 8 x 8 and share
// workgroups between batch entries as ops::matmul's do (matmul_launch.h).
// VKVIT_MATMUL_F16_TM / _TN force a compiled variant (16x8, 16x12, 8x8) for tests and tuning.
// Long K runs in ops::matmul's chunks (its measurements; the same chunk is kept for halves);
// VKVIT_MATMUL_KCHUNK overrides, 0 disables.
MatmulPolicy policy_for(const KernelChoice& choice, const vk::Tuning& tuning, const MatmulShape& s, MatmulOut out) {
  uint32_t tm = 16, tn = 8;
  if (s.trans_b && !s.trans_a && !(s.N % 96 != 0 && s.N % 64 == 0)) tn = 12;
  if (small_product(s)) tm = 8, tn = 8;
  tm = tuning.matmul_f16_tm.value_or(tm);
  tn = tuning.matmul_f16_tn.value_or(tn);
  MatmulPolicy pol;
  pol.name = "matmul_f16";
  const RegisterBlockedF16Variant& variant = register_blocked_f16_variant(tm, tn);
  pol.shader = out == MatmulOut::f16 ? variant.f16_out : variant.f32_out;
  // A and B packed halves; C fp32 or fp16. fp16 views may start at any even byte.
  pol.a_size = pol.b_size = 2;
  pol.c_size = out == MatmulOut::f16 ? 2 : 4;
  pol.byte_views = true;
  pol.rows_per_group = tm;
  pol.cols_per_group = 8 * tn;
  pol.batch_per_group = small_batch_per_group(s);
  // The transposes are spec constants only, not push flags; vector loads are uvec4s of 8 halves.
  pol.spec = MatmulPolicy::Spec::register_blocked_f16;
  pol.vec_width = 8;
  pol.vec_b_nn = tn % 8 == 0;
  pol.k_chunk = tuning.matmul_k_chunk.value_or(kKChunk);
  pol.subgroup_pin = choice.matmul.pin;  // kernel choice
  return pol;
}

// GPUs: common/matmul_tiled.glsl over packed halves (the matmul_f16_tiled[_h] variants), the fp32
// tiled kernel's tile and shared-memory staging with fp32 accumulation; whole K in one dispatch.
MatmulPolicy tiled_policy(const KernelChoice& choice, MatmulOut out) {
  if (!choice.tile_refused.empty()) throw Error(choice.tile_refused);  // kernel choice
  const TiledTile t = choice.matmul.tile;
  MatmulPolicy pol;
  pol.name = "matmul_f16";
  pol.shader = out == MatmulOut::f16 ? shaders::matmul_f16_tiled_h : shaders::matmul_f16_tiled;
  pol.a_size = pol.b_size = 2;
  pol.c_size = out == MatmulOut::f16 ? 2 : 4;
  pol.byte_views = true;
  pol.rows_per_group = t.bm;
  pol.cols_per_group = t.bn;
  pol.spec = MatmulPolicy::Spec::tiled;
  pol.tile = t;
  pol.epilogue = out == MatmulOut::f32;  // the fp32-output build fuses common/matmul_epilogue.glsl
  return pol;
}

// kernel choice: the fp16 kernel for ctx.kernel_device() (ops/kernel_choice.h): tiled where the
// fp32 matmul is, and where it is the 4-lane register-blocked build (the fp16 one has 8 lanes only).
bool use_tiled(const KernelChoice& choice) { return choice.matmul_f16.kernel == MatmulKernel::tiled; }
bool use_tiled(const vk::Context& ctx) { return use_tiled(kernel_choice(ctx)); }
}  // namespace

// kernel choice: the kernel and fp16 output as chosen for ctx.kernel_device(); the device at hand
// must be able to run them (8-lane subgroups for the register-blocked kernel, 16-bit storage).
std::string matmul_f16_unsupported(const vk::Context& ctx, MatmulOut out) {
  const KernelChoice choice = kernel_choice(ctx);
  const vk::DeviceInfo& info = ctx.info();
  if (!use_tiled(choice)) {
    if (std::string why = eight_lane_unsupported(info, "the register-blocked fp16 matmul kernel"); !why.empty())
      return why;
  }
  if (out == MatmulOut::f16 && !(choice.matmul_f16.f16_output && info.storage16))
    return "fp16 matmul output needs storageBuffer16BitAccess, which device " +
           (info.storage16 ? ctx.kernel_device().name : info.name) + " lacks";
  return {};
}

bool matmul_f16_epilogue_supported(const vk::Context& ctx, MatmulOut out) {
  return use_tiled(ctx) && out == MatmulOut::f32;
}

void matmul_f16(vk::Recorder& rec, const vk::View& c, const vk::View& a16, const vk::View& b16, const MatmulShape& s,
                const vk::View& bias, MatmulOut out, const vk::View& aux) {
  if (!matmul_detail::has_work(s, "matmul_f16")) return;
  const std::string why = matmul_f16_unsupported(rec.context(), out);
  if (!why.empty()) throw Error(why + " (train without train.amp / --amp on this device)");
  if (s.epilogue != MatmulEpilogue::none && !matmul_f16_epilogue_supported(rec.context(), out))
    throw Error("internal: matmul_f16: an epilogue on a kernel without one (see matmul_f16_epilogue_supported)");
  const KernelChoice choice = kernel_choice(rec.context());
  const MatmulPolicy policy =
      use_tiled(choice) ? tiled_policy(choice, out) : policy_for(choice, rec.context().tuning(), s, out);
  matmul_detail::launch_matmul(rec, c, a16, b16, bias, s, policy, aux);
}

}  // namespace vkvit::ops
