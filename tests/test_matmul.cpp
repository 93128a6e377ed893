// matmul: every kernel (naive, register_blocked, tiled) vs the double-precision reference on odd shapes,
// every transpose, batches with two-level strides, bias, beta accumulation, unaligned leading
// dimensions, the vec4 load variants, the long-K split, a call larger than one binding, and the
// launcher's small-block choice for batched small products (attention over few tokens).
#include <catch2/catch.hpp>
#include <algorithm>
#include <cstdlib>
#include <vector>

#include "base/error.h"
#include "harness.h"
#include "ops/attention.h"
#include "ops/gelu.h"
#include "ops/matmul.h"
#include "vk/profiler.h"

using namespace vkvit;
using namespace vkvit::test;

namespace {

const ops::MatmulKernel kKernels[] = {ops::MatmulKernel::naive, ops::MatmulKernel::register_blocked,
                                      ops::MatmulKernel::tiled};

// llvmpipe compiles the fully unrolled register-blocked kernel slowly (about 1.4 s per pipeline for the
// 8x8 variant, 6 s for the default 16x12, once per Mesa shader cache). The broad tests run the
// 8x8 variant, which is the same GLSL body (common/matmul_regblock.glsl) with a smaller block;
// one test covers the default block on the shapes the ViT uses.
// The 8 x 8 block unless the user forces one (VKVIT_MATMUL_..._TM/_TN).
struct SmallRegisterBlock {
  ScopedTuning tile{[](vk::Tuning& k) {
    if (!k.matmul_tm) k.matmul_tm = 8;
    if (!k.matmul_tn) k.matmul_tn = 8;
  }};
};

// The register-blocked kernel runs in workgroups of 8 or 4 lanes that are one subgroup
// (ops::register_blocked_lanes); skipped, with the reason, on a device with neither.
bool skip_without_register_blocked_lanes() {
  if (ops::register_blocked_lanes(ctx().info()) != 0) return false;
  return skipped_because(ops::lanes_unsupported(ctx().info(), "register_blocked matmul", 4));
}

void check_matmul(ops::MatmulShape s, bool with_bias, uint32_t seed, ops::MatmulKernel kernel) {
  if (kernel == ops::MatmulKernel::register_blocked && skip_without_register_blocked_lanes()) return;
  const MatmulExtents extents = matmul_extents(s);
  auto a = random_floats(extents.a, seed);
  auto b = random_floats(extents.b, seed + 1);
  auto c0 = random_floats(extents.c, seed + 2);
  auto bias = random_floats(s.N, seed + 3);

  DeviceTensor da(a), db(b), dc(c0), dbias(bias);
  vk::Recorder rec(ctx());
  ops::matmul(rec, dc.view(), da.view(), db.view(), s, with_bias ? dbias.view() : vk::View{}, kernel);
  rec.submit_and_wait();

  auto ref = to_double(c0);
  auto ad = to_double(a), bd = to_double(b), biasd = to_double(bias);
  ops::ref::matmul(ref.data(), ad.data(), bd.data(), s, with_bias ? biasd.data() : nullptr);
  // fp32 accumulation of K products of values in [-1, 1]: each of the K roundings is at most
  // 6e-8 of a partial sum bounded by K, so 1e-5 * K covers the worst case with margin; elements
  // of C outside the product (padding of an unaligned ldc) must come back unchanged (atol too).
  require_close(dc.read(), ref, 1e-5 * std::max(s.K, 1u), 1e-5,
                std::string("matmul ") + ops::matmul_kernel_name(kernel));
}

}  // namespace

