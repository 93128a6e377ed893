// ops::choose_kernels: every per-device kernel decision, from capabilities. The one place that
// reads the device type is is_cpu_driver_type() below, for the measured CPU-driver preferences.
#include "ops/kernel_choice.h"

#include <algorithm>

#include "base/error.h"

namespace vkvit::ops {

namespace {

using matmul_detail::TiledTile;

// CPU drivers (lavapipe, SwiftShader) run a workgroup as the SIMD lanes of one CPU thread, so
// shared memory and barriers only cost there and the fixed cost per workgroup is high: vkvit's
// measurements (BENCHMARKS.md) made the register-blocked matmul, the fused attention and few,
// fat bias-gradient workgroups their defaults. No reported capability tells a CPU from a GPU
// (both offer subgroups, shared memory and barriers), so this preference reads the device type.
bool is_cpu_driver_type(const vk::DeviceInfo& d) { return d.type == VK_PHYSICAL_DEVICE_TYPE_CPU; }

std::string tile_string(uint32_t m, uint32_t n, uint32_t k) {
  return std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
}

// The tiled kernels' tile: 64x64x16 (256 invocations of 4x4 outputs, 8 KiB of shared memory)
// where the device's limits take it and 256 is a whole number of its subgroups; 32x32x8 (64
// invocations) otherwise, and on CPU drivers, where the tiled kernel is the fallback of 4-lane
// subgroups and the larger tile has not been measured (this keeps the tile they had before).
// VKVIT_MATMUL_TILE overrides; a tile past the device's limits is refused (`refused`).
void choose_tile(const vk::DeviceInfo& d, const vk::Tuning& tuning, KernelChoice::Matmul& m, std::string& refused) {
  TiledTile t;
  const uint32_t big_shared = (t.bm + t.bn) * t.bk * 4;
  const bool fits = d.max_workgroup_invocations >= t.threads() && d.max_workgroup_size[0] >= t.threads() &&
                    d.max_shared_memory >= big_shared && (d.subgroup_size == 0 || t.threads() % d.subgroup_size == 0);
  if (is_cpu_driver_type(d) || !fits) t.bm = t.bn = 32, t.bk = 8;
  if (tuning.matmul_tile) {
    const uint32_t bm = tuning.matmul_tile->bm, bn = tuning.matmul_tile->bn, bk = tuning.matmul_tile->bk;
    const uint32_t threads = (bm / t.tm) * (bn / t.tn), shared = (bm + bn) * bk * 4;
    if (threads > d.max_workgroup_invocations || threads > d.max_workgroup_size[0] || shared > d.max_shared_memory)
      refused = "VKVIT_MATMUL_TILE='" + tile_string(bm, bn, bk) + "' needs " + std::to_string(threads) +
                " invocations and " + std::to_string(shared) + " bytes of shared memory; " + d.name + " allows " +
                std::to_string(std::min(d.max_workgroup_invocations, d.max_workgroup_size[0])) + " and " +
                std::to_string(d.max_shared_memory);
    else
      t.bm = bm, t.bn = bn, t.bk = bk;
  }
  m.tile = t;
}

KernelChoice::Matmul choose_matmul(const vk::DeviceInfo& d, const vk::Tuning& tuning, std::string& kernel_refused,
                                   std::string& tile_refused) {
  KernelChoice::Matmul m;
  choose_tile(d, tuning, m, tile_refused);
  // The register-blocked kernel comes in 8- and 4-lane builds; a workgroup must be one subgroup.
  m.lanes = register_blocked_lanes(d);
  const std::string no_lanes = m.lanes ? "" : lanes_unsupported(d, "the register-blocked matmul kernel", 4);
  m.kernel = parse_matmul_kernel(tuning.matmul_kernel);
  if (m.kernel != MatmulKernel::automatic) {
    m.reason = "VKVIT_MATMUL_KERNEL";
    if (m.kernel == MatmulKernel::register_blocked && !no_lanes.empty())
      kernel_refused = "VKVIT_MATMUL_KERNEL=" + tuning.matmul_kernel + ": " + no_lanes +
                       "; use VKVIT_MATMUL_KERNEL=tiled or unset it";
  } else if (is_cpu_driver_type(d) && m.lanes != 0) {
    // On 4-lane drivers the tiled kernel's barriers made a training step 80 times slower than
    // lavapipe's (BENCHMARKS.md, "SwiftShader: kernels for 4-lane subgroups").
    m.kernel = MatmulKernel::register_blocked;
    m.reason = m.lanes == 8 ? "CPU driver: no shared memory nor barriers, 8-lane subgroups; BENCHMARKS.md"
                            : "CPU driver of 4-lane subgroups: the 4-lane build, no barriers; BENCHMARKS.md";
  } else {
    m.kernel = MatmulKernel::tiled;
    m.reason = is_cpu_driver_type(d) ? "CPU driver without 4- or 8-lane subgroups: the kernel without subgroup operations"
                                     : "GPU: shared-memory tiles, no subgroup operations";
  }
  // For the register-blocked kernel, also where a caller forces it (tests, benchmarks).
  m.pin = lane_pin(d, m.lanes ? m.lanes : kSubgroupKernelLanes);
  m.wide = d.int64 && tuning.matmul_wide;
  return m;
}

// The fp16 matmul follows the fp32 kernel: tiled where that is tiled, else its register-blocked
// twin, which has an 8-lane build only: where the fp32 kernel is the 4-lane build, the fp16
// products run tiled (unless VKVIT_MATMUL_KERNEL forces register_blocked, which then needs 8
// lanes). Both read packed halves (core GLSL); only fp16 output stores float16_t and needs 16-bit
// storage.
KernelChoice::MatmulF16 choose_matmul_f16(const vk::DeviceInfo& d, const KernelChoice::Matmul& m,
                                          const vk::Tuning& tuning) {
  KernelChoice::MatmulF16 f;
  const bool forced = parse_matmul_kernel(tuning.matmul_kernel) == MatmulKernel::register_blocked;
  f.kernel = m.kernel == MatmulKernel::register_blocked && (m.lanes == 8 || forced) ? MatmulKernel::register_blocked
                                                                                    : MatmulKernel::tiled;
  f.runs = f.kernel == MatmulKernel::tiled || eight_lane_unsupported(d, "").empty();
  f.f16_output = d.storage16;
  f.missing = d.storage16 ? "" : "storageBuffer16BitAccess";
  f.reason = !f.runs ? "no 8-lane subgroups for the register-blocked fp16 kernel"
                     : "packed halves, fp32 accumulation; fp16 output with 16-bit storage";
  return f;
}

KernelChoice::Attention choose_attention(const vk::DeviceInfo& d, const vk::Tuning& tuning, std::string& refused) {
  KernelChoice::Attention a;
  const std::string no_eight_lanes = eight_lane_unsupported(d, "fused attention");
  if (tuning.attention == vk::AttentionPath::unfused) {
    a.reason = "VKVIT_ATTENTION=unfused";
  } else if (tuning.attention == vk::AttentionPath::fused) {
    a.fused = no_eight_lanes.empty();
    a.reason = "VKVIT_ATTENTION=fused";
    if (!a.fused) refused = "VKVIT_ATTENTION=fused: " + no_eight_lanes + "; unset VKVIT_ATTENTION";
  } else if (is_cpu_driver_type(d) && no_eight_lanes.empty()) {
    a.fused = true;
    a.reason = "CPU driver: online softmax in 8-lane workgroups, 1.7-5.4x unfused; BENCHMARKS.md";
  } else {
    a.reason = is_cpu_driver_type(d) ? "CPU driver without 8-lane subgroups" : "GPU: fused kernels not measured there";
  }
  a.pin = eight_lane_pin(d);  // also where a caller runs the fused kernels directly (tests)
  return a;
}

// LayerNorm lays a row over one subgroup and sums it with one subgroupAdd, so the launcher and
// the shader must agree on the size: the reported one, pinned with full subgroups where the
// device can pin it. Where it cannot (the reported size lies outside the pinnable range) the
// pinnable size nearest to it; where 4 subgroups of it exceed the workgroup limit, halved while
// the device can pin the half. Without subgroup-size control the reported size runs unpinned.
KernelChoice::LayerNorm choose_layernorm(const vk::DeviceInfo& d) {
  constexpr uint32_t kRowsPerGroup = 4;  // layernorm.cpp's subgroups per workgroup
  KernelChoice::LayerNorm l;
  uint32_t size = std::max<uint32_t>(d.subgroup_size, 1);
  l.reason = "the reported size";
  if (d.subgroup_size_control && !d.can_pin_subgroup_size(size) && d.min_subgroup_size > 0) {
    size = std::clamp(size, d.min_subgroup_size, d.max_subgroup_size);
    l.reason = "the pinnable size nearest the reported one";
  }
  while (kRowsPerGroup * size > d.max_workgroup_invocations && d.can_pin_subgroup_size(size / 2)) {
    size /= 2;
    l.reason = "the largest pinnable size of which 4 fit a workgroup";
  }
  l.subgroup_size = size;
  l.pin = vk::SubgroupPin{size, true};
  l.pinned = d.can_pin_subgroup_size(size);
  l.workgroup_size = kRowsPerGroup * size;
  return l;
}

// 256 invocations (bias_grad.cpp's kGroup) of vec4 columns. CPU drivers want few, fat workgroups
// (64 columns x 16 row lanes: lavapipe has 2-16 cores); GPUs many, so 32 columns x 32 row lanes
// (still 128-byte row segments).
KernelChoice::BiasGrad choose_bias_grad(const vk::DeviceInfo& d) {
  KernelChoice::BiasGrad b;
  b.tile_n = is_cpu_driver_type(d) ? 16 : 8;
  b.reason = is_cpu_driver_type(d) ? "CPU driver: few, fat workgroups" : "GPU: many workgroups";
  return b;
}

}  // namespace

KernelChoice choose_kernels(const vk::DeviceInfo& d, const vk::Tuning& tuning) {
  KernelChoice c;
  c.matmul = choose_matmul(d, tuning, c.matmul_refused, c.tile_refused);
  c.matmul_f16 = choose_matmul_f16(d, c.matmul, tuning);
  c.attention = choose_attention(d, tuning, c.attention_refused);
  c.layernorm = choose_layernorm(d);
  c.bias_grad = choose_bias_grad(d);
  c.softmax.runs = d.has_subgroup_ops(VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
  c.softmax.reason = c.softmax.runs ? "any subgroup size: one partial per subgroup"
                                    : "needs subgroup arithmetic in compute shaders";
  // lavapipe ran the mixing pass slower than the host mixes in staging memory (ops/mix_batch.h).
  c.mix_batch.on_device = !is_cpu_driver_type(d);
  c.mix_batch.reason = c.mix_batch.on_device ? "GPU: one pass over the uploaded batch"
                                             : "CPU driver: the host mixes the staged batch";
  c.elementwise.wide = d.int64 && tuning.wide;
  c.elementwise.reason = !d.int64 ? "no shaderInt64" : tuning.wide ? "shaderInt64" : "VKVIT_WIDE=0";
  c.cooperative_matrix = d.cooperative_matrix_khr || d.cooperative_matrix_nv
                             ? "offered; vkvit has no cooperative-matrix kernel yet"
                             : "not offered";
  return c;
}

KernelChoice kernel_choice(const vk::Context& ctx) { return choose_kernels(ctx.kernel_device(), ctx.tuning()); }

namespace {

std::string pin_string(const vk::SubgroupPin& pin) {
  return pin.size ? "one subgroup of " + std::to_string(pin.size) : std::string("subgroup of the reported size");
}

std::string matmul_what(const KernelChoice& c) {
  const KernelChoice::Matmul& m = c.matmul;
  if (m.kernel == MatmulKernel::tiled)
    return "tiled " + tile_string(m.tile.bm, m.tile.bn, m.tile.bk) + ", " + std::to_string(m.tile.threads()) +
           " invocations";
  if (m.kernel == MatmulKernel::naive) return "naive, 256 invocations";
  return "register_blocked, " + std::to_string(m.lanes ? m.lanes : kSubgroupKernelLanes) + " invocations, " +
         pin_string(m.pin) + (m.wide ? ", 64-bit loads" : "");
}

std::string matmul_f16_what(const KernelChoice& c) {
  if (!c.matmul_f16.runs) return "not run";
  const char* kernel = c.matmul_f16.kernel == MatmulKernel::tiled ? "tiled" : "register_blocked";
  if (c.matmul_f16.f16_output) return std::string(kernel) + ", fp16 output";
  return std::string(kernel) + ", fp32 output only: no " + c.matmul_f16.missing;
}

std::string line(const std::string& op, const std::string& what, const std::string& reason) {
  return op + ": " + what + " (" + reason + ")";
}

}  // namespace

std::vector<std::string> KernelChoice::describe() const {
  const std::string ln = "subgroup " + std::to_string(layernorm.subgroup_size) +
                         (layernorm.pinned ? " pinned, " : " unpinned, ") + std::to_string(layernorm.workgroup_size) +
                         " invocations";
  const std::string bias = std::to_string(bias_grad.tile_n * bias_grad.vec) + " columns x " +
                           std::to_string(bias_grad.workgroup_size / bias_grad.tile_n) + " row lanes";
  return {
      line("matmul", matmul_what(*this), matmul.reason),
      line("matmul_f16", matmul_f16_what(*this), matmul_f16.reason),
      line("attention", attention.fused ? "fused, " + pin_string(attention.pin) : std::string("unfused"),
           attention.reason),
      line("layernorm", ln, layernorm.reason),
      line("bias_grad", bias, bias_grad.reason),
      line("softmax", softmax.runs ? "subgroup reduction" : "not run", softmax.reason),
      line("mix_batch", mix_batch.on_device ? "on the device" : "on the host", mix_batch.reason),
      line("elementwise", elementwise.wide ? "64-bit pairs" : "32-bit floats", elementwise.reason),
      line("cooperative_matrix", "not used", cooperative_matrix),
  };
}

}  // namespace vkvit::ops
