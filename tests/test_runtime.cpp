// The Vulkan runtime: validation errors are counted, arenas respect their limits, dispatch
// helpers split what devices cannot take in one piece, and caches are reused.
#include <catch2/catch.hpp>

#include "base/error.h"
#include "harness.h"
#include "ops/gelu.h"
#include "ops/launch.h"
#include "vk/pipeline.h"
#include "vk/profiler.h"
#include "vk/shader_ids.h"

using namespace vkvit;
using namespace vkvit::test;

TEST_CASE("validation layer errors are counted by the context", "[runtime]") {
  vk::ContextOptions o;
  o.validation = true;
  vk::Context checked(o);
  REQUIRE(checked.validation_errors() == 0);
  // A zero-sized buffer violates VUID-VkBufferCreateInfo-size-00912.
  VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bci.size = 0;
  bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
  VkBuffer buffer = VK_NULL_HANDLE;
  vkCreateBuffer(checked.device(), &bci, nullptr, &buffer);
  if (buffer) vkDestroyBuffer(checked.device(), buffer, nullptr);
  CHECK(checked.validation_errors() > 0);
}

TEST_CASE("the default device choice prefers GPUs over CPU drivers", "[runtime]") {
  std::vector<vk::DeviceInfo> devices(3);
  devices[0].type = VK_PHYSICAL_DEVICE_TYPE_CPU;
  devices[1].type = VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU;
  devices[2].type = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
  for (uint32_t i = 0; i < 3; ++i) {
    devices[i].index = i;
    devices[i].vulkan_1_2 = true;
  }
  CHECK(vk::Context::preferred_device(devices) == 2);
  devices[2].vulkan_1_2 = false;  // cannot run our SPIR-V
  CHECK(vk::Context::preferred_device(devices) == 1);
}

TEST_CASE("between two CPU drivers the default choice takes the one with 64-bit integers and fp16", "[runtime]") {
  std::vector<vk::DeviceInfo> devices(2);
  for (uint32_t i = 0; i < 2; ++i) {
    devices[i].index = i;
    devices[i].type = VK_PHYSICAL_DEVICE_TYPE_CPU;
    devices[i].vulkan_1_2 = true;
  }
  // SwiftShader first, as the loader listed it here, then lavapipe.
  devices[1].int64 = devices[1].float16 = devices[1].storage16 = true;
  CHECK(vk::Context::preferred_device(devices) == 1);
  devices[0].int64 = devices[0].float16 = devices[0].storage16 = true;  // equals: the first
  CHECK(vk::Context::preferred_device(devices) == 0);
}

TEST_CASE("ranks of a data-parallel run take the devices identical to the preferred one in turn, --device wins", "[runtime][mpi]") {
  // Two discrete GPUs at indices 1 and 3, an integrated GPU and a CPU driver.
  std::vector<vk::DeviceInfo> devices(4);
  const VkPhysicalDeviceType types[] = {VK_PHYSICAL_DEVICE_TYPE_CPU, VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU,
                                        VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU, VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU};
  for (uint32_t i = 0; i < 4; ++i) {
    devices[i].index = i;
    devices[i].type = types[i];
    devices[i].vulkan_1_2 = true;
  }
  vk::ContextOptions o;
  CHECK(vk::Context::choose_device(devices, o) == 1);  // one process: the preferred device
  const uint32_t expected[] = {1, 3, 1, 3, 1};
  for (int rank = 0; rank < 5; ++rank) {
    o.local_rank = rank;
    CHECK(vk::Context::choose_device(devices, o) == expected[rank]);
  }
  o.device = 2;  // an explicit choice wins for every rank
  CHECK(vk::Context::choose_device(devices, o) == 2);
  o.device = 4;
  CHECK_THROWS_WITH(vk::Context::choose_device(devices, o), Catch::Contains("device 4 does not exist"));
  // Two different CPU drivers (lavapipe and SwiftShader): every rank takes the preferred one.
  std::vector<vk::DeviceInfo> two(2);
  for (uint32_t i = 0; i < 2; ++i) {
    two[i].index = i;
    two[i].type = VK_PHYSICAL_DEVICE_TYPE_CPU;
    two[i].vulkan_1_2 = true;
  }
  two[0].name = "SwiftShader Device (Subzero)";
  two[1].name = "llvmpipe (LLVM 15.0.6, 256 bits)";
  two[1].int64 = two[1].float16 = two[1].storage16 = true;
  for (int rank = 0; rank < 3; ++rank) {
    vk::ContextOptions t;
    t.local_rank = rank;
    CHECK(vk::Context::choose_device(two, t) == 1);
  }
  // One CPU driver only (lavapipe): every rank shares it.
  std::vector<vk::DeviceInfo> cpu(1);
  cpu[0].type = VK_PHYSICAL_DEVICE_TYPE_CPU;
  cpu[0].vulkan_1_2 = true;
  vk::ContextOptions r;
  r.local_rank = 3;
  CHECK(vk::Context::choose_device(cpu, r) == 0);
}