TEST_CASE("matmul kernels match the reference for every transpose on odd shapes", "[matmul][gpu]") {
  SmallRegisterBlock small_tile;
  // Not multiples of any tile (register_blocked 16 x 96, tiled 32 x 32 or 64 x 64) nor of 4 (scalar loads),
  // degenerate M, N, K = 1, and a K that is not a multiple of the 4-wide k step.
  struct Dims {
    uint32_t M, N, K;
  };
  const Dims dims[] = {{50, 127, 13}, {1, 37, 19}, {23, 1, 7}, {9, 11, 1}, {193, 67, 129}};
  uint32_t seed = 100;
  for (ops::MatmulKernel kernel : kKernels)
    for (const Dims& d : dims)
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          ops::MatmulShape s = matmul_shape(d.M, d.N, d.K, ta, tb);
          s.alpha = 0.75f;
          s.beta = (seed % 2) ? 1.0f : 0.0f;  // half of the cases accumulate into C
          const bool bias = seed % 3 != 0;
          seed += 4;
          DYNAMIC_SECTION(ops::matmul_kernel_name(kernel) << " M=" << d.M << " N=" << d.N << " K=" << d.K
                                                          << " trans_a=" << ta << " trans_b=" << tb) {
            check_matmul(s, bias, seed, kernel);
          }
        }
}

TEST_CASE("the tiled kernel with the GPU tile (64x64x16, 256 invocations) matches the reference", "[matmul][gpu]") {
  // Devices with the shared memory and workgroup size for it run this tile; CPU drivers get the
  // 32 x 32 one, so without the override the GPU tile would only ever run on GPUs.
  ScopedTuning tile([](vk::Tuning& k) { k.matmul_tile = vk::MatmulTile{64, 64, 16}; });
  struct Dims {
    uint32_t M, N, K;
  };
  const Dims dims[] = {{50, 127, 13}, {193, 67, 129}, {64, 64, 16}, {1, 130, 33}};
  uint32_t seed = 700;
  for (const Dims& d : dims)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        ops::MatmulShape s = matmul_shape(d.M, d.N, d.K, ta, tb);
        s.beta = (seed % 2) ? 1.0f : 0.0f;
        seed += 3;
        DYNAMIC_SECTION("M=" << d.M << " N=" << d.N << " K=" << d.K << " trans_a=" << ta << " trans_b=" << tb) {
          check_matmul(s, seed % 3 != 0, seed, ops::MatmulKernel::tiled);
        }
      }
  // A tile past the device's workgroup limits (4096 invocations) is refused when the kernel runs;
  // a malformed VKVIT_MATMUL_TILE never gets this far (test_tuning.cpp).
  ScopedTuning too_big([](vk::Tuning& k) { k.matmul_tile = vk::MatmulTile{256, 256, 16}; });
  ops::MatmulShape s = matmul_shape(8, 8, 8, false, false);
  DeviceTensor a(64), b(64), c(64);
  vk::Recorder rec(ctx());
  CHECK_THROWS_WITH(ops::matmul(rec, c.view(), a.view(), b.view(), s, {}, ops::MatmulKernel::tiled),
                    Catch::Contains("VKVIT_MATMUL_TILE='256x256x16' needs 4096 invocations"));
}

TEST_CASE("matmul vec4 load variants match the reference", "[matmul][gpu]") {
  SmallRegisterBlock small_tile;
  // Every dimension a multiple of 4 (the register-blocked kernel loads A and B as vec4), but M and N
  // not multiples of its 16 x 96 block, so the clamped edge loads are exercised too. The
  // register-blocked kernel reads aligned operands from texel buffers unless Tuning::matmul_texel
  // is off, and then from storage buffers, as 64-bit pairs unless Tuning::matmul_wide is off: all
  // three paths run here.
  struct Loads {
    const char* name;
    bool texel;
    bool wide;
  };
  const Loads loads[] = {{"texel", true, true}, {"storage-wide", false, true}, {"storage", false, false}};
  uint32_t seed = 300;
  for (ops::MatmulKernel kernel : {ops::MatmulKernel::register_blocked, ops::MatmulKernel::tiled})
    for (const Loads& l : loads) {
      if (kernel == ops::MatmulKernel::tiled && !l.texel) continue;  // tiled has one load path
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          ops::MatmulShape s = matmul_shape(52, 100, 36, ta, tb);
          s.beta = 1.0f;
          seed += 4;
          DYNAMIC_SECTION(ops::matmul_kernel_name(kernel) << " " << l.name << " trans_a=" << ta << " trans_b=" << tb) {
            ScopedTuning loads_path([&](vk::Tuning& k) {
              k.matmul_texel = l.texel;
              k.matmul_wide = l.wide;
            });
            check_matmul(s, true, seed, kernel);
          }
        }
    }
}

