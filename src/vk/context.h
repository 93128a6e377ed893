// The Vulkan instance, the chosen device and its queue, and what every op needs from them:
// device facts (for tile choices and limits), the pipeline cache, transfers, validation, profiling.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <vulkan/vulkan.h>

#include "vk/tuning.h"

namespace vkvit::vk {

class PipelineCache;
class Profiler;
class Buffer;
struct View;

struct MemoryHeapInfo {
  uint64_t bytes = 0;
  bool device_local = false;
};

// Everything `vkvit devices` prints and the kernels choose from.
struct DeviceInfo {
  uint32_t index = 0;  // position in vkEnumeratePhysicalDevices order
  std::string name;
  uint32_t vendor_id = 0;
  std::string vendor;  // AMD, NVIDIA, Intel, ... from the PCI vendor id
  std::string driver_name;
  std::string driver_info;
  std::string driver_version;  // decoded with the vendor's scheme
  std::string api_version;
  VkPhysicalDeviceType type = VK_PHYSICAL_DEVICE_TYPE_OTHER;
  std::string type_name;
  std::vector<MemoryHeapInfo> heaps;
  uint32_t subgroup_size = 0;
  VkSubgroupFeatureFlags subgroup_ops = 0;
  bool subgroup_in_compute = false;
  // Subgroup-size control (VK_EXT_subgroup_size_control, core in Vulkan 1.3): whether a compute
  // pipeline can require a size in [min_subgroup_size, max_subgroup_size] (the feature is on and
  // requiredSubgroupSizeStages has compute), and whether it can require full subgroups
  // (computeFullSubgroups). The reported subgroup_size alone does not say how many lanes a
  // dispatch runs: a driver may run fewer (Intel reports 32 and may run 8) unless the size is pinned.
  bool subgroup_size_control = false;
  bool full_subgroups = false;
  uint32_t min_subgroup_size = 0;
  uint32_t max_subgroup_size = 0;
  uint32_t max_workgroup_subgroups = 0;  // maxComputeWorkgroupSubgroups
  bool float16 = false;       // shaderFloat16
  bool int8 = false;          // shaderInt8
  bool storage16 = false;     // storageBuffer16BitAccess
  bool int64 = false;         // shaderInt64 (the lavapipe matmul's 64-bit loads)
  bool int16 = false;         // shaderInt16
  bool float64 = false;       // shaderFloat64
  bool uniform_storage16 = false;  // uniformAndStorageBuffer16BitAccess
  bool push_constant16 = false;    // storagePushConstant16
  bool cooperative_matrix_khr = false;
  bool cooperative_matrix_nv = false;
  // The matrix shapes and component types the driver offers under each extension (queried with
  // vkGetPhysicalDeviceCooperativeMatrixProperties{KHR,NV}); empty without the extensions.
  struct CooperativeMatrix {
    bool khr = false;  // else NV
    uint32_t m = 0, n = 0, k = 0;
    uint32_t a = 0, b = 0, c = 0, result = 0;  // VkComponentType{KHR,NV} values (0 = float16, 1 = float32, ...)
    uint32_t scope = 0;                        // VkScope{KHR,NV} (3 = subgroup)
  };
  std::vector<CooperativeMatrix> cooperative_matrices;
  bool timestamps = false;    // timestampComputeAndGraphics
  float timestamp_period_ns = 1.0f;
  uint64_t max_storage_buffer_range = 0;
  uint64_t max_texel_buffer_elements = 0;
  uint64_t max_memory_allocation_size = 0;
  uint64_t min_storage_offset_alignment = 0;
  uint64_t min_texel_offset_alignment = 0;  // minTexelBufferOffsetAlignment (SwiftShader: 256)
  uint32_t max_workgroup_invocations = 0;
  uint32_t max_workgroup_size[3] = {0, 0, 0};
  uint32_t max_workgroup_count[3] = {0, 0, 0};
  uint32_t max_shared_memory = 0;
  uint32_t max_push_constants = 0;
  bool vulkan_1_2 = false;  // vkvit's shaders need a Vulkan 1.2 device

  std::string subgroup_ops_string() const;
  // "KHR 16x16x16 f16*f16+f32->f32 (subgroup), ..." per offered shape, or what is missing.
  std::string cooperative_matrix_string() const;
  // Compute shaders have every subgroup operation in `need` (VK_SUBGROUP_FEATURE_*_BIT).
  bool has_subgroup_ops(VkSubgroupFeatureFlags need) const {
    return subgroup_in_compute && (subgroup_ops & need) == need;
  }
  // A compute pipeline can be created with requiredSubgroupSize = `size`.
  bool can_pin_subgroup_size(uint32_t size) const;
  // The subgroup size to pin so that a workgroup of `lanes` invocations (a power of two) is one
  // subgroup: the smallest power of two >= lanes that the device can pin. Without size control,
  // a CPU driver's reported size when it is >= lanes (lavapipe and SwiftShader run one fixed
  // width). 0 when neither holds: kernels that need it are not run there.
  uint32_t subgroup_size_for_one_group(uint32_t lanes) const;
  std::string subgroup_size_string() const;  // "8 (pinnable 8-8, full subgroups)" for `vkvit devices`
  bool is_lavapipe() const;  // Mesa's CPU driver: wants the register-blocked kernels
  // lavapipe or any driver reporting a CPU device: workgroups run as SIMD lanes of CPU threads,
  // so the CPU-shaped kernels (lavapipe matmul, fused attention) are the defaults there.
  bool is_cpu_driver() const { return is_lavapipe() || type == VK_PHYSICAL_DEVICE_TYPE_CPU; }
};

struct ContextOptions {
  bool validation = false;  // load VK_LAYER_KHRONOS_validation and count its errors
  // With validation: also the layer's synchronization validation, whose hazards (a command that
  // reads or writes what an earlier one wrote without a barrier between) count as errors.
  bool sync_validation = false;
  int device = -1;          // index into the device list; -1 picks the best
  bool profile = false;     // timestamp every dispatch and print a per-op table at exit
  // One of several processes on this machine (its MPI local rank): with device -1, take the
  // local_rank-th of the devices identical to the preferred one (round robin), so that ranks do
  // not share a GPU.
  int local_rank = -1;
  // The kernels', the model's and the training loop's knobs (tuning.h); defaults here.
  Tuning tuning;

