// Errors users can read: every failure ends in one line naming the thing and what to do. The
// exception types live below every room (no Vulkan here), so data/, model/ and train/ report errors
// without depending on the GPU runtime; vk/error.h adds the VkResult checks.
#pragma once
#include <stdexcept>
#include <string>

namespace vkvit {

// The one exception type of vkvit. Its message is a complete, user-facing line.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Thrown for VK_ERROR_OUT_OF_DEVICE_MEMORY / OUT_OF_HOST_MEMORY so callers can offer a smaller batch.
// The message is "<detail>: <advice>"; a caller that knows better (the trainer knows the model and
// the batch that would fit) throws again with the same detail and its own advice.
class OutOfMemoryError : public Error {
 public:
  explicit OutOfMemoryError(const std::string& message) : Error(message), detail_(message) {}
  OutOfMemoryError(const std::string& detail, const std::string& advice)
      : Error(detail + ": " + advice), detail_(detail) {}
  // What did not fit: the buffer, its size and the device's limits, without the advice.
  const std::string& detail() const { return detail_; }

 private:
  std::string detail_;
};

// Thrown by the trainer when more than train.max_nonfinite_steps steps in a row had a non-finite
// loss or gradient norm; the message names the last good checkpoint.
class TrainingDivergedError : public Error {
 public:
  using Error::Error;
};

// Thrown for VK_ERROR_DEVICE_LOST: the device is gone, nothing on it can be trusted.
class DeviceLostError : public Error {
 public:
  using Error::Error;
};

}  // namespace vkvit
