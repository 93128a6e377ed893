#include "ops/adamw.h"

#include <algorithm>
#include <cmath>

#include "ops/launch.h"
#include "vk/error.h"

namespace vkvit::ops {

namespace {
struct AdamWPush {
  uint32_t n;         // floats in this chunk
  uint32_t first;     // flat index of the chunk's first float: the decay table's coordinates
  uint32_t ranges;    // [start, end) pairs in the decay table
  uint32_t use_clip;  // 1: multiply gradients by clip[1]
  float step_size;              // lr / (1 - beta1^t)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^t)
  float decay_factor;           // 1 - lr * weight_decay
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float eps;
};
static_assert(sizeof(AdamWPush) == 48);
}  // namespace

bool adamw_decays(std::string_view name, size_t ndim) {
  if (ndim <= 1) return false;
  const std::string_view bias = ".bias";
  if (name.size() >= bias.size() && name.substr(name.size() - bias.size()) == bias) return false;
  return name != "cls_token" && name != "pos_embed" && name != "dist_token";
}

std::vector<uint32_t> adamw_decay_table(const std::vector<ParamRange>& tensors) {
  std::vector<ParamRange> sorted;
  for (const ParamRange& r : tensors)
    if (r.count) sorted.push_back(r);
  std::sort(sorted.begin(), sorted.end(), [](const ParamRange& a, const ParamRange& b) { return a.first < b.first; });
  std::vector<uint32_t> table;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const ParamRange& r = sorted[i];
    if (i > 0 && r.first < sorted[i - 1].first + sorted[i - 1].count)
      throw Error("internal: parameter tensors at floats " + std::to_string(sorted[i - 1].first) + " and " +
                  std::to_string(r.first) + " overlap");
    if (r.first + r.count > UINT32_MAX)
      throw Error("AdamW: the flat parameter buffer exceeds 2^32 floats; the decay table uses 32-bit offsets");
    if (!r.decay) continue;
    const uint32_t start = static_cast<uint32_t>(r.first), end = static_cast<uint32_t>(r.first + r.count);
    if (!table.empty() && table.back() == start)
      table.back() = end;  // adjacent decayed tensors: one range
    else
      table.insert(table.end(), {start, end});
  }
  if (table.empty()) table = {0, 0};
  return table;
}

void adamw_step(vk::Recorder& rec, const vk::View& params, const vk::View& m, const vk::View& v, const vk::View& grads,
                const vk::View& clip, const vk::View& decay_table, uint64_t n, const AdamWHyper& h, uint64_t t) {
  if (t == 0) throw Error("internal: AdamW step count t starts at 1");
  if (n > UINT32_MAX) throw Error("AdamW: more than 2^32 parameters; the decay table uses 32-bit offsets");
  if (n == 0) return;
  const uint32_t ranges = static_cast<uint32_t>(decay_table.size / 8);
  if (ranges == 0) throw Error("internal: empty AdamW decay table; build it with adamw_decay_table");
  const bool use_clip = clip.buffer != VK_NULL_HANDLE;

  AdamWPush push{};
  push.ranges = ranges;
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

  const vk::Kernel& k = rec.context().pipelines().get("adamw", 6, sizeof(AdamWPush), {kElementwiseGroup});
  // Without clipping the clip binding is never read; the table stands in for it.
  const vk::View clip_view = use_clip ? clip.slice(0, 2) : decay_table;
  // Four bindings of n floats each: every one must fit maxStorageBufferRange.
  for_each_chunk(rec.context(), n, 4, [&](uint64_t first, uint64_t count) {
    push.n = static_cast<uint32_t>(count);
    push.first = static_cast<uint32_t>(first);
    rec.dispatch(k,
                 {params.slice(first, count), m.slice(first, count), v.slice(first, count),
                  grads.slice(first, count), clip_view, decay_table},
                 push, rec.groups_1d(div_up(count, kElementwiseGroup)), "adamw");
  });
}

}  // namespace vkvit::ops