TEST_CASE("matmul reads aligned operands through texel buffers on lavapipe", "[matmul][gpu]") {
  // The profile's shape labels name the kernel each product ran: aligned A and B take the texel
  // variant, a K that is not a multiple of 4 (no vec4 loads of A in NN) keeps the storage one.
  SmallRegisterBlock small_tile;
  vk::ContextOptions o;
  o.profile = true;
  o.tuning = ctx().tuning();  // the small block, and whatever else the user forced
  o.tuning.profile_shapes = true;
  o.tuning.matmul_texel = true;
  vk::Context profiled(o);
  if (!profiled.info().timestamps ||
      ops::matmul_kernel_for(profiled.info(), profiled.tuning()) != ops::MatmulKernel::register_blocked) {
    WARN("no timestamps or not a CPU driver: the kernel choice is not visible here");
    return;
  }
  vk::Buffer a(profiled, 64 * 64 * 4, vk::MemoryKind::device, "a"), b(profiled, 64 * 64 * 4, vk::MemoryKind::device, "b"),
      c(profiled, 64 * 64 * 4, vk::MemoryKind::device, "c");
  vk::Recorder rec(profiled);
  ops::matmul(rec, c.view(), a.view(), b.view(), matmul_shape(40, 64, 32, false, false));
  ops::matmul(rec, c.view(), a.view(), b.view(), matmul_shape(40, 64, 30, false, false));
  rec.submit_and_wait();
  const auto& e = profiled.profiler().entries();
  // The module with the 64-bit loads and stores where the device has shaderInt64, else the one without.
  const std::string wide = profiled.info().int64 && profiled.tuning().matmul_wide ? "_wide" : "";
  // The 4-lane build on a 4-lane device (SwiftShader, lavapipe at 128-bit vectors).
  const std::string lanes = ops::register_blocked_lanes(profiled.info()) == 4 ? "l4_" : "";
  CHECK(e.count("matmul NN 40x64x32 b1 matmul_regblock_texel_" + lanes + "8x8" + wide) == 1);
  CHECK(e.count("matmul NN 40x64x30 b1 matmul_regblock_" + lanes + "8x8" + wide) == 1);
  profiled.profiler().clear();  // keep the exit table out of the test log
}

TEST_CASE("matmul with unaligned leading dimensions", "[matmul][gpu]") {
  SmallRegisterBlock small_tile;
  // Row strides larger than the rows and odd (ld % 4 != 0 forces scalar loads even though the
  // sizes are multiples of 4); C's padding columns must be left alone.
  uint32_t seed = 400;
  for (ops::MatmulKernel kernel : kKernels)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        ops::MatmulShape s = matmul_shape(20, 24, 16, ta, tb);
        s.a.ld = (ta ? s.M : s.K) + 3;
        s.b.ld = (tb ? s.K : s.N) + 5;
        s.c.ld = s.N + 1;
        s.beta = 0.5f;
        seed += 4;
        DYNAMIC_SECTION(ops::matmul_kernel_name(kernel) << " trans_a=" << ta << " trans_b=" << tb) {
          check_matmul(s, false, seed, kernel);
        }
      }
}