TEST_CASE("vkvit devices names the cooperative-matrix shapes a driver offers", "[runtime]") {
  vk::DeviceInfo d;
  CHECK(d.cooperative_matrix_string() == "none (no VK_KHR_cooperative_matrix or VK_NV_cooperative_matrix)");
  d.cooperative_matrix_nv = true;
  CHECK(d.cooperative_matrix_string() == "NV offered, but the driver lists no shapes");
  d.cooperative_matrix_khr = true;
  // What an NVIDIA driver lists (one fp16 shape per extension, an int8 one), and an unknown type.
  d.cooperative_matrices = {{true, 16, 16, 16, 0, 0, 1, 1, 3}, {true, 16, 8, 32, 3, 3, 5, 5, 3},
                            {false, 16, 8, 16, 0, 0, 0, 0, 3}, {false, 8, 8, 8, 1000141000, 1, 1, 1, 2}};
  CHECK(d.cooperative_matrix_string() ==
        "KHR 16x16x16 f16*f16+f32->f32 (subgroup), KHR 16x8x32 s8*s8+s32->s32 (subgroup), "
        "NV 16x8x16 f16*f16+f16->f16 (subgroup), NV 8x8x8 type1000141000*f32+f32->f32 (scope 2)");
}

TEST_CASE("specialization constants go to their constant_id whatever the field order", "[runtime]") {
  struct Spec {
    vk::SpecField<3, bool> flag;
    vk::SpecField<0, uint32_t> size;
    vk::SpecField<7, float> scale;
    vk::SpecConstants to_spec() const { return vk::SpecConstants(flag, size, scale); }
  };
  const vk::SpecConstants spec = Spec{true, 256u, 0.5f};
  const std::vector<VkSpecializationMapEntry> entries = spec.map_entries();
  REQUIRE(entries.size() == 3);
  const uint32_t ids[] = {0, 3, 7};
  for (uint32_t i = 0; i < 3; ++i) {
    CHECK(entries[i].constantID == ids[i]);
    CHECK(entries[i].offset == 4 * i);
    CHECK(entries[i].size == 4);
  }
  CHECK(spec.data() == std::vector<uint32_t>{256u, 1u, 0x3f000000u});  // 0.5f by its bits
  CHECK(spec.key() != vk::SpecConstants(vk::SpecField<3, bool>{true}, vk::SpecField<0, uint32_t>{256u}).key());
  vk::SpecConstants twice{vk::SpecField<1, uint32_t>{2u}};
  CHECK_THROWS_WITH(twice.add(vk::SpecConstants(vk::SpecField<1, bool>{true})),
                    Catch::Contains("specialization constant 1 set twice"));
}

TEST_CASE("a device index out of range is a clear error", "[runtime][gpu]") {
  vk::ContextOptions o;
  o.device = 99;
  REQUIRE_THROWS_WITH(vk::Context(o), Catch::Contains("device 99 does not exist") && Catch::Contains("vkvit devices"));
}

TEST_CASE("arenas sub-allocate aligned views and name what does not fit", "[runtime][gpu]") {
  vk::Arena arena(ctx(), "activations", 1 << 20);
  vk::View a = arena.alloc(100, "a");
  vk::View b = arena.alloc(100, "b");
  CHECK(a.buffer == b.buffer);
  CHECK(b.offset % ctx().info().min_storage_offset_alignment == 0);
  CHECK_FALSE(a.overlaps(b));
  REQUIRE_THROWS_WITH(arena.alloc(2 << 20, "huge tensor"),
                      Catch::Contains("huge tensor") && Catch::Contains("activations"));
}

