#include "vk/context.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "base/log.h"
#include "vk/error.h"
#include "vk/fault.h"
#include "vk/memory.h"
#include "vk/pipeline.h"
#include "vk/profiler.h"

namespace vkvit::vk {

namespace {

const char* kValidationLayer = "VK_LAYER_KHRONOS_validation";

std::string version_string(uint32_t v) {
  std::ostringstream s;
  s << VK_API_VERSION_MAJOR(v) << "." << VK_API_VERSION_MINOR(v) << "." << VK_API_VERSION_PATCH(v);
  return s.str();
}

// Vendors pack driverVersion differently; these are the published schemes.
std::string driver_version_string(uint32_t vendor, uint32_t v) {
  std::ostringstream s;
  if (vendor == 0x10DE) {  // NVIDIA: 10.8.8.6
    s << (v >> 22) << "." << ((v >> 14) & 0xff) << "." << ((v >> 6) & 0xff) << "." << (v & 0x3f);
  } else if (vendor == 0x8086) {  // Intel on Windows: 18.14
    s << (v >> 14) << "." << (v & 0x3fff);
  } else {
    s << version_string(v);
  }
  return s.str();
}

std::string vendor_name(uint32_t id) {
  switch (id) {
    case 0x1002: return "AMD";
    case 0x10DE: return "NVIDIA";
    case 0x8086: return "Intel";
    case 0x13B5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x106B: return "Apple";
    case 0x10005: return "Mesa";
    default: {
      std::ostringstream s;
      s << "0x" << std::hex << id;
      return s.str();
    }
  }
}

const char* type_name(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
  }
}

int type_rank(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
  }
}

bool has_extension(const std::vector<VkExtensionProperties>& exts, const char* name) {
  for (const auto& e : exts)
    if (!std::strcmp(e.extensionName, name)) return true;
  return false;
}

bool layer_available(const char* name) {
  uint32_t n = 0;
  vkEnumerateInstanceLayerProperties(&n, nullptr);
  std::vector<VkLayerProperties> layers(n);
  vkEnumerateInstanceLayerProperties(&n, layers.data());
  for (const auto& l : layers)
    if (!std::strcmp(l.layerName, name)) return true;
  return false;
}

// Whether layer `layer` provides instance extension `name`.
bool layer_has_extension(const char* layer, const char* name) {
  uint32_t n = 0;
  vkEnumerateInstanceExtensionProperties(layer, &n, nullptr);
  std::vector<VkExtensionProperties> exts(n);
  vkEnumerateInstanceExtensionProperties(layer, &n, exts.data());
  return has_extension(exts, name);
}

// VK_KHR_cooperative_matrix's property struct and query, as the Vulkan specification defines them
// (the system headers predate the extension); the NV extension's are in the headers.
constexpr VkStructureType kCooperativeMatrixPropertiesKhr = static_cast<VkStructureType>(1000506001);
struct CooperativeMatrixPropertiesKhr {
  VkStructureType sType;
  void* pNext;
  uint32_t MSize, NSize, KSize;
  uint32_t AType, BType, CType, ResultType;
  VkBool32 saturatingAccumulation;
  uint32_t scope;
};
using CooperativeMatrixQueryKhr = VkResult(VKAPI_PTR*)(VkPhysicalDevice, uint32_t*, CooperativeMatrixPropertiesKhr*);

