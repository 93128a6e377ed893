#include "vk/spirv_caps.h"

#include <map>

#include "base/error.h"
#include "vk/context.h"

namespace vkvit::vk {

namespace {

constexpr uint32_t kSpirvMagic = 0x07230203;
constexpr size_t kHeaderWords = 5;

// Opcodes, decorations and execution modes that these readers look at.
constexpr uint32_t kOpCapability = 17;
constexpr uint32_t kOpExecutionMode = 16;
constexpr uint32_t kOpDecorate = 71;
constexpr uint32_t kOpConstant = 43;
constexpr uint32_t kOpConstantComposite = 44;
constexpr uint32_t kOpSpecConstant = 50;
constexpr uint32_t kOpSpecConstantComposite = 51;
constexpr uint32_t kDecorationSpecId = 1;
constexpr uint32_t kDecorationBuiltIn = 11;
constexpr uint32_t kBuiltInWorkgroupSize = 25;
constexpr uint32_t kExecutionModeLocalSize = 17;
constexpr uint32_t kExecutionModeLocalSizeId = 38;

// One capability vkvit's shaders may declare: its name and whether (and under which feature name)
// a device offers it. `has` is null for capabilities every Vulkan 1.2 compute device has.
struct CapabilityRule {
  uint32_t id;
  const char* name;
  const char* feature;
  bool (*has)(const DeviceInfo&);
};

template <VkSubgroupFeatureFlags Bit>
bool has_subgroup(const DeviceInfo& d) {
  return d.has_subgroup_ops(Bit);
}

const CapabilityRule kRules[] = {
    {1, "Shader", "", nullptr},
    {46, "SampledBuffer", "", nullptr},  // uniform texel buffers: core Vulkan
    {9, "Float16", "shaderFloat16", [](const DeviceInfo& d) { return d.float16; }},
    {10, "Float64", "shaderFloat64", [](const DeviceInfo& d) { return d.float64; }},
    {11, "Int64", "shaderInt64", [](const DeviceInfo& d) { return d.int64; }},
    {22, "Int16", "shaderInt16", [](const DeviceInfo& d) { return d.int16; }},
    {39, "Int8", "shaderInt8", [](const DeviceInfo& d) { return d.int8; }},
    {4433, "StorageBuffer16BitAccess", "storageBuffer16BitAccess", [](const DeviceInfo& d) { return d.storage16; }},
    {4434, "UniformAndStorageBuffer16BitAccess", "uniformAndStorageBuffer16BitAccess",
     [](const DeviceInfo& d) { return d.uniform_storage16; }},
    {4435, "StoragePushConstant16", "storagePushConstant16", [](const DeviceInfo& d) { return d.push_constant16; }},
    {61, "GroupNonUniform", "basic subgroup operations in compute shaders", has_subgroup<VK_SUBGROUP_FEATURE_BASIC_BIT>},
    {62, "GroupNonUniformVote", "subgroup vote operations in compute shaders", has_subgroup<VK_SUBGROUP_FEATURE_VOTE_BIT>},
    {63, "GroupNonUniformArithmetic", "subgroup arithmetic operations in compute shaders",
     has_subgroup<VK_SUBGROUP_FEATURE_ARITHMETIC_BIT>},
    {64, "GroupNonUniformBallot", "subgroup ballot operations in compute shaders",
     has_subgroup<VK_SUBGROUP_FEATURE_BALLOT_BIT>},
    {65, "GroupNonUniformShuffle", "subgroup shuffle operations in compute shaders",
     has_subgroup<VK_SUBGROUP_FEATURE_SHUFFLE_BIT>},
    {66, "GroupNonUniformShuffleRelative", "subgroup relative shuffle operations in compute shaders",
     has_subgroup<VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT>},
    {67, "GroupNonUniformClustered", "subgroup clustered operations in compute shaders",
     has_subgroup<VK_SUBGROUP_FEATURE_CLUSTERED_BIT>},
    {68, "GroupNonUniformQuad", "subgroup quad operations in compute shaders", has_subgroup<VK_SUBGROUP_FEATURE_QUAD_BIT>},
    {5357, "CooperativeMatrixNV", "VK_NV_cooperative_matrix", [](const DeviceInfo& d) { return d.cooperative_matrix_nv; }},
    {6022, "CooperativeMatrixKHR", "VK_KHR_cooperative_matrix",
     [](const DeviceInfo& d) { return d.cooperative_matrix_khr; }},
};

const CapabilityRule* rule(uint32_t capability) {
  for (const CapabilityRule& r : kRules)
    if (r.id == capability) return &r;
  return nullptr;
}

// Calls fn(opcode, operands, operand_count) for each instruction after the header.
template <class Fn>
void for_each_instruction(const uint32_t* words, size_t word_count, Fn&& fn) {
  if (word_count < kHeaderWords || words[0] != kSpirvMagic) throw Error("internal: not a SPIR-V module");
  for (size_t i = kHeaderWords; i < word_count;) {
    const uint32_t count = words[i] >> 16, opcode = words[i] & 0xffffu;
    if (count == 0 || i + count > word_count)
      throw Error("internal: SPIR-V module ends inside an instruction at word " + std::to_string(i));
    fn(opcode, words + i + 1, size_t(count - 1));
    i += count;
  }
}

}  // namespace

std::vector<uint32_t> spirv_capabilities(const uint32_t* words, size_t word_count) {
  std::vector<uint32_t> caps;
  for_each_instruction(words, word_count, [&](uint32_t opcode, const uint32_t* ops, size_t n) {
    if (opcode == kOpCapability && n >= 1) caps.push_back(ops[0]);
  });
  return caps;
}

std::string capability_name(uint32_t capability) {
  const CapabilityRule* r = rule(capability);
  return r ? r->name : "capability " + std::to_string(capability);
}

bool capability_known(uint32_t capability) { return rule(capability) != nullptr; }

std::string missing_feature(uint32_t capability, const DeviceInfo& device) {
  const CapabilityRule* r = rule(capability);
  if (!r || !r->has || r->has(device)) return "";
  return r->feature;
}

std::string missing_feature_hint(uint32_t capability) {
  switch (capability) {
    case 11:
      return "a launcher should have chosen the module without 64-bit types (report this); VKVIT_WIDE=0 and "
             "VKVIT_MATMUL_WIDE=0 avoid the 64-bit modules";
    case 9:
    case 4433:
    case 4434:
    case 4435:
      return "fp16 needs these device features: train without amp (train.amp: false, or no --amp)";
    default:
      if (capability >= 61 && capability <= 68)
        return "choose a kernel that does without (VKVIT_MATMUL_KERNEL=tiled, VKVIT_ATTENTION=unfused) or another "
               "device (VKVIT_DEVICE; `vkvit devices` lists what each offers)";
      return "choose another device (VKVIT_DEVICE; `vkvit devices` lists what each offers)";
  }
}

WorkgroupSize spirv_workgroup_size(const uint32_t* words, size_t word_count,
                                   const std::vector<std::pair<uint32_t, uint32_t>>& spec) {
  WorkgroupSize local;  // the LocalSize execution mode
  uint32_t builtin_id = 0;
  std::vector<uint32_t> local_ids;  // the LocalSizeId execution mode's constants
  std::map<uint32_t, uint32_t> spec_ids, values;
  std::map<uint32_t, std::vector<uint32_t>> composites;
  for_each_instruction(words, word_count, [&](uint32_t opcode, const uint32_t* ops, size_t n) {
    if (opcode == kOpExecutionMode && n >= 5 && ops[1] == kExecutionModeLocalSize) {
      local = {ops[2], ops[3], ops[4]};
    } else if (opcode == kOpExecutionMode && n >= 5 && ops[1] == kExecutionModeLocalSizeId) {
      local_ids.assign(ops + 2, ops + 5);
    } else if (opcode == kOpDecorate && n >= 3 && ops[1] == kDecorationBuiltIn && ops[2] == kBuiltInWorkgroupSize) {
      builtin_id = ops[0];
    } else if (opcode == kOpDecorate && n >= 3 && ops[1] == kDecorationSpecId) {
      spec_ids[ops[0]] = ops[2];
    } else if ((opcode == kOpConstant || opcode == kOpSpecConstant) && n == 3) {
      values[ops[1]] = ops[2];  // 32-bit scalars only: the workgroup size's components are uints
    } else if ((opcode == kOpConstantComposite || opcode == kOpSpecConstantComposite) && n >= 2) {
      composites[ops[1]].assign(ops + 2, ops + n);
    }
  });
  // The WorkgroupSize built-in takes precedence over the execution mode; LocalSizeId names
  // (specialization) constants like its components do.
  const std::vector<uint32_t>* ids = nullptr;
  auto it = composites.find(builtin_id);
  if (builtin_id != 0 && it != composites.end() && it->second.size() == 3)
    ids = &it->second;
  else if (local_ids.size() == 3)
    ids = &local_ids;
  if (!ids) return local;
  // A component is a constant, or a specialization constant whose default `spec` may override.
  const uint32_t fallback[3] = {local.x, local.y, local.z};
  uint32_t size[3];
  for (int c = 0; c < 3; ++c) {
    const uint32_t id = (*ids)[c];
    auto v = values.find(id);
    size[c] = v != values.end() ? v->second : fallback[c];
    auto s = spec_ids.find(id);
    if (s == spec_ids.end()) continue;
    for (const auto& [constant_id, bits] : spec)
      if (constant_id == s->second) size[c] = bits;
  }
  return {size[0], size[1], size[2]};
}

std::string workgroup_limit_violation(const WorkgroupSize& size, const DeviceInfo& device) {
  const std::string shape = std::to_string(size.x) + "x" + std::to_string(size.y) + "x" + std::to_string(size.z);
  if (device.max_workgroup_invocations != 0 && size.invocations() > device.max_workgroup_invocations)
    return "workgroup " + shape + " (" + std::to_string(size.invocations()) +
           " invocations) exceeds maxComputeWorkGroupInvocations " + std::to_string(device.max_workgroup_invocations);
  const uint32_t dims[3] = {size.x, size.y, size.z};
  for (int c = 0; c < 3; ++c)
    if (device.max_workgroup_size[c] != 0 && dims[c] > device.max_workgroup_size[c])
      return "workgroup " + shape + " exceeds maxComputeWorkGroupSize[" + std::to_string(c) + "] " +
             std::to_string(device.max_workgroup_size[c]);
  return "";
}

void check_module_fits_device(const std::string& shader, const uint32_t* words, size_t word_count,
                              const std::vector<std::pair<uint32_t, uint32_t>>& spec, const DeviceInfo& device) {
  for (uint32_t cap : spirv_capabilities(words, word_count)) {
    const std::string missing = missing_feature(cap, device);
    if (!missing.empty())
      throw Error("shader " + shader + " needs " + missing + " (SPIR-V capability " + capability_name(cap) +
                  "), which device " + device.name + " lacks; " + missing_feature_hint(cap));
  }
  const std::string over = workgroup_limit_violation(spirv_workgroup_size(words, word_count, spec), device);
  if (!over.empty())
    throw Error("shader " + shader + ": " + over + " on device " + device.name +
                " (internal: its launcher must pick a workgroup within the device's limits)");
}

}  // namespace vkvit::vk