TEST_CASE("matmul reads heads out of a fused qkv layout with two-level batch strides", "[matmul][gpu]") {
  SmallRegisterBlock small_tile;
  // Scores S = Q K^T for B=2 images, H=3 heads, N=17 tokens, d=5: qkv is (B, N, 3, H, d);
  // then O = P V with P (B, H, N, N) and V read from the same qkv buffer (d = 8: vec4 loads).
  for (ops::MatmulKernel kernel : kKernels) {
    for (uint32_t d : {5u, 8u}) {
      const uint32_t B = 2, H = 3, N = 17, D = H * d;
      ops::MatmulShape s;
      s.M = N;
      s.N = N;
      s.K = d;
      s.trans_b = true;
      s.batch = B * H;
      s.batch_inner = H;
      s.a = {3 * D, uint64_t(N) * 3 * D, d};
      s.b = {3 * D, uint64_t(N) * 3 * D, d};
      s.c = {0, uint64_t(H) * N * N, uint64_t(N) * N};
      DYNAMIC_SECTION(ops::matmul_kernel_name(kernel) << " scores d=" << d) { check_matmul(s, false, 40, kernel); }

      ops::MatmulShape o;
      o.M = N;
      o.N = d;
      o.K = N;
      o.batch = B * H;
      o.batch_inner = H;
      o.a = {0, uint64_t(H) * N * N, uint64_t(N) * N};
      o.b = {3 * D, uint64_t(N) * 3 * D, d};
      o.c = {D, uint64_t(N) * D, d};  // output (B, N, H, d)
      DYNAMIC_SECTION(ops::matmul_kernel_name(kernel) << " P V d=" << d) { check_matmul(o, false, 41, kernel); }
    }
  }
}

TEST_CASE("matmul with K = 0 leaves beta * C + bias", "[matmul][gpu]") {
  SmallRegisterBlock small_tile;
  for (ops::MatmulKernel kernel : kKernels) {
    ops::MatmulShape s = matmul_shape(5, 7, 0, false, true);
    s.a.ld = 1;  // so the (unread) operands are not empty buffers
    s.b.ld = 1;
    s.beta = 0.5f;
    DYNAMIC_SECTION(ops::matmul_kernel_name(kernel)) { check_matmul(s, true, 50, kernel); }
  }
}

TEST_CASE("matmul with a long K runs as accumulated chunks", "[matmul][gpu]") {
  SmallRegisterBlock small_tile;
  // K above the register-blocked kernel's split threshold (2048): the product runs as 512-deep pieces,
  // the later ones with beta = 1 and without the bias; dW = dY^T X is the real case (TN).
  for (bool ta : {false, true}) {
    ops::MatmulShape s = matmul_shape(20, 36, 2100, ta, false);
    s.beta = 0.25f;
    DYNAMIC_SECTION("trans_a=" << ta) { check_matmul(s, true, 60, ops::MatmulKernel::register_blocked); }
  }
}

TEST_CASE("matmul splits an operand larger than maxStorageBufferRange", "[matmul][gpu]") {
  SmallRegisterBlock small_tile;
  // A (M, K) of 540000 x 64 floats = 138 MB, above lavapipe's 128 MiB binding limit: the call
  // must split along M. Checked on rows at the start, across the split and at the end.
  const uint64_t limit = ctx().info().max_storage_buffer_range;
  const uint32_t K = 64, N = 4;
  const uint32_t M = static_cast<uint32_t>(limit / (K * 4) + limit / (K * 4) / 32);
  ops::MatmulShape s = matmul_shape(M, N, K, false, false);
  if (skip_unless_allocatable(uint64_t(M) * K * 4, "splitting A")) return;
  auto a = random_floats(uint64_t(M) * K, 70);
  auto b = random_floats(uint64_t(K) * N, 71);
  DeviceTensor da(a), db(b), dc(uint64_t(M) * N);
  vk::Recorder rec(ctx());
  ops::matmul(rec, dc.view(), da.view(), db.view(), s);
  rec.submit_and_wait();
  require_matmul_rows_close(a, b, dc.read(), s, "matmul");
}

TEST_CASE("matmul default register-blocked block on the ViT linear-layer layouts", "[matmul][gpu]") {
  // The production variant (16 x 12 per lane) with vec4 loads: forward Y = X W^T (NT), and the
  // backward dX = dY W (NN) and dW = dY^T X (TN), at a reduced token count that is not a
  // multiple of the 16-row block.
  struct Case {
    uint32_t M, N, K;
    bool ta, tb;
  };
  const Case cases[] = {{100, 96, 64, false, true}, {100, 64, 96, false, false}, {96, 64, 100, true, false}};
  uint32_t seed = 500;
  for (const Case& c : cases) {
    ops::MatmulShape s = matmul_shape(c.M, c.N, c.K, c.ta, c.tb);
    s.beta = c.ta ? 1.0f : 0.0f;  // dW accumulates over micro-batches
    seed += 4;
    DYNAMIC_SECTION("trans_a=" << c.ta << " trans_b=" << c.tb) {
      check_matmul(s, !c.ta, seed, ops::MatmulKernel::register_blocked);
    }
  }
}

