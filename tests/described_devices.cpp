// Where the values come from:
//  - lavapipe and SwiftShader: `vkvit devices` on this machine (llvmpipe of Mesa 22.3.6 with LLVM
//    15.0.6 at 256-bit vectors; SwiftShader 5.0.0, the build scripts/install-swiftshader.sh fetches).
//  - the GPUs: the values that the vulkaninfo reports (gpuinfo.org) of the named device and
//    driver give, not yet re-checked field by field against a report. The fields the kernel
//    choice reads are the ones to check against
//    a report when one is at hand: subgroup size, subgroup-size control and its range, subgroup
//    operations in compute, shaderInt64, shaderFloat16, storageBuffer16BitAccess, the workgroup
//    limits, shared memory and cooperative-matrix support. Buffer ranges, allocation sizes and
//    alignments only keep dispatches legal, which the kernel choice never reads (they come from
//    the device the tests run on), so they are given as reported where known and are not
//    load-bearing.
#include "described_devices.h"

namespace vkvit::test {

namespace {

constexpr VkSubgroupFeatureFlags kNoClustered =
    VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_VOTE_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT |
    VK_SUBGROUP_FEATURE_BALLOT_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT |
    VK_SUBGROUP_FEATURE_QUAD_BIT;
constexpr VkSubgroupFeatureFlags kAllOps = kNoClustered | VK_SUBGROUP_FEATURE_CLUSTERED_BIT;

// A Vulkan 1.3 device with subgroup-size control over [min, max] and full subgroups; the caller
// fills the rest.
vk::DeviceInfo device(const std::string& name, VkPhysicalDeviceType type, uint32_t reported, uint32_t min,
                      uint32_t max) {
  vk::DeviceInfo d;
  d.name = name;
  d.type = type;
  d.api_version = "1.3";
  d.vulkan_1_2 = true;
  d.subgroup_size = reported;
  d.subgroup_in_compute = true;
  d.subgroup_ops = kNoClustered;
  d.subgroup_size_control = min > 0;
  d.full_subgroups = min > 0;
  d.min_subgroup_size = min;
  d.max_subgroup_size = max;
  d.int64 = d.int16 = d.float16 = d.int8 = d.storage16 = true;
  d.timestamps = true;
  d.max_workgroup_invocations = 1024;
  d.max_workgroup_size[0] = d.max_workgroup_size[1] = 1024;
  d.max_workgroup_size[2] = 64;
  d.max_workgroup_count[0] = 2147483647;
  d.max_workgroup_count[1] = d.max_workgroup_count[2] = 65535;
  d.max_shared_memory = 32768;
  d.max_push_constants = 128;
  d.max_storage_buffer_range = 1ull << 30;
  d.max_memory_allocation_size = 1ull << 30;
  d.min_storage_offset_alignment = 64;
  d.max_texel_buffer_elements = 1u << 27;
  return d;
}

vk::DeviceInfo::CooperativeMatrix f16_coopmat(uint32_t m, uint32_t n, uint32_t k) {
  // A and B float16 (0), C and the result float32 (1), subgroup scope (3).
  return vk::DeviceInfo::CooperativeMatrix{true, m, n, k, 0, 0, 1, 1, 3};
}

// llvmpipe 0.0.1 (Mesa 22.3.6, LLVM 15.0.6, 256 bits): `vkvit devices` here.
vk::DeviceInfo lavapipe() {
  vk::DeviceInfo d = device("llvmpipe (LLVM 15.0.6, 256 bits)", VK_PHYSICAL_DEVICE_TYPE_CPU, 8, 8, 8);
  d.driver_name = "llvmpipe";
  d.max_workgroup_size[2] = 1024;
  d.max_workgroup_count[0] = 65535;
  d.max_storage_buffer_range = 128ull << 20;
  d.max_memory_allocation_size = 2ull << 30;
  d.min_storage_offset_alignment = 16;
  return d;
}

// SwiftShader driver 5.0.0 (Subzero): `vkvit devices` here. No shaderInt64, no fp16 arithmetic,
// no 16-bit storage, 256 invocations.
vk::DeviceInfo swiftshader() {
  vk::DeviceInfo d = device("SwiftShader Device (Subzero)", VK_PHYSICAL_DEVICE_TYPE_CPU, 4, 4, 4);
  d.driver_name = "SwiftShader driver";
  d.int64 = d.float16 = d.int8 = d.storage16 = false;
  d.max_workgroup_invocations = 256;
  d.max_workgroup_size[0] = d.max_workgroup_size[1] = 256;
  d.max_workgroup_count[0] = 65535;
  d.min_storage_offset_alignment = 256;
  return d;
}

// GeForce RTX 4090, NVIDIA proprietary 535.x on Linux: warps of 32 (pinnable 32-32), every
// subgroup operation, 48 KiB of shared memory, VK_KHR_cooperative_matrix with 16x16x16 fp16.
vk::DeviceInfo rtx_4090() {
  vk::DeviceInfo d = device("NVIDIA GeForce RTX 4090", VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, 32, 32, 32);
  d.driver_name = "NVIDIA";
  d.subgroup_ops = kAllOps;
  d.max_shared_memory = 49152;
  d.max_storage_buffer_range = 0xffffffffull;
  d.max_memory_allocation_size = 4ull << 30;
  d.min_storage_offset_alignment = 16;
  d.cooperative_matrix_khr = true;
  d.cooperative_matrices = {f16_coopmat(16, 16, 16)};
  return d;
}

// H100 (PCIe), NVIDIA data-center driver 535.x on Linux: as Ada for everything vkvit reads.
vk::DeviceInfo h100() {
  vk::DeviceInfo d = rtx_4090();
  d.name = "NVIDIA H100 PCIe";
  return d;
}

// Radeon RX 7900 XTX (RDNA3), RADV of Mesa 24.x: reports 64, pinnable 32-64 (waves of 32 or 64
// are the compiler's choice unless pinned); the wave32 description is the same device reporting
// 32, as compute runs with RADV_PERFTEST=cswave32. 64 KiB of shared memory; cooperative matrices
// 16x16x16.
vk::DeviceInfo rx_7900_xtx(uint32_t wave) {
  vk::DeviceInfo d = device("AMD Radeon RX 7900 XTX (RADV NAVI31)", VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, wave, 32,
                            64);
  d.driver_name = "radv";
  d.subgroup_ops = kAllOps;
  d.max_workgroup_size[2] = 1024;
  d.max_shared_memory = 65536;
  d.max_storage_buffer_range = 0xffffffffull;
  d.max_memory_allocation_size = 0xffffffffull;
  d.min_storage_offset_alignment = 4;
  d.cooperative_matrix_khr = true;
  d.cooperative_matrices = {f16_coopmat(16, 16, 16)};
  return d;
}

// Arc A770 (DG2), ANV of Mesa 24.x: reports 32, pinnable 8-32 (SIMD8/16/32 are the compiler's
// choice unless pinned), 64 KiB of shared memory.
vk::DeviceInfo arc_a770() {
  vk::DeviceInfo d = device("Intel(R) Arc(tm) A770 Graphics (DG2)", VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, 32, 8, 32);
  d.driver_name = "Intel open-source Mesa driver";
  d.subgroup_ops = kAllOps;
  d.max_shared_memory = 65536;
  d.min_storage_offset_alignment = 4;
  return d;
}

// Apple M2 through MoltenVK 1.2.x (Vulkan 1.2 on Metal): SIMD-groups of 32 (pinnable 32-32), no
// clustered operations, 32 KiB of threadgroup memory, no cooperative matrices.
vk::DeviceInfo apple_m2() {
  vk::DeviceInfo d = device("Apple M2", VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU, 32, 32, 32);
  d.driver_name = "MoltenVK";
  d.api_version = "1.2";
  d.min_storage_offset_alignment = 16;
  return d;
}

// Mali-G72 (Bifrost), Arm's driver r32p1 on Android: 4-lane subgroups without size control,
// no shaderInt64, 384 invocations. The reports' drivers offer Vulkan 1.1, which vkvit refuses at
// start-up; its row shows what the kernel choice makes of a 4-lane GPU without size control.
vk::DeviceInfo mali_g72() {
  vk::DeviceInfo d = device("Mali-G72", VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU, 4, 0, 0);
  d.driver_name = "Mali";
  d.api_version = "1.1";
  d.vulkan_1_2 = false;
  d.int64 = d.float16 = false;
  d.max_workgroup_invocations = 384;
  d.max_workgroup_size[0] = d.max_workgroup_size[1] = d.max_workgroup_size[2] = 384;
  d.max_workgroup_count[0] = 65535;
  d.max_storage_buffer_range = 1ull << 27;
  d.min_storage_offset_alignment = 16;
  d.max_texel_buffer_elements = 65536;
  return d;
}

// Mali-G710 (Valhall), Arm's driver r38p1 on Android 13: 16-lane subgroups (pinnable 16-16).
vk::DeviceInfo mali_g710() {
  vk::DeviceInfo d = device("Mali-G710", VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU, 16, 16, 16);
  d.driver_name = "Mali";
  d.subgroup_ops = kAllOps;
  d.min_storage_offset_alignment = 16;
  return d;
}

// Adreno 740, Qualcomm's driver 512.7xx on Android 13: waves of 64, pinnable 64-128, no
// shaderInt64, 32 KiB of shared memory.
vk::DeviceInfo adreno_740() {
  vk::DeviceInfo d = device("Adreno (TM) 740", VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU, 64, 64, 128);
  d.driver_name = "Qualcomm Technologies Inc. Adreno Vulkan Driver";
  d.int64 = false;
  d.max_workgroup_size[2] = 64;
  return d;
}

}  // namespace

const std::vector<DescribedDevice>& described_devices() {
  static const std::vector<DescribedDevice> devices = {
      {"lavapipe", lavapipe()},
      {"SwiftShader", swiftshader()},
      {"RTX 4090", rtx_4090()},
      {"H100", h100()},
      {"RX 7900 XTX wave64", rx_7900_xtx(64)},
      {"RX 7900 XTX wave32", rx_7900_xtx(32)},
      {"Arc A770", arc_a770()},
      {"Apple M2 (MoltenVK)", apple_m2()},
      {"Mali-G72", mali_g72()},
      {"Mali-G710", mali_g710()},
      {"Adreno 740", adreno_740()},
  };
  return devices;
}

}  // namespace vkvit::test
