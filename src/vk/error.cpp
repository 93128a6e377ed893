#include "vk/error.h"

namespace vkvit::vk {

const char* result_name(VkResult r) {
  switch (r) {
#define VKVIT_CASE(x) \
  case x:             \
    return #x;
    VKVIT_CASE(VK_SUCCESS)
    VKVIT_CASE(VK_NOT_READY)
    VKVIT_CASE(VK_TIMEOUT)
    VKVIT_CASE(VK_INCOMPLETE)
    VKVIT_CASE(VK_ERROR_OUT_OF_HOST_MEMORY)
    VKVIT_CASE(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    VKVIT_CASE(VK_ERROR_INITIALIZATION_FAILED)
    VKVIT_CASE(VK_ERROR_DEVICE_LOST)
    VKVIT_CASE(VK_ERROR_MEMORY_MAP_FAILED)
    VKVIT_CASE(VK_ERROR_LAYER_NOT_PRESENT)
    VKVIT_CASE(VK_ERROR_EXTENSION_NOT_PRESENT)
    VKVIT_CASE(VK_ERROR_FEATURE_NOT_PRESENT)
    VKVIT_CASE(VK_ERROR_INCOMPATIBLE_DRIVER)
    VKVIT_CASE(VK_ERROR_TOO_MANY_OBJECTS)
    VKVIT_CASE(VK_ERROR_FORMAT_NOT_SUPPORTED)
    VKVIT_CASE(VK_ERROR_FRAGMENTED_POOL)
    VKVIT_CASE(VK_ERROR_OUT_OF_POOL_MEMORY)
    VKVIT_CASE(VK_ERROR_INVALID_SHADER_NV)
    VKVIT_CASE(VK_ERROR_UNKNOWN)
#undef VKVIT_CASE
    default:
      return "VkResult(unknown)";
  }
}

void check(VkResult r, const char* what) {
  if (r == VK_SUCCESS) return;
  std::string msg = std::string("Vulkan call failed with ") + result_name(r) + ": " + what;
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
    throw OutOfMemoryError(msg + " (out of memory)", "use a smaller batch or model");
  if (r == VK_ERROR_DEVICE_LOST)
    throw DeviceLostError(msg + " (the GPU was lost: check the driver log; the last checkpoint on disk is intact)");
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED)
    throw Error(msg + " (no usable Vulkan driver: install your GPU's Vulkan driver, or mesa-vulkan-drivers for the CPU driver lavapipe)");
  throw Error(msg);
}

}  // namespace vkvit::vk