TEST_CASE("matmul small batched products with the launcher's own block choice", "[matmul][gpu]") {
  // No forced block: the launcher picks the 8-row small blocks (8 x 2 for N <= 16, 8 x 3 up to 32)
  // and several batch entries per workgroup. Batch counts that are not a multiple of the entries
  // per workgroup (8) leave the last workgroup partly empty; every transpose, beta = 1 (attention's
  // backward accumulates), degenerate 1 x 1 and the largest small shape (32 x 32).
  struct Case {
    uint32_t M, N, K, batch, inner;
  };
  const Case cases[] = {{17, 17, 16, 20, 4}, {17, 16, 17, 9, 3}, {13, 5, 7, 11, 1}, {1, 1, 1, 3, 1}, {32, 32, 3, 8, 2}};
  uint32_t seed = 600;
  for (const Case& c : cases)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        ops::MatmulShape s = matmul_shape(c.M, c.N, c.K, ta, tb);
        s.batch = c.batch;
        s.batch_inner = c.inner;
        const uint64_t a_size = uint64_t(c.M) * c.K, b_size = uint64_t(c.K) * c.N, c_size = uint64_t(c.M) * c.N;
        // Inner entries back to back, outer entries with a gap (so the two strides differ).
        s.a = {0, (a_size + 3) * c.inner, a_size};
        s.b = {0, (b_size + 1) * c.inner, b_size};
        s.c = {0, (c_size + 2) * c.inner, c_size};
        s.alpha = 0.25f;
        s.beta = seed % 2 ? 1.0f : 0.0f;
        seed += 4;
        DYNAMIC_SECTION("M=" << c.M << " N=" << c.N << " K=" << c.K << " batch=" << c.batch << " trans_a=" << ta
                             << " trans_b=" << tb) {
          check_matmul(s, seed % 3 == 0, seed, ops::MatmulKernel::register_blocked);
        }
      }
}

TEST_CASE("matmul on the Fashion-MNIST attention layouts with the launcher's blocks", "[matmul][gpu]") {
  // The four attention product shapes at N = 17 tokens, d = 16, H = 4 over 10 images (40 heads):
  // Q, K, V inside (B, N, 3D), P dense (B, H, N, N), O (B, N, D); vec4 loads where aligned.
  const ops::AttentionProducts p = ops::attention_products(10, 17, 64, 4);
  SECTION("S = Q K^T") { check_matmul(p.scores, false, 700, ops::MatmulKernel::register_blocked); }
  SECTION("O = P V") { check_matmul(p.pv, false, 701, ops::MatmulKernel::register_blocked); }
  SECTION("dV += P^T dO") { check_matmul(p.dv, false, 702, ops::MatmulKernel::register_blocked); }
  SECTION("dK += dS^T Q") { check_matmul(p.dk, false, 703, ops::MatmulKernel::register_blocked); }
}

TEST_CASE("matmul kernel names parse and the device picks one", "[matmul]") {
  CHECK(ops::parse_matmul_kernel("naive") == ops::MatmulKernel::naive);
  CHECK(ops::parse_matmul_kernel("register_blocked") == ops::MatmulKernel::register_blocked);
  CHECK(ops::parse_matmul_kernel("lavapipe") == ops::MatmulKernel::register_blocked);  // the older name
  CHECK(std::string(ops::matmul_kernel_name(ops::MatmulKernel::register_blocked)) == "register_blocked");
  CHECK(ops::parse_matmul_kernel("tiled") == ops::MatmulKernel::tiled);
  CHECK_THROWS_AS(ops::parse_matmul_kernel("fast"), Error);
  vk::DeviceInfo gpu;
  gpu.type = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
  gpu.name = "some GPU";
  vk::DeviceInfo cpu;
  cpu.type = VK_PHYSICAL_DEVICE_TYPE_CPU;
  cpu.name = "llvmpipe (LLVM 15.0.6, 256 bits)";
  cpu.subgroup_in_compute = true;
  cpu.subgroup_ops = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT;
  cpu.subgroup_size = cpu.min_subgroup_size = cpu.max_subgroup_size = 8;
  cpu.subgroup_size_control = true;
  const vk::Tuning automatic;
  CHECK(ops::matmul_kernel_for(gpu, automatic) == ops::MatmulKernel::tiled);
  CHECK(ops::matmul_kernel_for(cpu, automatic) == ops::MatmulKernel::register_blocked);
  vk::Tuning forced;
  forced.matmul_kernel = "naive";
  CHECK(ops::matmul_kernel_for(gpu, forced) == ops::MatmulKernel::naive);
  CHECK(ops::matmul_kernel_for(cpu, forced) == ops::MatmulKernel::naive);
}

