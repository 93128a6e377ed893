#include "vk/pipeline.h"

#include <algorithm>
#include <cstring>

#include "vk/context.h"
#include "vk/error.h"
#include "vk/shader_registry.h"
#include "vk/spirv_caps.h"

namespace vkvit::vk {

namespace {
constexpr uint32_t kSetsPerPool = 256;
constexpr uint32_t kMaxBindings = 16;
}  // namespace

uint32_t spec_bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}

void SpecConstants::set(uint32_t id, uint32_t bits) {
  auto at = std::lower_bound(values_.begin(), values_.end(), id,
                             [](const std::pair<uint32_t, uint32_t>& v, uint32_t i) { return v.first < i; });
  if (at != values_.end() && at->first == id)
    throw Error("internal: specialization constant " + std::to_string(id) + " set twice");
  values_.insert(at, {id, bits});
}

SpecConstants& SpecConstants::add(const SpecConstants& more) {
  for (const auto& [id, bits] : more.values_) set(id, bits);
  return *this;
}

std::string SpecConstants::key() const {
  std::string key;
  for (const auto& [id, bits] : values_) key += ":" + std::to_string(id) + "=" + std::to_string(bits);
  return key;
}

std::vector<VkSpecializationMapEntry> SpecConstants::map_entries() const {
  std::vector<VkSpecializationMapEntry> entries;
  for (uint32_t i = 0; i < values_.size(); ++i) entries.push_back({values_[i].first, i * 4u, 4u});
  return entries;
}

std::vector<uint32_t> SpecConstants::data() const {
  std::vector<uint32_t> data;
  for (const auto& v : values_) data.push_back(v.second);
  return data;
}

PipelineCache::PipelineCache(Context& ctx) : ctx_(ctx) {}

PipelineCache::~PipelineCache() {
  VkDevice d = ctx_.device();
  for (auto& [key, k] : kernels_) {
    vkDestroyPipeline(d, k->pipeline, nullptr);
    vkDestroyPipelineLayout(d, k->layout, nullptr);
  }
  for (auto& [key, s] : sets_)
    for (VkBufferView v : s.texel_views) vkDestroyBufferView(d, v, nullptr);
  for (auto& [n, l] : set_layouts_) vkDestroyDescriptorSetLayout(d, l, nullptr);
  for (VkDescriptorPool p : pools_) vkDestroyDescriptorPool(d, p, nullptr);
}

static VkDescriptorType descriptor_type(uint32_t texel_mask, uint32_t binding) {
  return (texel_mask >> binding) & 1u ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
}

