#include "ops/adamw.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "ops/launch.h"

namespace vkvit::ops {

namespace {
struct AdamWPush {
  uint32_t n;         // floats in this chunk
  uint32_t first;     // flat index of the chunk's first float: the decay mask's coordinates
  uint32_t start;     // float of the chunk where this dispatch starts (a multiple of 4)
  uint32_t use_clip;  // 1: multiply gradients by clip[1]
  float step_size;              // lr / (1 - beta1^t)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^t)
  float decay_factor;           // 1 - lr * weight_decay
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float eps;
  float lr_wd;  // lr * weight_decay: SCALED's decay is 1 - scale * lr_wd
};
static_assert(sizeof(AdamWPush) == 52);

// Mirrors shaders/common/adamw.glsl's layout(constant_id = 0) WORKGROUP_SIZE (common/index.glsl),
// layout(constant_id = 1) WIDE, layout(constant_id = 2) PARTIAL and layout(constant_id = 3) SCALED.
struct AdamWSpec {
  vk::SpecField<0, uint32_t> workgroup_size;
  vk::SpecField<1, bool> wide;
  vk::SpecField<2, bool> partial;
  vk::SpecField<3, bool> scaled;
  vk::SpecConstants to_spec() const { return vk::SpecConstants(workgroup_size, wide, partial, scaled); }
};
constexpr uint64_t kScaleBlock = 64;  // floats per lr-scale entry: model::ParamLayout::kAlignFloats
}  // namespace

bool adamw_decays(std::string_view name, size_t ndim) {
  if (ndim <= 1) return false;
  const std::string_view bias = ".bias";
  if (name.size() >= bias.size() && name.substr(name.size() - bias.size()) == bias) return false;
  return name != "cls_token" && name != "pos_embed" && name != "dist_token";
}

std::vector<uint32_t> adamw_decay_mask(const std::vector<ParamRange>& tensors, uint64_t n) {
  std::vector<ParamRange> sorted;
  for (const ParamRange& r : tensors)
    if (r.count) sorted.push_back(r);
  std::sort(sorted.begin(), sorted.end(), [](const ParamRange& a, const ParamRange& b) { return a.first < b.first; });
  std::vector<uint32_t> mask((n + 31) / 32, 0u);
  for (size_t i = 0; i < sorted.size(); ++i) {
    const ParamRange& r = sorted[i];
    if (i > 0 && r.first < sorted[i - 1].first + sorted[i - 1].count)
      throw Error("internal: parameter tensors at floats " + std::to_string(sorted[i - 1].first) + " and " +
                  std::to_string(r.first) + " overlap");
    if (r.first + r.count > n)
      throw Error("internal: a parameter tensor at float " + std::to_string(r.first) + " runs past the buffer's " +
                  std::to_string(n) + " floats");
    if (!r.decay) continue;
    for (uint64_t e = r.first; e < r.first + r.count; ++e) mask[e / 32] |= 1u << (e % 32);
  }
  return mask;
}

std::vector<float> adamw_lr_scale_blocks(const std::vector<ParamRange>& tensors, uint64_t n) {
  std::vector<float> blocks((n + kScaleBlock - 1) / kScaleBlock, 1.0f);
  for (const ParamRange& r : tensors) {
    if (r.count == 0) continue;
    if (r.first % kScaleBlock)
      throw Error("internal: a parameter tensor at float " + std::to_string(r.first) +
                  " does not start at a multiple of 64 floats; the AdamW lr scales are per 64-float block");
    if (r.first + r.count > n)
      throw Error("internal: a parameter tensor at float " + std::to_string(r.first) + " runs past the buffer's " +
                  std::to_string(n) + " floats");
    for (uint64_t b = r.first / kScaleBlock; b * kScaleBlock < r.first + r.count; ++b) blocks[b] = float(r.lr_scale);
  }
  return blocks;
}

void adamw_step(vk::Recorder& rec, const vk::View& params, const vk::View& m, const vk::View& v, const vk::View& grads,
                const vk::View& clip, const vk::View& decay_mask, uint64_t n, const AdamWHyper& h, uint64_t t,
                const vk::View& lr_scale_blocks, uint64_t first_float) {
  if (t == 0) throw Error("internal: AdamW step count t starts at 1");
  const uint64_t end = first_float + n;  // the mask and the scale table cover [0, end)
  if (end > UINT32_MAX) throw Error("AdamW: more than 2^32 parameters; the decay mask uses 32-bit offsets");
  if (first_float % kScaleBlock) throw Error("internal: an AdamW range starts at a float that is not a multiple of 64");
  if (n == 0) return;
  if (decay_mask.size < (end + 31) / 32 * 4)
    throw Error("internal: the AdamW decay mask holds " + std::to_string(decay_mask.size / 4) + " words, " +
                std::to_string((end + 31) / 32) + " needed; build it with adamw_decay_mask");
  const bool use_clip = clip.buffer != VK_NULL_HANDLE;
  const bool scaled = lr_scale_blocks.buffer != VK_NULL_HANDLE;
  if (scaled && lr_scale_blocks.size < (end + kScaleBlock - 1) / kScaleBlock * 4)
    throw Error("internal: the AdamW lr-scale table holds " + std::to_string(lr_scale_blocks.size / 4) +
                " blocks, " + std::to_string((end + kScaleBlock - 1) / kScaleBlock) + " needed");

  AdamWPush push{};
  push.use_clip = use_clip ? 1u : 0u;
  // Hyperparameter arithmetic in double, as PyTorch does it in Python, then rounded once.
  const double bias_correction1 = 1 - std::pow(h.beta1, double(t));
  const double bias_correction2 = 1 - std::pow(h.beta2, double(t));
  push.step_size = float(h.lr / bias_correction1);
  push.bias_correction2_sqrt = float(std::sqrt(bias_correction2));
  push.decay_factor = float(1 - h.lr * h.weight_decay);
  push.beta1 = float(h.beta1);
  push.one_minus_beta1 = float(1 - h.beta1);
  push.beta2 = float(h.beta2);
  push.one_minus_beta2 = float(1 - h.beta2);
  push.eps = float(h.eps);
  push.lr_wd = float(h.lr * h.weight_decay);

  // Four elements per invocation, as two 64-bit pairs where every view starts 16-byte aligned
  // (chunks start at multiples of 64 floats, so the whole views decide).
  const bool wide = wide_views(rec.context(), {params, m, v, grads});
  constexpr uint32_t kGroup = 64;  // invocations: 256 elements per workgroup
  // Whole groups of four without the per-element path (PARTIAL off); a last group of 1-3 elements
  // in a dispatch of its own that keeps it.
  // The _wide module has the 64-bit pairs; the plain one no 64-bit type (common/wide.glsl).
  const vk::ShaderId shader = wide ? shaders::adamw_wide : shaders::adamw;
  const vk::Kernel& whole =
      rec.context().pipelines().get(shader, 7, sizeof(AdamWPush), AdamWSpec{kGroup, wide, false, scaled});
  const vk::Kernel& partial =
      rec.context().pipelines().get(shader, 7, sizeof(AdamWPush), AdamWSpec{1u, wide, true, scaled});
  // Without clipping the clip binding is never read, nor the scales without SCALED; the mask
  // stands in for them.
  const vk::View clip_view = use_clip ? clip.slice(0, 2) : decay_mask;
  const vk::View scale_view = scaled ? lr_scale_blocks : decay_mask;
  // Four bindings of n floats each: every one must fit maxStorageBufferRange.
  for_each_chunk(rec.context(), n, 4, [&](uint64_t chunk, uint64_t count) {
    const uint64_t first = first_float + chunk;
    push.first = static_cast<uint32_t>(first);
    auto run = [&](const vk::Kernel& k, uint64_t start, uint64_t end, uint64_t groups) {
      push.start = static_cast<uint32_t>(start);
      push.n = static_cast<uint32_t>(end);
      rec.dispatch(k,
                   {params.slice(first, count), m.slice(first, count), v.slice(first, count),
                    grads.slice(first, count), clip_view, decay_mask, scale_view},
                   push, rec.groups_1d(groups), "adamw");
    };
    const uint64_t whole_floats = count / 4 * 4;
    if (whole_floats > 0) run(whole, 0, whole_floats, div_up(whole_floats, 4 * kGroup));
    if (whole_floats < count) run(partial, whole_floats, count, 1);
  });
}

}  // namespace vkvit::ops