TEST_CASE("the 8-lane kernels run only where a workgroup of 8 lanes is one subgroup", "[matmul]") {
  vk::DeviceInfo cpu;
  cpu.type = VK_PHYSICAL_DEVICE_TYPE_CPU;
  cpu.name = "a CPU driver";
  cpu.subgroup_in_compute = true;
  cpu.subgroup_ops = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT;
  cpu.subgroup_size_control = true;
  auto with_sizes = [&](uint32_t reported, uint32_t min, uint32_t max) {
    vk::DeviceInfo d = cpu;
    d.subgroup_size = reported;
    d.min_subgroup_size = min;
    d.max_subgroup_size = max;
    return d;
  };
  const vk::Tuning automatic;
  // Pinned to 8 where the range has it; to 16 (a partly filled subgroup holds the 8 lanes) where
  // 16 is the smallest; never at 4 (the workgroup would be two subgroups).
  CHECK(ops::eight_lane_pin(with_sizes(8, 8, 8)).size == 8);
  CHECK(ops::eight_lane_pin(with_sizes(32, 8, 32)).size == 8);
  CHECK(ops::eight_lane_pin(with_sizes(16, 16, 16)).size == 16);
  CHECK(ops::eight_lane_pin(with_sizes(4, 4, 4)).size == 0);
  CHECK(ops::matmul_kernel_for(with_sizes(16, 16, 16), automatic) == ops::MatmulKernel::register_blocked);
  // The register-blocked fp32 kernel has a 4-lane build: 4-lane CPU drivers take it.
  CHECK(ops::register_blocked_lanes(with_sizes(8, 8, 8)) == 8);
  CHECK(ops::register_blocked_lanes(with_sizes(16, 16, 16)) == 8);
  CHECK(ops::register_blocked_lanes(with_sizes(4, 4, 4)) == 4);
  CHECK(ops::register_blocked_lanes(with_sizes(2, 2, 2)) == 0);
  CHECK(ops::lane_pin(with_sizes(4, 4, 4), 4).size == 4);
  CHECK(ops::matmul_kernel_for(with_sizes(4, 4, 4), automatic) == ops::MatmulKernel::register_blocked);
  CHECK(ops::matmul_kernel_for(with_sizes(2, 2, 2), automatic) == ops::MatmulKernel::tiled);
  // Without size control only a CPU driver's reported width is taken at its word.
  vk::DeviceInfo fixed = with_sizes(8, 0, 0);
  fixed.subgroup_size_control = false;
  CHECK(ops::eight_lane_pin(fixed).size == 8);
  fixed.type = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
  CHECK(ops::eight_lane_pin(fixed).size == 0);
  CHECK(ops::register_blocked_lanes(fixed) == 0);  // a GPU that cannot pin: tiled
  // The reason names the kernel and the device's subgroup size.
  const std::string why = ops::eight_lane_unsupported(with_sizes(4, 4, 4), "the register-blocked matmul kernel");
  CHECK_THAT(why, Catch::Matchers::Contains("register-blocked matmul") && Catch::Matchers::Contains("subgroup size 4"));
  CHECK_THAT(ops::lanes_unsupported(with_sizes(2, 2, 2), "x", 4), Catch::Matchers::Contains("workgroups of 4 lanes"));
  CHECK(ops::eight_lane_unsupported(with_sizes(8, 8, 8), "x").empty());
}