VkDescriptorSetLayout PipelineCache::set_layout(uint32_t bindings, uint32_t texel_mask) {
  auto it = set_layouts_.find({bindings, texel_mask});
  if (it != set_layouts_.end()) return it->second;
  std::vector<VkDescriptorSetLayoutBinding> b(bindings);
  for (uint32_t i = 0; i < bindings; ++i) {
    b[i].binding = i;
    b[i].descriptorType = descriptor_type(texel_mask, i);
    b[i].descriptorCount = 1;
    b[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
  }
  VkDescriptorSetLayoutCreateInfo ci{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  ci.bindingCount = bindings;
  ci.pBindings = b.data();
  VkDescriptorSetLayout layout;
  check(vkCreateDescriptorSetLayout(ctx_.device(), &ci, nullptr, &layout), "vkCreateDescriptorSetLayout");
  set_layouts_[{bindings, texel_mask}] = layout;
  return layout;
}

std::string SubgroupPin::key() const {
  if (size == 0) return {};
  return "|subgroup=" + std::to_string(size) + (full ? "full" : "");
}

void PipelineCache::apply_subgroup_pin(VkPipelineShaderStageCreateInfo& stage,
                                       VkPipelineShaderStageRequiredSubgroupSizeCreateInfoEXT& required,
                                       SubgroupPin pin) const {
  const DeviceInfo& info = ctx_.info();
  if (!info.can_pin_subgroup_size(pin.size)) return;
  required.requiredSubgroupSize = pin.size;
  stage.pNext = &required;
  if (pin.full && info.full_subgroups) stage.flags |= VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT_EXT;
}

const Kernel& PipelineCache::get(const std::string& shader, uint32_t bindings, uint32_t push_bytes,
                                 const SpecConstants& spec, uint32_t texel_mask, SubgroupPin pin) {
  const std::string key = shader + spec.key() + pin.key();
  auto it = kernels_.find(key);
  if (it != kernels_.end()) {
    if (it->second->bindings != bindings || it->second->push_bytes != push_bytes ||
        it->second->texel_mask != texel_mask)
      throw Error("shader " + shader + " requested with inconsistent bindings or push-constant size");
    return *it->second;
  }

  const ShaderBinary* bin = find_shader(shader);
  if (!bin)
    throw Error("shader '" + shader + "' is not built into this binary (no shaders/" + shader +
                ".comp nor variant in shaders/variants.cmake)");
  if (bindings > kMaxBindings) throw Error("shader " + shader + " has more than 16 bindings");
  if (push_bytes > ctx_.info().max_push_constants)
    throw Error("shader " + shader + " needs " + std::to_string(push_bytes) + " bytes of push constants; device " +
                ctx_.info().name + " allows " + std::to_string(ctx_.info().max_push_constants));

  // Before the driver sees the module: a capability the device lacks may crash it.
  check_module_fits_device(shader, bin->words, bin->bytes / 4, spec.values(), ctx_.info());

  auto k = std::make_unique<Kernel>();
  k->name = shader;
  k->bindings = bindings;
  k->push_bytes = push_bytes;
  k->texel_mask = texel_mask;
  k->set_layout = set_layout(bindings, texel_mask);

  VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes};
  VkPipelineLayoutCreateInfo lci{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  lci.setLayoutCount = 1;
  lci.pSetLayouts = &k->set_layout;
  lci.pushConstantRangeCount = push_bytes ? 1 : 0;
  lci.pPushConstantRanges = push_bytes ? &range : nullptr;
  check(vkCreatePipelineLayout(ctx_.device(), &lci, nullptr, &k->layout), "vkCreatePipelineLayout");

  VkShaderModuleCreateInfo mci{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  mci.codeSize = bin->bytes;
  mci.pCode = bin->words;
  VkShaderModule module;
  check(vkCreateShaderModule(ctx_.device(), &mci, nullptr, &module), ("vkCreateShaderModule " + shader).c_str());

  const std::vector<VkSpecializationMapEntry> entries = spec.map_entries();
  const std::vector<uint32_t> data = spec.data();
  VkSpecializationInfo si{};
  si.mapEntryCount = static_cast<uint32_t>(entries.size());
  si.pMapEntries = entries.data();
  si.dataSize = data.size() * 4;
  si.pData = data.data();

  VkComputePipelineCreateInfo pci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  pci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  pci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  pci.stage.module = module;
  pci.stage.pName = "main";
  pci.stage.pSpecializationInfo = spec.empty() ? nullptr : &si;
  VkPipelineShaderStageRequiredSubgroupSizeCreateInfoEXT required{
      VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO_EXT};
  apply_subgroup_pin(pci.stage, required, pin);
  pci.layout = k->layout;
  VkResult r = vkCreateComputePipelines(ctx_.device(), VK_NULL_HANDLE, 1, &pci, nullptr, &k->pipeline);
  vkDestroyShaderModule(ctx_.device(), module, nullptr);
  check(r, ("vkCreateComputePipelines " + shader).c_str());

  const Kernel& ref = *k;
  kernels_[key] = std::move(k);
  return ref;
}

PipelineCache::CachedSet PipelineCache::allocate_set(VkDescriptorSetLayout layout) {
  if (sets_left_in_pool_ == 0) {
    const VkDescriptorPoolSize sizes[2] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kSetsPerPool * kMaxBindings},
                                           {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, kSetsPerPool * kMaxBindings}};
    VkDescriptorPoolCreateInfo ci{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
    ci.flags = VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT;
    ci.maxSets = kSetsPerPool;
    ci.poolSizeCount = 2;
    ci.pPoolSizes = sizes;
    VkDescriptorPool pool;
    check(vkCreateDescriptorPool(ctx_.device(), &ci, nullptr, &pool), "vkCreateDescriptorPool");
    pools_.push_back(pool);
    sets_left_in_pool_ = kSetsPerPool;
  }
  VkDescriptorSetAllocateInfo ai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
  ai.descriptorPool = pools_.back();
  ai.descriptorSetCount = 1;
  ai.pSetLayouts = &layout;
  VkDescriptorSet set;
  check(vkAllocateDescriptorSets(ctx_.device(), &ai, &set), "vkAllocateDescriptorSets");
  --sets_left_in_pool_;
  return {set, pools_.back(), {}};
}

void PipelineCache::free_set(const CachedSet& s) {
  vkFreeDescriptorSets(ctx_.device(), s.pool, 1, &s.set);
  for (VkBufferView v : s.texel_views) vkDestroyBufferView(ctx_.device(), v, nullptr);
}

void PipelineCache::forget_buffer(VkBuffer buffer) {
  auto it = keys_by_buffer_.find(buffer);
  if (it == keys_by_buffer_.end()) return;
  for (const std::string& key : it->second) {
    auto s = sets_.find(key);
    if (s == sets_.end()) continue;  // already gone through another of its buffers
    free_set(s->second);
    sets_.erase(s);
  }
  keys_by_buffer_.erase(it);
}

VkDescriptorSet PipelineCache::descriptor_set(const Kernel& kernel, const View* views, uint32_t count) {
  if (count != kernel.bindings)
    throw Error("shader " + kernel.name + " takes " + std::to_string(kernel.bindings) + " buffers, " +
                std::to_string(count) + " given");
  // Key: layout + every (buffer, offset, size), as raw bytes.
  std::string key(reinterpret_cast<const char*>(&kernel.set_layout), sizeof(kernel.set_layout));
  for (uint32_t i = 0; i < count; ++i) {
    key.append(reinterpret_cast<const char*>(&views[i].buffer), sizeof(VkBuffer));
    key.append(reinterpret_cast<const char*>(&views[i].offset), sizeof(uint64_t));
    key.append(reinterpret_cast<const char*>(&views[i].size), sizeof(uint64_t));
  }
  auto it = sets_.find(key);
  if (it != sets_.end()) return it->second.set;

  CachedSet cached = allocate_set(kernel.set_layout);
  const VkDescriptorSet set = cached.set;
  VkDescriptorBufferInfo infos[kMaxBindings];
  VkBufferView texel_views[kMaxBindings];
  VkWriteDescriptorSet writes[kMaxBindings];
  for (uint32_t i = 0; i < count; ++i) {
    writes[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    writes[i].dstSet = set;
    writes[i].dstBinding = i;
    writes[i].descriptorCount = 1;
    writes[i].descriptorType = descriptor_type(kernel.texel_mask, i);
    if ((kernel.texel_mask >> i) & 1u) {
      // Whole RGBA32F texels: the caller binds 16-byte aligned ranges of whole vec4 rows.
      if (views[i].offset % 16 != 0 || views[i].size % 16 != 0)
        throw Error("internal: shader " + kernel.name + " binding " + std::to_string(i) +
                    " as texels needs a 16-byte aligned range of whole texels");
      VkBufferViewCreateInfo vci{VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO};
      vci.buffer = views[i].buffer;
      vci.format = VK_FORMAT_R32G32B32A32_SFLOAT;
      vci.offset = views[i].offset;
      vci.range = views[i].size;
      check(vkCreateBufferView(ctx_.device(), &vci, nullptr, &texel_views[i]), "vkCreateBufferView");
      cached.texel_views.push_back(texel_views[i]);
      writes[i].pTexelBufferView = &texel_views[i];
    } else {
      infos[i] = {views[i].buffer, views[i].offset, views[i].size};
      writes[i].pBufferInfo = &infos[i];
    }
  }
  vkUpdateDescriptorSets(ctx_.device(), count, writes, 0, nullptr);
  sets_[key] = cached;
  for (uint32_t i = 0; i < count; ++i) {
    auto& keys = keys_by_buffer_[views[i].buffer];
    if (keys.empty() || keys.back() != key) keys.push_back(key);
  }
  return set;
}

}  // namespace vkvit::vk
