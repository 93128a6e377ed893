// VkResult checks: a failed Vulkan call becomes the matching vkvit error (base/error.h), with
// VK_ERROR_OUT_OF_*_MEMORY as OutOfMemoryError and VK_ERROR_DEVICE_LOST as DeviceLostError.
#pragma once
#include <vulkan/vulkan.h>

#include "base/error.h"

namespace vkvit {

namespace vk {
const char* result_name(VkResult r);
// Throws the matching Error subtype when r is not VK_SUCCESS; `what` names the call and its object.
void check(VkResult r, const char* what);
}  // namespace vk

}  // namespace vkvit

#define VKVIT_VK_CHECK(call) ::vkvit::vk::check((call), #call)
