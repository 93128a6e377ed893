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
#include <utility>
#include <vector>

#include <vulkan/vulkan.h>

#include "vk/memory.h"
#include "vk/shader_registry.h"

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

// A specialization constant's value as the 32 bits Vulkan reads: a bool as VkBool32, a float by
// its bits.
inline uint32_t spec_bits(uint32_t v) { return v; }
inline uint32_t spec_bits(bool v) { return v ? 1u : 0u; }
uint32_t spec_bits(float v);

// One field of a shader's specialization-constant struct: the value of the GLSL
// `layout(constant_id = Id) const T ...`, so the id is written once, in the field's type.
template <uint32_t Id, class T>
struct SpecField {
  static constexpr uint32_t id = Id;
  T value{};
  SpecField() = default;
  SpecField(T v) : value(v) {}  // NOLINT: implicit, so a field is set like a plain value
};

// The specialization constants of one pipeline: (constant_id, value) pairs in id order. A
// shader's struct builds it from its fields (`to_spec()`); constants left out keep the shader's
// defaults.
class SpecConstants {
 public:
  SpecConstants() = default;
  template <uint32_t... Ids, class... Ts>
  explicit SpecConstants(const SpecField<Ids, Ts>&... fields) {
    (set(Ids, spec_bits(fields.value)), ...);
  }
  // A shader's struct of constants converts to the constants it writes, so launchers pass the
  // struct itself to PipelineCache::get.
  template <class Spec, class = decltype(std::declval<const Spec&>().to_spec())>
  SpecConstants(const Spec& spec) : SpecConstants(spec.to_spec()) {}  // NOLINT: implicit on purpose
  // Adds the constants of `more` (a struct of constants that several shaders share).
  SpecConstants& add(const SpecConstants& more);

  bool empty() const { return values_.empty(); }
  // "id=value" pairs, for the pipeline cache's key.
  std::string key() const;
  std::vector<VkSpecializationMapEntry> map_entries() const;
  std::vector<uint32_t> data() const;
  // The (constant_id, value bits) pairs, in id order.
  const std::vector<std::pair<uint32_t, uint32_t>>& values() const { return values_; }

 private:
  void set(uint32_t id, uint32_t bits);  // an id set twice is an internal error
  std::vector<std::pair<uint32_t, uint32_t>> values_;
};

// The workgroup size of the elementwise-style shaders (and any shader that includes
// shaders/common/index.glsl): layout(constant_id = 0) const uint WORKGROUP_SIZE.
struct WorkgroupSpec {
  SpecField<0, uint32_t> workgroup_size;
  SpecConstants to_spec() const { return SpecConstants(workgroup_size); }
};

// The subgroup size a pipeline requires (requiredSubgroupSize, VK_EXT_subgroup_size_control) and
// whether its workgroups must be full subgroups (REQUIRE_FULL_SUBGROUPS: the workgroup's x size
// must then be a multiple of `size`). size 0: the driver picks. A device that cannot pin `size`
// (DeviceInfo::can_pin_subgroup_size) gets the pipeline unpinned; launchers check that first.
struct SubgroupPin {
  uint32_t size = 0;
  bool full = false;
  std::string key() const;  // "" when unpinned, for the pipeline cache's key
};

class PipelineCache {
 public:
  explicit PipelineCache(Context& ctx);
  ~PipelineCache();

  // The pipeline for `shader` (a constant of vk/shader_ids.h) with these constants; created on
  // first use. `bindings`, `push_bytes` and `texel_mask` must match the shader (validation layers
  // check the rest). A shader that declares a capability the device lacks, or whose workgroup
  // exceeds the device's limits, throws naming both (vk/spirv_caps.h) instead of reaching the
  // driver. `pin`: the subgroup size the kernel's layout depends on (SubgroupPin).
  const Kernel& get(ShaderId shader, uint32_t bindings, uint32_t push_bytes, const SpecConstants& spec = {},
                    uint32_t texel_mask = 0, SubgroupPin pin = {}) {
    return get(std::string(shader.name), bindings, push_bytes, spec, texel_mask, pin);
  }
  // The same by name; a name that is not built throws.
  const Kernel& get(const std::string& shader, uint32_t bindings, uint32_t push_bytes, const SpecConstants& spec = {},
                    uint32_t texel_mask = 0, SubgroupPin pin = {});

  // A descriptor set of `kernel`'s layout binding `views` in order; cached by the exact ranges.
  VkDescriptorSet descriptor_set(const Kernel& kernel, const View* views, uint32_t count);

  // Called when a buffer is destroyed: its cached sets must go, because a new buffer may reuse
  // the same handle value and would otherwise be bound through a set that names the old one.
  void forget_buffer(VkBuffer buffer);

  size_t pipeline_count() const { return kernels_.size(); }
  size_t descriptor_set_count() const { return sets_.size(); }

 private:
  VkDescriptorSetLayout set_layout(uint32_t bindings, uint32_t texel_mask);
  // Chains requiredSubgroupSize into `stage` and sets its full-subgroups flag, where the device can.
  void apply_subgroup_pin(VkPipelineShaderStageCreateInfo& stage,
                          VkPipelineShaderStageRequiredSubgroupSizeCreateInfoEXT& required, SubgroupPin pin) const;
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
