// Errors users can read: every failure ends in one line naming the thing and what to do.
#pragma once
#include <stdexcept>
#include <string>

#include <vulkan/vulkan.h>

namespace vkvit {

// The one exception type of vkvit. Its message is a complete, user-facing line.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Thrown for VK_ERROR_OUT_OF_DEVICE_MEMORY / OUT_OF_HOST_MEMORY so callers can offer a smaller batch.
class OutOfMemoryError : public Error {
 public:
  using Error::Error;
};

// Thrown for VK_ERROR_DEVICE_LOST: the device is gone, nothing on it can be trusted.
class DeviceLostError : public Error {
 public:
  using Error::Error;
};

namespace vk {
const char* result_name(VkResult r);
// Throws the matching Error subtype when r is not VK_SUCCESS; `what` names the call and its object.
void check(VkResult r, const char* what);
}  // namespace vk

}  // namespace vkvit

#define VKVIT_VK_CHECK(call) ::vkvit::vk::check((call), #call)