namespace {

// This device described as a 4-lane CPU driver (ScopedKernelDevice): the register-blocked kernel
// then runs its 4-lane build here too (a workgroup of 4 lanes fits a larger subgroup).
vk::DeviceInfo four_lane_cpu() {
  vk::DeviceInfo d = ctx().info();
  d.type = VK_PHYSICAL_DEVICE_TYPE_CPU;
  d.subgroup_size = d.min_subgroup_size = d.max_subgroup_size = 4;
  return d;
}

// The epilogue's expected C and aux from r = alpha op(A) op(B) + beta C + bias (`c`, in place)
// and aux's initial value (`aux`, in place); op(A) for the row sums.
void apply_epilogue(ops::MatmulEpilogue e, const ops::MatmulShape& s, const std::vector<double>& a,
                    std::vector<double>& c, std::vector<double>& aux) {
  const uint32_t ldc = s.c.ld ? s.c.ld : s.N, lda = s.a.ld ? s.a.ld : (s.trans_a ? s.M : s.K);
  for (uint32_t m = 0; m < s.M; ++m) {
    if (e == ops::MatmulEpilogue::row_sums)
      for (uint32_t k = 0; k < s.K; ++k) aux[m] += s.trans_a ? a[size_t(k) * lda + m] : a[size_t(m) * lda + k];
    for (uint32_t n = 0; n < s.N; ++n) {
      const size_t i = size_t(m) * ldc + n;
      double out = c[i];
      if (e == ops::MatmulEpilogue::gelu || e == ops::MatmulEpilogue::gelu_only) {
        ops::ref::gelu_forward(&out, &c[i], 1);
        if (e == ops::MatmulEpilogue::gelu) aux[i] = c[i];
      } else if (e == ops::MatmulEpilogue::add) {
        out = c[i] + aux[i];
      } else if (e == ops::MatmulEpilogue::gelu_grad) {
        out = 0.0;  // gelu_backward accumulates into its output
        ops::ref::gelu_backward(&out, &aux[i], &c[i], 1);
      }
      c[i] = out;
    }
  }
}

void check_epilogue(ops::MatmulShape s, ops::MatmulEpilogue e, uint32_t seed) {
  s.epilogue = e;
  const MatmulExtents extents = matmul_extents(s);
  const size_t aux_size = e == ops::MatmulEpilogue::row_sums ? s.M : extents.c;
  auto a = random_floats(extents.a, seed), b = random_floats(extents.b, seed + 1);
  auto c0 = random_floats(extents.c, seed + 2), bias = random_floats(s.N, seed + 3);
  auto aux0 = random_floats(aux_size, seed + 4);
  DeviceTensor da(a), db(b), dc(c0), dbias(bias), daux(aux0);
  vk::Recorder rec(ctx());
  const bool has_aux = e != ops::MatmulEpilogue::gelu_only;
  ops::matmul(rec, dc.view(), da.view(), db.view(), s, dbias.view(), ops::MatmulKernel::register_blocked,
              has_aux ? daux.view() : vk::View{});
  rec.submit_and_wait();
  auto c = to_double(c0), aux = to_double(aux0), ad = to_double(a), bd = to_double(b), biasd = to_double(bias);
  ops::MatmulShape plain = s;
  plain.epilogue = ops::MatmulEpilogue::none;
  ops::ref::matmul(c.data(), ad.data(), bd.data(), plain, biasd.data());
  apply_epilogue(e, s, ad, c, aux);
  const double atol = 1e-5 * std::max(s.K, 1u);
  require_close(dc.read(), c, atol, 1e-5, "4-lane matmul epilogue C");
  if (has_aux) require_close(daux.read(), aux, atol, 1e-5, "4-lane matmul epilogue operand");
}

}  // namespace

