// Compute pipelines created once and cached by (shader, specialization constants), and descriptor
// sets cached by the exact buffer ranges they bind, so a training step that repeats the same
// bindings reuses the same sets. A shader's bindings are 0..n-1 in set 0, in launcher-argument
// order, plus one push-constant block; each binding is a storage buffer, or a read-only uniform
// texel buffer of RGBA32F texels (a bit in the kernel's texel mask; the cache makes the buffer
// views). Texel fetches are how llvmpipe reads memory without a per-lane loop (ops/matmul.cpp).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <vulkan/vulkan.h>

#include "vk/memory.h"

namespace vkvit::vk {

class Context;

struct Kernel {
  std::string name;  // shader name, for errors and the profile
  uint32_t bindings = 0;
  uint32_t push_bytes = 0;
  uint32_t texel_mask = 0;  // bit i: binding i is a uniform texel buffer (RGBA32F), else storage
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkPipeline pipeline = VK_NULL_HANDLE;
};

// Specialization constant with constant_id = its position; floats are passed by their bits.
using SpecConstants = std::vector<uint32_t>;
uint32_t spec_float(float f);

class PipelineCache {
 public:
  explicit PipelineCache(Context& ctx);
  ~PipelineCache();

  // The pipeline for shaders/<shader>.comp with these constants; created on first use.
  // `bindings`, `push_bytes` and `texel_mask` must match the shader (validation layers check the rest).
  const Kernel& get(const std::string& shader, uint32_t bindings, uint32_t push_bytes, const SpecConstants& spec = {},
                    uint32_t texel_mask = 0);

  // A descriptor set of `kernel`'s layout binding `views` in order; cached by the exact ranges.
  VkDescriptorSet descriptor_set(const Kernel& kernel, const View* views, uint32_t count);

  // Called when a buffer is destroyed: its cached sets must go, because a new buffer may reuse
  // the same handle value and would otherwise be bound through a set that names the old one.
  void forget_buffer(VkBuffer buffer);

  size_t pipeline_count() const { return kernels_.size(); }
  size_t descriptor_set_count() const { return sets_.size(); }

 private:
  VkDescriptorSetLayout set_layout(uint32_t bindings, uint32_t texel_mask);
  struct CachedSet {
    VkDescriptorSet set;
    VkDescriptorPool pool;
    std::vector<VkBufferView> texel_views;  // destroyed with the set
  };
  void free_set(const CachedSet& s);
  CachedSet allocate_set(VkDescriptorSetLayout layout);

  Context& ctx_;
  std::map<std::string, std::unique_ptr<Kernel>> kernels_;
  std::map<std::pair<uint32_t, uint32_t>, VkDescriptorSetLayout> set_layouts_;  // (bindings, texel mask)
  std::unordered_map<std::string, CachedSet> sets_;
  std::unordered_map<VkBuffer, std::vector<std::string>> keys_by_buffer_;
  std::vector<VkDescriptorPool> pools_;
  uint32_t sets_left_in_pool_ = 0;
};

}  // namespace vkvit::vk
