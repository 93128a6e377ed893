// Descriptions of real Vulkan devices (vk::DeviceInfo values as their drivers report them), so
// that the kernel choice (ops/kernel_choice.h) can be checked for devices the suite never runs on
// (tests/test_kernel_choice.cpp), and their kernels run here under ScopedKernelDevice.
#pragma once
#include <string>
#include <vector>

#include "vk/context.h"

namespace vkvit::test {

struct DescribedDevice {
  std::string key;   // short name: README's table row and the test sections
  vk::DeviceInfo info;
};

// lavapipe, SwiftShader, RTX 4090, H100, RX 7900 XTX (wave64 and wave32), Arc A770, Apple M2
// (MoltenVK), Mali-G72, Mali-G710, Adreno 740; in that order.
const std::vector<DescribedDevice>& described_devices();

}  // namespace vkvit::test
