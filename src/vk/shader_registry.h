// Embedded SPIR-V of every shaders/*.comp, compiled at build time (see shaders/CMakeLists.txt).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vkvit::vk {

struct ShaderBinary {
  const char* name;      // file name without .comp
  const uint32_t* words;
  size_t bytes;
};

// nullptr when no shader of that name was built.
const ShaderBinary* find_shader(std::string_view name);

}  // namespace vkvit::vk