// The shapes each cooperative-matrix extension offers (the driver's answer, unfiltered).
void query_cooperative_matrices(VkInstance instance, VkPhysicalDevice pd, DeviceInfo& d) {
  if (d.cooperative_matrix_khr) {
    auto query = reinterpret_cast<CooperativeMatrixQueryKhr>(
        vkGetInstanceProcAddr(instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR"));
    uint32_t n = 0;
    if (query && query(pd, &n, nullptr) == VK_SUCCESS && n > 0) {
      std::vector<CooperativeMatrixPropertiesKhr> props(n, CooperativeMatrixPropertiesKhr{kCooperativeMatrixPropertiesKhr});
      if (query(pd, &n, props.data()) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; ++i) {
          const auto& p = props[i];
          d.cooperative_matrices.push_back(
              {true, p.MSize, p.NSize, p.KSize, p.AType, p.BType, p.CType, p.ResultType, p.scope});
        }
    }
  }
  if (d.cooperative_matrix_nv) {
    auto query = reinterpret_cast<PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV>(
        vkGetInstanceProcAddr(instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV"));
    uint32_t n = 0;
    if (query && query(pd, &n, nullptr) == VK_SUCCESS && n > 0) {
      std::vector<VkCooperativeMatrixPropertiesNV> props(n, {VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV});
      if (query(pd, &n, props.data()) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; ++i) {
          const auto& p = props[i];
          d.cooperative_matrices.push_back({false, p.MSize, p.NSize, p.KSize, uint32_t(p.AType), uint32_t(p.BType),
                                            uint32_t(p.CType), uint32_t(p.DType), uint32_t(p.scope)});
        }
    }
  }
}

// Subgroup-size control through VK_EXT_subgroup_size_control (the instance asks for Vulkan 1.2,
// so the extension's structs, which Vulkan 1.3 made core with the same layout): the feature bits
// and the range of sizes a compute pipeline can require.
void query_subgroup_size_control(VkPhysicalDevice pd, const std::vector<VkExtensionProperties>& exts, DeviceInfo& d) {
  if (!d.vulkan_1_2 || !has_extension(exts, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME)) return;
  VkPhysicalDeviceSubgroupSizeControlFeaturesEXT f{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT};
  VkPhysicalDeviceFeatures2 feats{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  feats.pNext = &f;
  vkGetPhysicalDeviceFeatures2(pd, &feats);
  VkPhysicalDeviceSubgroupSizeControlPropertiesEXT p{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES_EXT};
  VkPhysicalDeviceProperties2 props{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  props.pNext = &p;
  vkGetPhysicalDeviceProperties2(pd, &props);
  d.subgroup_size_control = f.subgroupSizeControl && (p.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT);
  d.full_subgroups = f.computeFullSubgroups;
  d.min_subgroup_size = p.minSubgroupSize;
  d.max_subgroup_size = p.maxSubgroupSize;
  d.max_workgroup_subgroups = p.maxComputeWorkgroupSubgroups;
}

DeviceInfo describe(VkInstance instance, VkPhysicalDevice pd, uint32_t index) {
  DeviceInfo d;
  d.index = index;

  VkPhysicalDeviceSubgroupProperties subgroup{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
  VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  subgroup.pNext = &driver;
  VkPhysicalDeviceProperties2 props{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  props.pNext = &subgroup;
  vkGetPhysicalDeviceProperties2(pd, &props);
  const auto& p = props.properties;
  const auto& lim = p.limits;

  d.name = p.deviceName;
  d.vendor_id = p.vendorID;
  d.vendor = vendor_name(p.vendorID);
  d.driver_name = driver.driverName;
  d.driver_info = driver.driverInfo;
  d.driver_version = driver_version_string(p.vendorID, p.driverVersion);
  d.api_version = version_string(p.apiVersion);
  d.vulkan_1_2 = p.apiVersion >= VK_API_VERSION_1_2;
  d.type = p.deviceType;
  d.type_name = type_name(p.deviceType);
  d.subgroup_size = subgroup.subgroupSize;
  d.subgroup_ops = subgroup.supportedOperations;
  d.subgroup_in_compute = (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) != 0;
  d.timestamps = lim.timestampComputeAndGraphics;
  d.timestamp_period_ns = lim.timestampPeriod;
  d.max_storage_buffer_range = lim.maxStorageBufferRange;
  d.max_texel_buffer_elements = lim.maxTexelBufferElements;
  d.min_storage_offset_alignment = lim.minStorageBufferOffsetAlignment;
  d.min_texel_offset_alignment = lim.minTexelBufferOffsetAlignment;
  d.max_workgroup_invocations = lim.maxComputeWorkGroupInvocations;
  for (int i = 0; i < 3; ++i) {
    d.max_workgroup_size[i] = lim.maxComputeWorkGroupSize[i];
    d.max_workgroup_count[i] = lim.maxComputeWorkGroupCount[i];
  }
  d.max_shared_memory = lim.maxComputeSharedMemorySize;
  d.max_push_constants = lim.maxPushConstantsSize;

  VkPhysicalDeviceMaintenance3Properties m3{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
  VkPhysicalDeviceProperties2 props2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  props2.pNext = &m3;
  vkGetPhysicalDeviceProperties2(pd, &props2);
  d.max_memory_allocation_size = m3.maxMemoryAllocationSize;

  VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
  VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  f11.pNext = &f12;
  VkPhysicalDeviceFeatures2 feats{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  feats.pNext = &f11;
  if (d.vulkan_1_2) {
    vkGetPhysicalDeviceFeatures2(pd, &feats);
    d.float16 = f12.shaderFloat16;
    d.int8 = f12.shaderInt8;
    d.storage16 = f11.storageBuffer16BitAccess;
    d.int64 = feats.features.shaderInt64;
    d.int16 = feats.features.shaderInt16;
    d.float64 = feats.features.shaderFloat64;
    d.uniform_storage16 = f11.uniformAndStorageBuffer16BitAccess;
    d.push_constant16 = f11.storagePushConstant16;
  }

  uint32_t n = 0;
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, nullptr);
  std::vector<VkExtensionProperties> exts(n);
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, exts.data());
  d.cooperative_matrix_khr = has_extension(exts, "VK_KHR_cooperative_matrix");
  d.cooperative_matrix_nv = has_extension(exts, "VK_NV_cooperative_matrix");
  query_cooperative_matrices(instance, pd, d);
  query_subgroup_size_control(pd, exts, d);

  VkPhysicalDeviceMemoryProperties mem;
  vkGetPhysicalDeviceMemoryProperties(pd, &mem);
  for (uint32_t i = 0; i < mem.memoryHeapCount; ++i)
    d.heaps.push_back({mem.memoryHeaps[i].size, (mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0});
  return d;
}

}  // namespace

std::string DeviceInfo::subgroup_ops_string() const {
  static const std::pair<VkSubgroupFeatureFlagBits, const char*> names[] = {
      {VK_SUBGROUP_FEATURE_BASIC_BIT, "basic"},
      {VK_SUBGROUP_FEATURE_VOTE_BIT, "vote"},
      {VK_SUBGROUP_FEATURE_ARITHMETIC_BIT, "arithmetic"},
      {VK_SUBGROUP_FEATURE_BALLOT_BIT, "ballot"},
      {VK_SUBGROUP_FEATURE_SHUFFLE_BIT, "shuffle"},
      {VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT, "shuffle_relative"},
      {VK_SUBGROUP_FEATURE_CLUSTERED_BIT, "clustered"},
      {VK_SUBGROUP_FEATURE_QUAD_BIT, "quad"},
  };
  std::string s;
  for (const auto& [bit, name] : names) {
    if (!(subgroup_ops & bit)) continue;
    if (!s.empty()) s += " ";
    s += name;
  }
  return s.empty() ? "none" : s;
}

std::string DeviceInfo::cooperative_matrix_string() const {
  if (!cooperative_matrix_khr && !cooperative_matrix_nv) return "none (no VK_KHR_cooperative_matrix or VK_NV_cooperative_matrix)";
  // VkComponentType values 0-10 (the same in both extensions).
  static const char* const types[] = {"f16", "f32", "f64", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64"};
  auto type = [](uint32_t t) { return t < 11 ? std::string(types[t]) : "type" + std::to_string(t); };
  std::string s;
  for (const CooperativeMatrix& c : cooperative_matrices) {
    if (!s.empty()) s += ", ";
    s += std::string(c.khr ? "KHR " : "NV ") + std::to_string(c.m) + "x" + std::to_string(c.n) + "x" +
         std::to_string(c.k) + " " + type(c.a) + "*" + type(c.b) + "+" + type(c.c) + "->" + type(c.result) +
         (c.scope == 3 ? " (subgroup)" : " (scope " + std::to_string(c.scope) + ")");
  }
  if (s.empty()) s = std::string(cooperative_matrix_khr ? "KHR" : "") + (cooperative_matrix_khr && cooperative_matrix_nv ? " and " : "") +
                     (cooperative_matrix_nv ? "NV" : "") + " offered, but the driver lists no shapes";
  return s;
}

bool DeviceInfo::can_pin_subgroup_size(uint32_t size) const {
  return subgroup_size_control && size != 0 && (size & (size - 1)) == 0 && size >= min_subgroup_size &&
         size <= max_subgroup_size;
}

uint32_t DeviceInfo::subgroup_size_for_one_group(uint32_t lanes) const {
  if (subgroup_size_control) {
    for (uint32_t size = std::max(lanes, min_subgroup_size); size <= max_subgroup_size; size *= 2)
      if (can_pin_subgroup_size(size)) return size;
    return 0;
  }
  return is_cpu_driver() && subgroup_size >= lanes ? subgroup_size : 0;
}

std::string DeviceInfo::subgroup_size_string() const {
  std::string s = std::to_string(subgroup_size);
  if (!subgroup_size_control) return s + " (no subgroup size control: cannot be pinned)";
  s += " (pinnable " + std::to_string(min_subgroup_size) + "-" + std::to_string(max_subgroup_size);
  return s + (full_subgroups ? ", full subgroups)" : ")");
}

bool DeviceInfo::is_lavapipe() const {
  return driver_name.find("llvmpipe") != std::string::npos || name.find("llvmpipe") != std::string::npos;
}

ContextOptions ContextOptions::from_env() {
  ContextOptions o;
  auto flag = [](const char* name) {
    const char* v = std::getenv(name);
    return v && *v && std::strcmp(v, "0") != 0;
  };
  o.validation = flag("VKVIT_VALIDATION");
  const char* validation = std::getenv("VKVIT_VALIDATION");
  o.sync_validation = validation && !std::strcmp(validation, "sync");
  o.profile = flag("VKVIT_PROFILE");
  if (const char* v = std::getenv("VKVIT_DEVICE"); v && *v) {
    char* end = nullptr;
    long idx = std::strtol(v, &end, 10);
    if (*end != '\0' || idx < 0)
      throw Error(std::string("VKVIT_DEVICE='") + v + "' is not a device index; run `vkvit devices` to list them");
    o.device = static_cast<int>(idx);
  }
  o.tuning = Tuning::from_env();
  return o;
}

// The instance and, with validation, the debug messenger that routes layer messages to our log.
struct Context::InstanceState {
  VkInstance instance = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
  bool validation = false;
  std::atomic<int> validation_errors{0};

  static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                   VkDebugUtilsMessageTypeFlagsEXT,
                                                   const VkDebugUtilsMessengerCallbackDataEXT* data,
                                                   void* user) {
    auto* self = static_cast<InstanceState*>(user);
    const char* msg = data && data->pMessage ? data->pMessage : "(no message)";
    if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
      self->validation_errors++;
      log(LogLevel::error, std::string("validation: ") + msg);
    } else if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
      log_warn(std::string("validation: ") + msg);
    } else {
      log_debug(std::string("validation: ") + msg);
    }
    return VK_FALSE;
  }

  InstanceState(bool want_validation, bool want_sync_validation) {
    validation = want_validation;
    if (validation && !layer_available(kValidationLayer))
      throw Error(std::string("validation requested but ") + kValidationLayer +
                  " is not installed (install the Debian package vulkan-validationlayers)");
    const bool sync = validation && want_sync_validation;
    if (sync && !layer_has_extension(kValidationLayer, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME))
      throw Error(std::string("synchronization validation requested but ") + kValidationLayer + " lacks " +
                  VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME + " (a newer vulkan-validationlayers has it)");

    VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
    app.pApplicationName = "vkvit";
    app.pEngineName = "vkvit";
    app.apiVersion = VK_API_VERSION_1_2;

    std::vector<const char*> layers, extensions;
    VkDebugUtilsMessengerCreateInfoEXT dbg{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
    dbg.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    dbg.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                      VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
    dbg.pfnUserCallback = &on_message;
    dbg.pUserData = this;

    // Synchronization validation is off in the layer's default set; the hazards it reports are
    // errors, so they count in validation_errors() like any other.
    const VkValidationFeatureEnableEXT sync_feature = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
    VkValidationFeaturesEXT features{VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
    features.enabledValidationFeatureCount = 1;
    features.pEnabledValidationFeatures = &sync_feature;

    VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    ci.pApplicationInfo = &app;
    if (validation) {
      layers.push_back(kValidationLayer);
      extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
      ci.pNext = &dbg;  // also catch messages from vkCreateInstance itself
    }
    if (sync) {
      extensions.push_back(VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
      features.pNext = &dbg;  // the messenger's own create info must keep a null pNext
      ci.pNext = &features;
    }
    ci.enabledLayerCount = static_cast<uint32_t>(layers.size());
    ci.ppEnabledLayerNames = layers.data();
    ci.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
    ci.ppEnabledExtensionNames = extensions.data();
    VkResult r = vkCreateInstance(&ci, nullptr, &instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED)
      throw Error(std::string("no Vulkan driver found (") + result_name(r) + "): " + Context::install_hint());
    check(r, "vkCreateInstance");

    if (validation) {
      auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
          vkGetInstanceProcAddr(instance, "vkCreateDebugUtilsMessengerEXT"));
      if (create) check(create(instance, &dbg, nullptr, &messenger), "vkCreateDebugUtilsMessengerEXT");
    }
  }

  ~InstanceState() {
    if (messenger) {
      auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
          vkGetInstanceProcAddr(instance, "vkDestroyDebugUtilsMessengerEXT"));
      if (destroy) destroy(instance, messenger, nullptr);
    }
    if (instance) vkDestroyInstance(instance, nullptr);
  }

  std::vector<VkPhysicalDevice> physical_devices() const {
    uint32_t n = 0;
    check(vkEnumeratePhysicalDevices(instance, &n, nullptr), "vkEnumeratePhysicalDevices");
    std::vector<VkPhysicalDevice> out(n);
    check(vkEnumeratePhysicalDevices(instance, &n, out.data()), "vkEnumeratePhysicalDevices");
    return out;
  }
};

std::vector<DeviceInfo> Context::list_devices(bool validation) {
  InstanceState inst(validation, false);
  std::vector<DeviceInfo> out;
  auto pds = inst.physical_devices();
  for (uint32_t i = 0; i < pds.size(); ++i) out.push_back(describe(inst.instance, pds[i], i));
  return out;
}

std::string Context::install_hint() {
  // Mesa's package carries lavapipe and the AMD (RADV) and Intel (ANV) drivers; NVIDIA's Vulkan
  // driver ships only with NVIDIA's own driver.
  std::string hint =
      "install mesa-vulkan-drivers (Debian, Ubuntu, Fedora) for the CPU driver lavapipe and Mesa's AMD and Intel GPU "
      "drivers, or your GPU vendor's driver (NVIDIA: the proprietary driver with its Vulkan ICD)";
  for (const char* var : {"VK_ICD_FILENAMES", "VK_DRIVER_FILES"})
    if (const char* v = std::getenv(var); v && *v)
      hint += std::string("; ") + var + "=" + v + " is set and limits the loader to those driver files";
  return hint + "; `vulkaninfo --summary` (vulkan-tools) lists what the loader finds";
}

uint32_t Context::preferred_device(const std::vector<DeviceInfo>& devices) {
  uint32_t best = 0;
  int best_rank = 1 << 30;
  for (const auto& d : devices) {
    // Devices that cannot run our SPIR-V rank last; within a type, one with shaderInt64 and fp16
    // (the 64-bit-pair and amp paths) before one without (lavapipe before SwiftShader).
    const int missing = (d.int64 ? 0 : 1) + (d.float16 && d.storage16 ? 0 : 1);
    int rank = 10 * type_rank(d.type) + missing + (d.vulkan_1_2 ? 0 : 1000);
    if (rank < best_rank) {
      best_rank = rank;
      best = d.index;
    }
  }
  return best;
}

uint32_t Context::choose_device(const std::vector<DeviceInfo>& devices, const ContextOptions& options) {
  if (options.device >= 0) {
    if (static_cast<size_t>(options.device) >= devices.size())
      throw Error("device " + std::to_string(options.device) + " does not exist: there are " +
                  std::to_string(devices.size()) + " Vulkan devices (0.." + std::to_string(devices.size() - 1) +
                  "); run `vkvit devices` to list them");
    return static_cast<uint32_t>(options.device);
  }
  const uint32_t best = preferred_device(devices);
  if (options.local_rank < 0) return best;
  // Ranks share out the devices identical to the preferred one (same model and driver, in index
  // order): every rank must run the same kernels, and a second driver of the same type (lavapipe
  // beside SwiftShader) is no second GPU.
  const DeviceInfo& p = devices[best];
  std::vector<uint32_t> same_kind;
  for (const DeviceInfo& d : devices)
    if (d.type == p.type && d.vulkan_1_2 == p.vulkan_1_2 && d.name == p.name && d.driver_name == p.driver_name)
      same_kind.push_back(d.index);
  return same_kind[size_t(options.local_rank) % same_kind.size()];
}

namespace {

// The queue family vkvit submits to: a compute family with timestamps, else any compute family.
// Clears info.timestamps where the chosen family has none.
uint32_t compute_queue_family(VkPhysicalDevice physical, DeviceInfo& info) {
  uint32_t nq = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(physical, &nq, nullptr);
  std::vector<VkQueueFamilyProperties> families(nq);
  vkGetPhysicalDeviceQueueFamilyProperties(physical, &nq, families.data());
  const auto compute = [&](uint32_t i) { return (families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) != 0; };
  for (uint32_t i = 0; i < nq; ++i)
    if (compute(i) && families[i].timestampValidBits > 0) return i;
  for (uint32_t i = 0; i < nq; ++i)
    if (compute(i)) {
      info.timestamps = false;
      return i;
    }
  throw Error("device " + info.name + " has no compute queue; pick another device with --device");
}

// The logical device with one queue of `family` and every feature a shader capability may need.
VkDevice create_device(VkPhysicalDevice physical, const DeviceInfo& info, uint32_t family) {
  float priority = 1.0f;
  VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  qci.queueFamilyIndex = family;
  qci.queueCount = 1;
  qci.pQueuePriorities = &priority;

  // Enable every feature a shader capability may need (vk/spirv_caps.cpp), where the device has
  // it; PipelineCache refuses a module that needs one the device lacks, and kernels check info()
  // before choosing fp16 or 64-bit paths.
  VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
  VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  f11.pNext = &f12;
  f11.storageBuffer16BitAccess = info.storage16;
  f11.uniformAndStorageBuffer16BitAccess = info.uniform_storage16;
  f11.storagePushConstant16 = info.push_constant16;
  f12.shaderFloat16 = info.float16;
  f12.shaderInt8 = info.int8;
  VkPhysicalDeviceFeatures2 feats{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  feats.pNext = &f11;
  feats.features.shaderInt64 = info.int64;
  feats.features.shaderInt16 = info.int16;
  feats.features.shaderFloat64 = info.float64;

  // Subgroup-size control where offered: pipelines pin the size their layout needs (pipeline.cpp).
  VkPhysicalDeviceSubgroupSizeControlFeaturesEXT size_control{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT};
  std::vector<const char*> extensions;
  if (info.subgroup_size_control) {
    size_control.subgroupSizeControl = VK_TRUE;
    size_control.computeFullSubgroups = info.full_subgroups;
    size_control.pNext = feats.pNext;
    feats.pNext = &size_control;
    extensions.push_back(VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
  }

  VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  dci.pNext = &feats;
  dci.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
  dci.ppEnabledExtensionNames = extensions.empty() ? nullptr : extensions.data();
  dci.queueCreateInfoCount = 1;
  dci.pQueueCreateInfos = &qci;
  VkDevice device = VK_NULL_HANDLE;
  check(vkCreateDevice(physical, &dci, nullptr, &device), "vkCreateDevice");
  return device;
}

}  // namespace

Context::Context(const ContextOptions& options) : options_(options) {
  instance_ = std::make_unique<InstanceState>(options.validation, options.sync_validation);
  auto pds = instance_->physical_devices();
  if (pds.empty())
    throw Error("no Vulkan device found: " + install_hint());
  std::vector<DeviceInfo> infos;
  for (uint32_t i = 0; i < pds.size(); ++i) infos.push_back(describe(instance_->instance, pds[i], i));

  const uint32_t chosen = choose_device(infos, options);
  info_ = infos[chosen];
  physical_ = pds[chosen];
  // VKVIT_FAULT_DEVICE_MEMORY_LIMIT: report the device as if its heaps were no larger (memory.cpp
  // enforces the same limit on allocations), so every size check sees the same device.
  if (const uint64_t limit = fault::faults().device_memory_limit) {
    for (MemoryHeapInfo& h : info_.heaps) h.bytes = std::min(h.bytes, limit);
    info_.max_memory_allocation_size = std::min(info_.max_memory_allocation_size, limit);
  }
  if (!info_.vulkan_1_2)
    throw Error("device " + std::to_string(chosen) + " (" + info_.name + ") supports Vulkan " + info_.api_version +
                "; vkvit needs Vulkan 1.2: update the driver or pick another device with --device");

  queue_family_ = compute_queue_family(physical_, info_);
  device_ = create_device(physical_, info_, queue_family_);
  vkGetDeviceQueue(device_, queue_family_, 0, &queue_);
  vkGetPhysicalDeviceMemoryProperties(physical_, &memory_props_);

  VkCommandPoolCreateInfo pci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pci.queueFamilyIndex = queue_family_;
  check(vkCreateCommandPool(device_, &pci, nullptr, &command_pool_), "vkCreateCommandPool");

  pipelines_ = std::make_unique<PipelineCache>(*this);
  profiler_ = std::make_unique<Profiler>();
  log_info("using device " + std::to_string(info_.index) + ": " + info_.name + " (" + info_.driver_name + ")");
}

Context::~Context() {
  if (device_) vkDeviceWaitIdle(device_);
  if (options_.profile && profiler_ && !profiler_->empty()) profiler_->print(stderr);
  staging_.reset();
  pipelines_.reset();
  if (command_pool_) vkDestroyCommandPool(device_, command_pool_, nullptr);
  if (device_) vkDestroyDevice(device_, nullptr);
  instance_.reset();
}

VkInstance Context::instance() const { return instance_->instance; }
bool Context::validation_enabled() const { return instance_->validation; }
int Context::validation_errors() const { return instance_->validation_errors.load(); }

uint32_t Context::memory_type(uint32_t type_bits, VkMemoryPropertyFlags required,
                              VkMemoryPropertyFlags preferred) const {
  int fallback = -1;
  for (uint32_t i = 0; i < memory_props_.memoryTypeCount; ++i) {
    if (!(type_bits & (1u << i))) continue;
    VkMemoryPropertyFlags f = memory_props_.memoryTypes[i].propertyFlags;
    if ((f & required) != required) continue;
    if ((f & preferred) == preferred) return i;
    if (fallback < 0) fallback = static_cast<int>(i);
  }
  if (fallback < 0) throw Error("device " + info_.name + " has no memory type with the needed properties");
  return static_cast<uint32_t>(fallback);
}

uint64_t Context::heap_bytes_of_type(uint32_t type) const {
  if (type >= memory_props_.memoryTypeCount) return 0;
  const uint32_t heap = memory_props_.memoryTypes[type].heapIndex;
  return heap < info_.heaps.size() ? info_.heaps[heap].bytes : memory_props_.memoryHeaps[heap].size;
}

void Context::note_allocation(int64_t delta) {
  allocated_ = static_cast<uint64_t>(static_cast<int64_t>(allocated_) + delta);
  peak_allocated_ = std::max(peak_allocated_, allocated_);
}

Buffer& Context::staging(uint64_t bytes) {
  if (!staging_ || staging_->size() < bytes) {
    staging_.reset();
    uint64_t size = std::max<uint64_t>(bytes, 1 << 20);
    staging_ = std::make_unique<Buffer>(*this, size, MemoryKind::host_staging, "staging buffer");
  }
  return *staging_;
}

namespace {
// One-off command buffer: record, submit, wait.
template <class Fn>
void run_once(Context& ctx, Fn&& record) {
  VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  ai.commandPool = ctx.command_pool();
  ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  ai.commandBufferCount = 1;
  VkCommandBuffer cb;
  check(vkAllocateCommandBuffers(ctx.device(), &ai, &cb), "vkAllocateCommandBuffers");
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  vkBeginCommandBuffer(cb, &bi);
  // Make earlier GPU writes visible to the transfer and the transfer visible to later work.
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT;
  vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0, 1, &mb, 0,
                       nullptr, 0, nullptr);
  record(cb);
  vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0, 1, &mb, 0,
                       nullptr, 0, nullptr);
  check(vkEndCommandBuffer(cb), "vkEndCommandBuffer");
  VkFenceCreateInfo fi{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  VkFence fence;
  check(vkCreateFence(ctx.device(), &fi, nullptr, &fence), "vkCreateFence");
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &cb;
  VkResult r = vkQueueSubmit(ctx.queue(), 1, &si, fence);
  if (r == VK_SUCCESS) r = vkWaitForFences(ctx.device(), 1, &fence, VK_TRUE, UINT64_MAX);
  vkDestroyFence(ctx.device(), fence, nullptr);
  vkFreeCommandBuffers(ctx.device(), ctx.command_pool(), 1, &cb);
  check(r, "vkQueueSubmit (transfer)");
}
}  // namespace

void Context::upload(const View& dst, const void* data, uint64_t bytes) {
  if (bytes == 0) return;
  if (bytes > dst.size)
    throw Error("upload of " + std::to_string(bytes) + " bytes into a " + std::to_string(dst.size) + "-byte view");
  Buffer& s = staging(bytes);
  std::memcpy(s.mapped(), data, bytes);
  run_once(*this, [&](VkCommandBuffer cb) {
    VkBufferCopy region{0, dst.offset, bytes};
    vkCmdCopyBuffer(cb, s.handle(), dst.buffer, 1, &region);
  });
}

void Context::download(const View& src, void* data, uint64_t bytes) {
  if (bytes == 0) return;
  if (bytes > src.size)
    throw Error("download of " + std::to_string(bytes) + " bytes from a " + std::to_string(src.size) + "-byte view");
  Buffer& s = staging(bytes);
  run_once(*this, [&](VkCommandBuffer cb) {
    VkBufferCopy region{src.offset, 0, bytes};
    vkCmdCopyBuffer(cb, src.buffer, s.handle(), 1, &region);
  });
  std::memcpy(data, s.mapped(), bytes);
}

}  // namespace vkvit::vk
