// The one place where vkvit decides which kernels a device gets: ops::choose_kernels reads what
// the device reports (vk::DeviceInfo: subgroup size and its pinnable range, subgroup operations,
// shaderInt64, 16-bit storage, workgroup and shared-memory limits, cooperative matrices) and the
// tuning overrides (vk::Tuning, the VKVIT_* variables), and returns per op the kernel, its tile or
// workgroup, the subgroup size it assumes or pins and the features it uses, each with a reason.
// Ops call kernel_choice(ctx), which chooses for ctx.kernel_device() (the device a test may
// describe); limits that keep a dispatch legal on the device at hand stay on ctx.info().
// `vkvit devices` prints describe() for the selected device; README's table "What each device
// gets" lists it for the described devices of tests/described_devices.h (a test compares them).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ops/matmul.h"
#include "ops/matmul_launch.h"
#include "vk/context.h"
#include "vk/pipeline.h"
#include "vk/tuning.h"

namespace vkvit::ops {

struct KernelChoice {
  // ops::matmul with MatmulKernel::automatic, and the fp16 matmul, which follows it.
  struct Matmul {
    MatmulKernel kernel = MatmulKernel::tiled;  // never automatic
    matmul_detail::TiledTile tile;              // the tiled kernels' tile (fp32 and fp16)
    uint32_t lanes = 0;                         // register_blocked: 8 or 4 lanes a workgroup (0: none fit)
    vk::SubgroupPin pin;                        // register_blocked: its lanes as one subgroup
    bool wide = false;                          // register_blocked: 64-bit loads and stores
    const char* reason = "";
  } matmul;
  // Mixed precision (train.amp): the fp16 matmul reads packed halves (core GLSL); fp16 output
  // (stores of float16_t) needs 16-bit storage.
  struct MatmulF16 {
    MatmulKernel kernel = MatmulKernel::tiled;  // register_blocked only as the 8-lane fp32 kernel
    bool runs = true;              // as the fp32 matmul kernel runs
    bool f16_output = false;       // storageBuffer16BitAccess
    const char* missing = "";      // the feature fp16 output lacks, "" when it has it
    const char* reason = "";
  } matmul_f16;
  // The attention blocks: fused kernels (8-lane workgroups, online softmax) or matmul + softmax.
  struct Attention {
    bool fused = false;  // for head widths that have fused kernels (16, 32, 64)
    vk::SubgroupPin pin; // the fused kernels' 8 lanes as one subgroup
    const char* reason = "";
  } attention;
  // LayerNorm's row kernels: one subgroup per row, 4 subgroups per workgroup.
  struct LayerNorm {
    uint32_t subgroup_size = 1;  // the size the launcher lays rows out for
    vk::SubgroupPin pin;         // that size, whole subgroups (unpinned where the device cannot)
    bool pinned = false;         // the device can pin that size
    uint32_t workgroup_size = 4;
    const char* reason = "";
  } layernorm;
  // The bias gradient's column tiles (for N % 4 == 0, every ViT width; else 32 x 1 columns).
  struct BiasGrad {
    uint32_t tile_n = 8;  // column groups per workgroup
    uint32_t vec = 4;     // columns per invocation
    uint32_t workgroup_size = 256;
    const char* reason = "";
  } bias_grad;
  // Softmax rows reduce with subgroupAdd/Max over gl_NumSubgroups: any size, nothing pinned.
  struct Softmax {
    bool runs = true;
    const char* reason = "";
  } softmax;
  // Mixup/CutMix (train.mixup, train.cutmix): one pass over the uploaded batch on the device, or
  // the host mixes it in the mapped staging memory (ops/mix_batch.h).
  struct MixBatch {
    bool on_device = false;
    const char* reason = "";
  } mix_batch;
  // Elementwise ops, LayerNorm and the fused attention: four floats as one 64-bit pair.
  struct Elementwise {
    bool wide = false;
    const char* reason = "";
  } elementwise;
  const char* cooperative_matrix = "";  // what vkvit does with the device's cooperative matrices

  // An override the device cannot run: the error its op throws (the op that would run it, so
  // that the others still run), empty when there is none. VKVIT_MATMUL_KERNEL=register_blocked
  // without 8-lane subgroups; VKVIT_MATMUL_TILE past the workgroup or shared-memory limits (for
  // the tiled kernels); VKVIT_ATTENTION=fused without 8-lane subgroups.
  std::string matmul_refused, tile_refused, attention_refused;

  // One line per op, "op: kernel, shape, subgroup, features (reason)", in a fixed order
  // (matmul, matmul_f16, attention, layernorm, bias_grad, softmax, mix_batch, elementwise, coopmat).
  std::vector<std::string> describe() const;
};

// The choice for `device` under `tuning`. An override (VKVIT_MATMUL_KERNEL, VKVIT_MATMUL_TILE,
// VKVIT_ATTENTION=fused) that the device cannot run leaves its message in the *_refused fields,
// which the op concerned throws as one vkvit::Error naming the variable, what the device lacks
// and what to do.
KernelChoice choose_kernels(const vk::DeviceInfo& device, const vk::Tuning& tuning);
// choose_kernels for the device the context chooses kernels for (ctx.kernel_device()).
KernelChoice kernel_choice(const vk::Context& ctx);

}  // namespace vkvit::ops