TEST_CASE("a binding over maxStorageBufferRange is refused with the limit named", "[runtime][gpu]") {
  const uint64_t limit = ctx().info().max_storage_buffer_range;
  if (limit >= ctx().info().max_memory_allocation_size) {
    WARN("device allows bindings as large as allocations; nothing to check");
    return;
  }
  vk::Buffer big(ctx(), limit + 4096, vk::MemoryKind::device, "big");
  vk::Recorder rec(ctx());
  const vk::Kernel& k = ctx().pipelines().get(shaders::gelu, 2, 4, vk::WorkgroupSpec{ops::kElementwiseGroup});
  const uint32_t n = 1;
  REQUIRE_THROWS_WITH(rec.dispatch(k, {big.view(), big.view()}, n, vk::Groups{}, "gelu"),
                      Catch::Contains("maxStorageBufferRange") && Catch::Contains("gelu"));
}

TEST_CASE("elementwise ops split work over the binding range and the group-count limit", "[runtime][gpu]") {
  const uint64_t limit = ctx().info().max_storage_buffer_range;
  // More floats than one binding holds (and than 65535 groups of 256 cover): the launcher must
  // split into chunks and fold groups into y.
  const uint64_t n = limit / 4 + 4096 + 7;
  if (skip_unless_allocatable(n * 4, "splitting the elementwise ops")) return;
  vk::Buffer in(ctx(), n * 4, vk::MemoryKind::device, "in");
  vk::Buffer out(ctx(), n * 4, vk::MemoryKind::device, "out");
  std::vector<float> x(n);
  for (uint64_t i = 0; i < n; ++i) x[i] = float(int64_t(i % 2001) - 1000) / 250.0f;
  ctx().upload(in.view(), x.data(), n * 4);
  vk::Recorder rec(ctx());
  ops::gelu_forward(rec, out.view(), in.view(), n);
  rec.submit_and_wait();
  std::vector<float> y(n);
  ctx().download(out.view(), y.data(), n * 4);
  // Spot-check both ends and the chunk seam against the double reference.
  std::vector<uint64_t> idx = {0, 1, 255, 256, limit / 4 - 1, limit / 4, limit / 4 + 1, n - 1};
  size_t bad = 0;
  for (uint64_t i : idx) {
    double xd = x[i], ref;
    ops::ref::gelu_forward(&ref, &xd, 1);
    if (std::abs(ref - y[i]) > 2e-6 + 1e-5 * std::abs(ref)) ++bad;
  }
  CHECK(bad == 0);
  uint64_t zeros = 0;  // every element written: gelu(x) == 0 only at x == 0 here
  for (uint64_t i = 0; i < n; ++i)
    if (y[i] == 0.0f && x[i] != 0.0f) ++zeros;
  CHECK(zeros == 0);
}

TEST_CASE("pipelines and descriptor sets are cached and reused", "[runtime][gpu]") {
  DeviceTensor a(random_floats(300, 1)), b(300);
  vk::Recorder rec(ctx());
  ops::gelu_forward(rec, b.view(), a.view(), 300);
  rec.submit_and_wait();
  const size_t pipelines = ctx().pipelines().pipeline_count();
  const size_t sets = ctx().pipelines().descriptor_set_count();
  ops::gelu_forward(rec, b.view(), a.view(), 300);
  rec.submit_and_wait();
  CHECK(ctx().pipelines().pipeline_count() == pipelines);
  CHECK(ctx().pipelines().descriptor_set_count() == sets);
}

TEST_CASE("profiling records GPU time per op label", "[runtime][gpu]") {
  vk::ContextOptions o;
  o.profile = true;
  vk::Context profiled(o);
  if (!profiled.info().timestamps) {
    WARN("device has no compute timestamps");
    return;
  }
  vk::Buffer in(profiled, 4096 * 4, vk::MemoryKind::device, "in"), out(profiled, 4096 * 4, vk::MemoryKind::device, "out");
  vk::Recorder rec(profiled);
  ops::gelu_forward(rec, out.view(), in.view(), 4096);
  rec.submit_and_wait();
  REQUIRE(profiled.profiler().entries().count("gelu") == 1);
  CHECK(profiled.profiler().entries().at("gelu").count == 1);
  profiled.profiler().clear();  // keep the exit table out of the test log
}
