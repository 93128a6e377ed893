// What a SPIR-V module asks of the device, read from its words before the pipeline is created:
// the OpCapability instructions (each needs a device feature; a driver may crash on a module that
// declares a capability the device lacks, even if the code using it never runs) and the
// workgroup size after specialization (which must fit the device's compute limits). PipelineCache
// checks both, so that a kernel the device cannot run is one error naming the shader and the
// missing feature instead of a crash inside the driver.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace vkvit::vk {

struct DeviceInfo;

// The operands of every OpCapability in the module, in order. `words` is the whole module (a
// 5-word header, then instructions whose first word is (word count << 16) | opcode); a module
// that is not SPIR-V or ends inside an instruction throws.
std::vector<uint32_t> spirv_capabilities(const uint32_t* words, size_t word_count);

// The capability's SPIR-V name ("Int64", "GroupNonUniformShuffle"), or "capability <id>".
std::string capability_name(uint32_t capability);

// Whether vkvit knows which device feature `capability` needs (the capabilities its shaders
// declare); unknown ones are not checked.
bool capability_known(uint32_t capability);

// The device feature that `capability` needs and `device` lacks ("shaderInt64", "subgroup
// shuffle operations in compute shaders"), or "" when the device has it or the capability is not
// one vkvit checks.
std::string missing_feature(uint32_t capability, const DeviceInfo& device);

// What to do when a shader needs `capability` and the device lacks it: one clause for the error.
std::string missing_feature_hint(uint32_t capability);

// A pipeline's workgroup size: the LocalSize execution mode, or the WorkgroupSize built-in
// whose components may be specialization constants, with `spec` ((constant_id, value) pairs)
// overriding their defaults.
struct WorkgroupSize {
  uint32_t x = 1, y = 1, z = 1;
  uint64_t invocations() const { return uint64_t(x) * y * z; }
};
WorkgroupSize spirv_workgroup_size(const uint32_t* words, size_t word_count,
                                   const std::vector<std::pair<uint32_t, uint32_t>>& spec);

// "" when `size` fits the device's maxComputeWorkGroupInvocations and maxComputeWorkGroupSize,
// else what exceeds which limit.
std::string workgroup_limit_violation(const WorkgroupSize& size, const DeviceInfo& device);

// Throws vkvit::Error naming `shader` when the module declares a capability `device` lacks or
// its workgroup (with `spec`) exceeds the device's limits.
void check_module_fits_device(const std::string& shader, const uint32_t* words, size_t word_count,
                              const std::vector<std::pair<uint32_t, uint32_t>>& spec, const DeviceInfo& device);

}  // namespace vkvit::vk
