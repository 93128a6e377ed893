// What the embedded SPIR-V modules ask of the device (src/vk/spirv_caps.h): the capabilities
// every module declares are ones vkvit checks, the 64-bit paths live only in the `_wide` modules,
// a device lacking a feature or a workgroup limit gets one error naming the shader and the
// feature (fabricated DeviceInfo), and mixed precision is refused up front where its kernels
// cannot run.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "base/error.h"
#include "harness.h"
#include "model/vit.h"
#include "ops/matmul_f16.h"
#include "vk/context.h"
#include "vk/shader_registry.h"
#include "vk/spirv_caps.h"

using namespace vkvit;
using namespace vkvit::test;
using Catch::Matchers::Contains;

namespace {

constexpr uint32_t kInt64 = 11;
constexpr uint32_t kShuffle = 65;
constexpr uint32_t kStorage16 = 4433;

const vk::ShaderBinary& shader(const std::string& name) {
  const vk::ShaderBinary* s = vk::find_shader(name);
  REQUIRE(s != nullptr);
  return *s;
}

std::vector<uint32_t> caps_of(const vk::ShaderBinary& s) { return vk::spirv_capabilities(s.words, s.bytes / 4); }

bool declares(const vk::ShaderBinary& s, uint32_t capability) {
  for (uint32_t c : caps_of(s))
    if (c == capability) return true;
  return false;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A device that has everything vkvit's shaders may ask for, with lavapipe-like limits; each test
// takes one thing away.
vk::DeviceInfo full_device() {
  vk::DeviceInfo d;
  d.name = "Fabricated";
  d.subgroup_size = 8;
  d.subgroup_in_compute = true;
  d.subgroup_ops = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_VOTE_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT |
                   VK_SUBGROUP_FEATURE_BALLOT_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT |
                   VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT | VK_SUBGROUP_FEATURE_CLUSTERED_BIT |
                   VK_SUBGROUP_FEATURE_QUAD_BIT;
  d.float16 = d.int8 = d.storage16 = d.int64 = d.int16 = d.float64 = true;
  d.uniform_storage16 = d.push_constant16 = true;
  d.max_workgroup_invocations = 1024;
  d.max_workgroup_size[0] = d.max_workgroup_size[1] = d.max_workgroup_size[2] = 1024;
  return d;
}

// The error check_module_fits_device throws for `name` on `device`, or "" when the module fits.
std::string fit_error(const std::string& name, const vk::DeviceInfo& device,
                      const std::vector<std::pair<uint32_t, uint32_t>>& spec = {}) {
  const vk::ShaderBinary& s = shader(name);
  try {
    vk::check_module_fits_device(name, s.words, s.bytes / 4, spec, device);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("every embedded module declares only capabilities vkvit checks", "[capabilities]") {
  REQUIRE(vk::shader_count() > 0);
  for (size_t i = 0; i < vk::shader_count(); ++i) {
    const vk::ShaderBinary& s = vk::shader_at(i);
    INFO("shader " << s.name);
    const std::vector<uint32_t> caps = caps_of(s);
    REQUIRE(!caps.empty());  // at least Shader
    for (uint32_t c : caps) CHECK(vk::capability_known(c));
    // A device with every feature runs every module.
    CHECK(fit_error(s.name, full_device()).empty());
  }
}

TEST_CASE("64-bit types only in the _wide modules, each with a plain twin", "[capabilities]") {
  size_t wide_modules = 0;
  for (size_t i = 0; i < vk::shader_count(); ++i) {
    const vk::ShaderBinary& s = vk::shader_at(i);
    const std::string name = s.name;
    INFO("shader " << name);
    if (!ends_with(name, "_wide")) {
      CHECK_FALSE(declares(s, kInt64));
      continue;
    }
    ++wide_modules;
    CHECK(declares(s, kInt64));
    const vk::ShaderBinary* plain = vk::find_shader(name.substr(0, name.size() - 5));
    REQUIRE(plain != nullptr);
    CHECK_FALSE(declares(*plain, kInt64));
  }
  // adamw, ema, patch_embed, layernorm, layernorm_backward, 2 layernorm_backward_params, 9 fused
  // attention, 10 8-lane and 8 4-lane register-blocked matmul modules.
  CHECK(wide_modules == 34);
}

TEST_CASE("a module needing a feature the device lacks is one error naming both", "[capabilities]") {
  vk::DeviceInfo no_int64 = full_device();
  no_int64.int64 = false;
  CHECK(fit_error("adamw", no_int64).empty());
  const std::string e = fit_error("adamw_wide", no_int64);
  CHECK_THAT(e, Contains("shader adamw_wide") && Contains("shaderInt64") && Contains("Fabricated") &&
                    Contains("VKVIT_WIDE=0"));
  CHECK(e.find('\n') == std::string::npos);

  vk::DeviceInfo no_shuffle = full_device();
  no_shuffle.subgroup_ops &= ~VkSubgroupFeatureFlags(VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
  REQUIRE(declares(shader("attention_fused_fwd_d16"), kShuffle));
  CHECK_THAT(fit_error("attention_fused_fwd_d16", no_shuffle),
             Contains("attention_fused_fwd_d16") && Contains("subgroup shuffle operations"));

  vk::DeviceInfo no_subgroups_in_compute = full_device();
  no_subgroups_in_compute.subgroup_in_compute = false;
  CHECK_THAT(fit_error("softmax", no_subgroups_in_compute), Contains("basic subgroup operations"));
  CHECK(fit_error("gelu", no_subgroups_in_compute).empty());

  vk::DeviceInfo no_16bit = full_device();
  no_16bit.storage16 = false;
  REQUIRE(declares(shader("matmul_f16_8x8_h"), kStorage16));
  CHECK_THAT(fit_error("matmul_f16_8x8_h", no_16bit),
             Contains("storageBuffer16BitAccess") && Contains("train.amp: false"));
  CHECK(fit_error("matmul_f16_8x8", no_16bit).empty());  // fp32 output reads packed halves only
}

TEST_CASE("the workgroup size is read after specialization and checked against the limits", "[capabilities]") {
  // local_size_x_id = 0 (common/index.glsl): the built-in's component is a specialization
  // constant of its own with SpecId 0 and default 1 (WORKGROUP_SIZE's default 64 is another one).
  const vk::ShaderBinary& gelu = shader("gelu");
  const vk::WorkgroupSize def = vk::spirv_workgroup_size(gelu.words, gelu.bytes / 4, {});
  CHECK((def.x == 1 && def.y == 1 && def.z == 1));
  const vk::WorkgroupSize spec = vk::spirv_workgroup_size(gelu.words, gelu.bytes / 4, {{0, 256}});
  CHECK((spec.x == 256 && spec.y == 1 && spec.z == 1));
  const vk::ShaderBinary& naive = shader("matmul_naive");  // a fixed local_size 16 x 16
  const vk::WorkgroupSize fixed = vk::spirv_workgroup_size(naive.words, naive.bytes / 4, {{0, 999}});
  CHECK((fixed.x == 16 && fixed.y == 16 && fixed.z == 1));

  vk::DeviceInfo small = full_device();
  small.max_workgroup_invocations = 128;
  CHECK(fit_error("gelu", small, {{0, 128}}).empty());
  CHECK_THAT(fit_error("gelu", small, {{0, 256}}),
             Contains("shader gelu") && Contains("256x1x1") && Contains("maxComputeWorkGroupInvocations 128"));
  CHECK_THAT(fit_error("matmul_naive", small), Contains("16x16x1"));
  vk::DeviceInfo narrow = full_device();
  narrow.max_workgroup_size[1] = 8;
  CHECK_THAT(fit_error("matmul_naive", narrow), Contains("maxComputeWorkGroupSize[1] 8"));
}

TEST_CASE("a module that is not whole SPIR-V is refused", "[capabilities]") {
  const uint32_t header[5] = {0x07230203u, 0x00010500u, 0, 100, 0};
  std::vector<uint32_t> words(header, header + 5);
  words.push_back((2u << 16) | 17u);  // OpCapability Int64
  words.push_back(kInt64);
  CHECK(vk::spirv_capabilities(words.data(), words.size()) == std::vector<uint32_t>{kInt64});
  words.push_back((4u << 16) | 17u);  // an instruction that runs past the end
  words.push_back(1u);
  CHECK_THAT(error_of([&] { vk::spirv_capabilities(words.data(), words.size()); }), Contains("ends inside"));
  words[0] = 0;
  CHECK_THAT(error_of([&] { vk::spirv_capabilities(words.data(), words.size()); }), Contains("not a SPIR-V"));
}

TEST_CASE("mixed precision is refused when the model is built on a device that cannot run it",
          "[capabilities][amp][gpu]") {
  model::VitConfig cfg;
  cfg.image_size = 8;
  cfg.patch_size = 4;
  cfg.in_chans = 1;
  cfg.dim = 16;
  cfg.depth = 1;
  cfg.heads = 1;
  cfg.mlp_dim = 32;
  cfg.num_classes = 3;
  const std::string why = ops::matmul_f16_unsupported(ctx(), ops::MatmulOut::f32);
  if (why.empty()) {  // this device runs the fp16 kernels: the model builds
    CHECK_NOTHROW(model::Vit(ctx(), cfg, 2, true));
    return;
  }
  const std::string e = error_of([&] { model::Vit vit(ctx(), cfg, 2, true); });
  CHECK_THAT(e, Contains(why) && Contains("train.amp: false"));
  CHECK(e.find('\n') == std::string::npos);
}