TEST_CASE("the 4-lane register-blocked kernel matches the reference", "[matmul][gpu]") {
  if (skipped_because(ops::lanes_unsupported(ctx().info(), "the 4-lane register-blocked matmul kernel", 4))) return;
  ScopedKernelDevice four_lanes(four_lane_cpu());
  REQUIRE(ops::register_blocked_lanes(ctx().kernel_device()) == 4);
  REQUIRE(ops::matmul_kernel_for(ctx().kernel_device(), vk::Tuning{}) == ops::MatmulKernel::register_blocked);
  const ops::MatmulKernel kernel = ops::MatmulKernel::register_blocked;
  uint32_t seed = 800;
  // Odd shapes, every transpose, the launcher's own blocks (16 x 12, 8 x 8 for M <= 8).
  struct Dims {
    uint32_t M, N, K;
  };
  for (const Dims& d : {Dims{50, 127, 13}, Dims{1, 37, 19}, Dims{23, 1, 7}, Dims{193, 67, 129}, Dims{52, 100, 36}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        ops::MatmulShape s = matmul_shape(d.M, d.N, d.K, ta, tb);
        s.alpha = 0.75f;
        s.beta = (seed % 2) ? 1.0f : 0.0f;
        seed += 4;
        DYNAMIC_SECTION("M=" << d.M << " N=" << d.N << " K=" << d.K << " trans_a=" << ta << " trans_b=" << tb) {
          // Aligned operands take the texel variant unless it is off; both load paths run.
          for (bool texel : {true, false}) {
            ScopedTuning loads([&](vk::Tuning& k) { k.matmul_texel = texel; });
            check_matmul(s, seed % 3 != 0, seed, kernel);
          }
        }
      }
  SECTION("unaligned leading dimensions") {
    ops::MatmulShape s = matmul_shape(20, 24, 16, true, false);
    s.a.ld = s.M + 3;
    s.b.ld = s.N + 5;
    s.c.ld = s.N + 1;
    s.beta = 0.5f;
    check_matmul(s, true, 850, kernel);
  }
  SECTION("a long K runs as accumulated chunks") {
    ops::MatmulShape s = matmul_shape(20, 36, 2100, true, false);
    s.beta = 0.25f;
    check_matmul(s, true, 851, kernel);
  }
  SECTION("batched small products with two-level strides (the attention products)") {
    const ops::AttentionProducts p = ops::attention_products(10, 17, 64, 4);
    check_matmul(p.scores, false, 852, kernel);
    check_matmul(p.pv, false, 853, kernel);
    check_matmul(p.dv, false, 854, kernel);
    check_matmul(p.dk, false, 855, kernel);
    const ops::AttentionProducts demo = ops::attention_products(6, 5, 128, 4);  // the demo's 5 tokens
    check_matmul(demo.scores, false, 856, kernel);
    check_matmul(demo.dk, false, 857, kernel);
  }
}

TEST_CASE("the 4-lane register-blocked kernel fuses every epilogue", "[matmul][gpu]") {
  if (skipped_because(ops::lanes_unsupported(ctx().info(), "the 4-lane register-blocked matmul kernel", 4))) return;
  ScopedKernelDevice four_lanes(four_lane_cpu());
  CHECK(ops::matmul_epilogue_supported(ops::MatmulKernel::automatic, ctx()));
  const ops::MatmulEpilogue kinds[] = {ops::MatmulEpilogue::gelu, ops::MatmulEpilogue::gelu_only,
                                       ops::MatmulEpilogue::add, ops::MatmulEpilogue::gelu_grad,
                                       ops::MatmulEpilogue::row_sums};
  uint32_t seed = 900;
  for (ops::MatmulEpilogue e : kinds)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        // 37 columns: a partial column block; 64 x 96 x 40: aligned, the texel loads.
        for (const ops::MatmulShape& shape : {matmul_shape(50, 37, 13, ta, tb), matmul_shape(64, 96, 40, ta, tb)}) {
          ops::MatmulShape s = shape;
          s.beta = seed % 2 ? 0.5f : 0.0f;
          seed += 5;
          DYNAMIC_SECTION("epilogue " << int(e) << " M=" << s.M << " trans_a=" << ta << " trans_b=" << tb) {
            check_epilogue(s, e, seed);
          }
        }
      }
}