  // VKVIT_VALIDATION=1 (or =sync: with synchronization validation), VKVIT_DEVICE=N,
  // VKVIT_PROFILE=1, and the tuning variables (Tuning::from_env).
  static ContextOptions from_env();
};

class Context {
 public:
  explicit Context(const ContextOptions& options = ContextOptions::from_env());
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Every device the loader reports, best first is *not* implied: index order.
  static std::vector<DeviceInfo> list_devices(bool validation = false);
  // The index that the default choice picks: discrete, integrated, virtual, CPU; among devices of
  // one type, the one with shaderInt64, shaderFloat16 and 16-bit storage; else the first.
  static uint32_t preferred_device(const std::vector<DeviceInfo>& devices);
  // The device a context with `options` takes: options.device when set (checked), else for a
  // rank of a data-parallel run the local_rank-th device (round robin) among those identical to
  // the preferred device (type, name and driver), else the preferred device.
  static uint32_t choose_device(const std::vector<DeviceInfo>& devices, const ContextOptions& options);
  // What to install when the loader finds no driver or no device (one clause of an error line),
  // naming VK_ICD_FILENAMES / VK_DRIVER_FILES when they are set, since they hide installed drivers.
  static std::string install_hint();

  const DeviceInfo& info() const { return info_; }
  // The device facts the kernel choice reads (ops/kernel_choice.h): info(), unless a test
  // describes another device (kernel_device_for_tests) so that the kernels, tile shapes and
  // workgroup sizes that device would get run here. Limits that keep a dispatch legal (binding
  // ranges, group counts, allocation sizes) always come from info(); a subgroup size the real
  // device cannot pin leaves the pipeline unpinned (PipelineCache), so the chosen kernels must be
  // correct at whatever size this device runs.
  const DeviceInfo& kernel_device() const { return kernel_device_ ? *kernel_device_ : info_; }
  // For tests (tests/harness.h, ScopedKernelDevice): choose kernels as for `described`; null
  // returns to this device. Applies to work recorded after it.
  void kernel_device_for_tests(const DeviceInfo* described) {
    kernel_device_ = described ? std::make_unique<DeviceInfo>(*described) : nullptr;
  }
  VkInstance instance() const;
  VkPhysicalDevice physical_device() const { return physical_; }
  VkDevice device() const { return device_; }
  VkQueue queue() const { return queue_; }
  uint32_t queue_family() const { return queue_family_; }
  VkCommandPool command_pool() const { return command_pool_; }
  bool validation_enabled() const;
  // Validation-layer errors reported since this context was created (0 without validation).
  int validation_errors() const;
  bool profiling() const { return options_.profile; }
  // The knobs every op and the model read; set once, from the options.
  const Tuning& tuning() const { return options_.tuning; }
  // For tests that switch kernel paths in-process (tests/harness.h, ScopedTuning); the change
  // applies to work recorded after it.
  Tuning& tuning_for_tests() { return options_.tuning; }

  PipelineCache& pipelines() { return *pipelines_; }
  Profiler& profiler() { return *profiler_; }

  // Memory type with all `required` flags, preferring one that also has `preferred`.
  uint32_t memory_type(uint32_t type_bits, VkMemoryPropertyFlags required,
                       VkMemoryPropertyFlags preferred = 0) const;
  // Size of the heap that memory type `type` allocates from (as info().heaps reports it).
  uint64_t heap_bytes_of_type(uint32_t type) const;

  // Blocking transfers through a staging buffer (set-up, tests, checkpoints; not the hot path).
  void upload(const View& dst, const void* data, uint64_t bytes);
  void download(const View& src, void* data, uint64_t bytes);

  // Bytes of device memory allocated through vkvit::vk::Buffer now, and the peak.
  uint64_t allocated_bytes() const { return allocated_; }
  uint64_t peak_allocated_bytes() const { return peak_allocated_; }
  void note_allocation(int64_t delta_bytes);

 private:
  struct InstanceState;
  Buffer& staging(uint64_t bytes);

  ContextOptions options_;
  std::unique_ptr<InstanceState> instance_;
  DeviceInfo info_;
  std::unique_ptr<DeviceInfo> kernel_device_;  // set by tests only
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t queue_family_ = 0;
  VkCommandPool command_pool_ = VK_NULL_HANDLE;
  VkPhysicalDeviceMemoryProperties memory_props_{};
  std::unique_ptr<PipelineCache> pipelines_;
  std::unique_ptr<Profiler> profiler_;
  std::unique_ptr<Buffer> staging_;
  uint64_t allocated_ = 0;
  uint64_t peak_allocated_ = 0;
};

}  // namespace vkvit::vk
