// Embedded SPIR-V of every shader, compiled at build time (see shaders/CMakeLists.txt).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vkvit::vk {

struct ShaderBinary {
  const char* name;  // shaders/<name>.comp, or a variant's name in shaders/variants.cmake
  const uint32_t* words;
  size_t bytes;
};

// A shader that is built into the binary: launchers name one by its generated constant,
// vkvit::shaders::<name> (#include "vk/shader_ids.h"), so a missing shader fails to compile.
struct ShaderId {
  const char* name;
};

// nullptr when no shader of that name was built.
const ShaderBinary* find_shader(std::string_view name);
// Every shader built into the binary, by position (for tests that check them all).
size_t shader_count();
const ShaderBinary& shader_at(size_t index);

}  // namespace vkvit::vk
