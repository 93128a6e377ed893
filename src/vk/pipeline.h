// Compute pipelines created once and cached by (shader, specialization constants), and descriptor
// sets cached by the exact buffer ranges they bind, so a training step that repeats the same
// bindings reuses the same sets. Every shader's bindings are storage buffers 0..n-1 in set 0,
// in launcher-argument order, plus one push-constant block.
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
  // `bindings` and `push_bytes` must match the shader (validation layers check the rest).
  const Kernel& get(const std::string& shader, uint32_t bindings, uint32_t push_bytes, const SpecConstants& spec = {});

  // A descriptor set of `kernel`'s layout binding `views` in order; cached by the exact ranges.
  VkDescriptorSet descriptor_set(const Kernel& kernel, const View* views, uint32_t count);

  // Called when a buffer is destroyed: its cached sets must go, because a new buffer may reuse
  // the same handle value and would otherwise be bound through a set that names the old one.
  void forget_buffer(VkBuffer buffer);

  size_t pipeline_count() const { return kernels_.size(); }
  size_t descriptor_set_count() const { return sets_.size(); }

 private:
  VkDescriptorSetLayout set_layout(uint32_t bindings);
  struct CachedSet {
    VkDescriptorSet set;
    VkDescriptorPool pool;
  };
  CachedSet allocate_set(VkDescriptorSetLayout layout);

  Context& ctx_;
  std::map<std::string, std::unique_ptr<Kernel>> kernels_;
  std::map<uint32_t, VkDescriptorSetLayout> set_layouts_;
  std::unordered_map<std::string, CachedSet> sets_;
  std::unordered_map<VkBuffer, std::vector<std::string>> keys_by_buffer_;
  std::vector<VkDescriptorPool> pools_;
  uint32_t sets_left_in_pool_ = 0;
};

}  // namespace vkvit::vk
