// grad_norm: the reference against a direct double sum, the GPU norm and clip coefficient against
// the reference over uneven ranges (one flat buffer and several separate ones; texel and storage reads),
// non-finite gradients, reproducibility, and a range larger than maxStorageBufferRange.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstring>

#include "harness.h"
#include "ops/grad_norm.h"

using namespace vkvit;
using namespace vkvit::test;

namespace {

// Uneven tensor sizes of a 100003-float gradient: a scalar, odd vectors and matrices.
const std::vector<size_t> kTensorSizes = {1, 13, 127, 4099, 768, 50000, 44995};

std::vector<float> run_grad_norm(const std::vector<vk::View>& grads, float max_norm) {
  DeviceTensor result(ops::kGradNormFloats), scratch(ops::grad_norm_scratch_floats(ctx(), grads));
  vk::Recorder rec(ctx());
  ops::grad_norm(rec, result.view(), scratch.view(), grads, max_norm);
  rec.submit_and_wait();
  return result.read();
}

}  // namespace

TEST_CASE("grad_norm reference matches a direct double sum", "[grad_norm][ref]") {
  auto g = to_double(random_floats(100003, 50, -3, 3));
  std::vector<ops::ref::Range> ranges;
  size_t at = 0;
  for (size_t n : kTensorSizes) {
    ranges.push_back({g.data() + at, n});
    at += n;
  }
  REQUIRE(at == g.size());
  double ssq = 0;
  for (double x : g) ssq += x * x;
  // Both are double sums of the same 1e5 terms in different orders: ~1e5 * 1e-16 relative.
  CHECK(ops::ref::grad_norm(ranges) == Approx(std::sqrt(ssq)).epsilon(1e-12));
  CHECK(ops::ref::grad_norm({}) == 0.0);

  // Scaled accumulation survives values whose squares overflow double.
  std::vector<double> big = {3e200, 4e200};
  CHECK(ops::ref::grad_norm({{big.data(), 2}}) == Approx(5e200).epsilon(1e-15));

  CHECK(ops::ref::clip_coefficient(10.0, 1.0) == Approx(1.0 / (10.0 + 1e-6)).epsilon(1e-15));
  CHECK(ops::ref::clip_coefficient(0.5, 1.0) == 1.0);
  CHECK(ops::ref::clip_coefficient(10.0, 0.0) == 1.0);  // max_norm <= 0: no clipping
  CHECK(std::isnan(ops::ref::clip_coefficient(NAN, 1.0)));
  CHECK(std::isnan(ops::ref::clip_coefficient(INFINITY, 0.0)));
  std::vector<double> bad = {1.0, INFINITY, NAN};
  CHECK(std::isinf(ops::ref::grad_norm({{bad.data(), 2}})));
  CHECK(std::isnan(ops::ref::grad_norm({{bad.data(), 3}})));
}

TEST_CASE("grad_norm on the GPU matches the reference over uneven ranges", "[grad_norm][gpu]") {
  auto g = random_floats(100003, 51, -3, 3);
  auto gd = to_double(g);
  const double ref_norm = ops::ref::grad_norm({{gd.data(), gd.size()}});  // ~547

  // The flat buffer as one range, and the same tensors as separate buffers (several ranges).
  DeviceTensor flat(g);
  std::vector<std::unique_ptr<DeviceTensor>> parts;
  std::vector<vk::View> part_views;
  size_t at = 0;
  for (size_t n : kTensorSizes) {
    parts.push_back(std::make_unique<DeviceTensor>(std::vector<float>(g.begin() + at, g.begin() + at + n)));
    part_views.push_back(parts.back()->view());
    at += n;
  }

  for (float max_norm : {0.0f, -1.0f, 1.0f, 1000.0f}) {
    for (bool split : {false, true}) {
      DYNAMIC_SECTION("max_norm=" << max_norm << " split=" << split) {
        auto r = run_grad_norm(split ? part_views : std::vector<vk::View>{flat.view()}, max_norm);
        // fp32: 16 serial terms per lane, a tree of 256, then ~25 partials: relative error ~1e-6 (bound 3e-6).
        require_close({r[ops::kGradNormIndex]}, {ref_norm}, 0, 5e-6, "grad_norm norm");
        // The coefficient inherits the norm's relative error; it is exactly 1 when not clipping.
        require_close({r[ops::kClipCoefIndex]}, {ops::ref::clip_coefficient(ref_norm, max_norm)}, 0, 5e-6,
                      "grad_norm clip coefficient");
      }
    }
  }
}

TEST_CASE("grad_norm through storage buffers matches the texel reads", "[grad_norm][gpu]") {
  // Aligned ranges of 4 floats or more take the texel kernel (whole vec4s, the last n % 4 floats
  // apart); VKVIT_TEXEL=0 sends them through the storage-buffer kernel, which must give the same
  // norm over the same uneven ranges (starting at the alignment the device requires of a binding:
  // 16 bytes on lavapipe, 256 on SwiftShader).
  auto g = random_floats(100003, 54, -3, 3);
  DeviceTensor d(g);
  const uint64_t align = std::max<uint64_t>(ctx().info().min_storage_offset_alignment / 4, 1);
  for (uint64_t skip : {uint64_t(0), align, 2 * align}) {
    const auto gd = to_double(std::vector<float>(g.begin() + std::ptrdiff_t(skip), g.end()));
    const double ref = ops::ref::grad_norm({{gd.data(), gd.size()}});
    const vk::View range = d.view().slice(skip, g.size() - skip);
    const auto texel = run_grad_norm({range}, 0.0f);
    ScopedTuning storage([](vk::Tuning& k) { k.texel = false; });
    const auto plain = run_grad_norm({range}, 0.0f);
    require_close({texel[ops::kGradNormIndex]}, {ref}, 0, 5e-6, "grad_norm texel from float " + std::to_string(skip));
    require_close({plain[ops::kGradNormIndex]}, {ref}, 0, 5e-6, "grad_norm storage from float " + std::to_string(skip));
  }
}

TEST_CASE("grad_norm writes non-finite norms through and a NaN coefficient", "[grad_norm][gpu]") {
  auto g = random_floats(4099, 52);
  SECTION("Inf") {
    g[4000] = INFINITY;
    DeviceTensor d(g);
    auto r = run_grad_norm({d.view()}, 1.0f);
    CHECK(std::isinf(r[ops::kGradNormIndex]));
    CHECK(std::isnan(r[ops::kClipCoefIndex]));
  }
  SECTION("Inf in the floats after the last whole vec4") {
    g[4098] = -INFINITY;
    DeviceTensor d(g);
    auto r = run_grad_norm({d.view()}, 1.0f);
    CHECK(std::isinf(r[ops::kGradNormIndex]));
    CHECK(std::isnan(r[ops::kClipCoefIndex]));
  }
  SECTION("NaN, clipping off") {
    g[7] = NAN;
    DeviceTensor d(g);
    auto r = run_grad_norm({d.view()}, 0.0f);
    CHECK(std::isnan(r[ops::kGradNormIndex]));
    CHECK(std::isnan(r[ops::kClipCoefIndex]));
  }
  CHECK(ctx().validation_errors() == 0);
}

TEST_CASE("grad_norm is reproducible bit for bit", "[grad_norm][gpu]") {
  DeviceTensor d(random_floats(100003, 53));
  auto a = run_grad_norm({d.view()}, 1.0f), b = run_grad_norm({d.view()}, 1.0f);
  CHECK(std::memcmp(a.data(), b.data(), ops::kGradNormFloats * 4) == 0);
}

TEST_CASE("grad_norm splits a range larger than maxStorageBufferRange", "[grad_norm][gpu]") {
  // Just over one binding's worth of floats, so the range is split into two chunks.
  const size_t n = ctx().info().max_storage_buffer_range / 4 + 1037;
  if (skip_unless_allocatable(n * 4, "splitting the gradients")) return;
  std::vector<float> g(n);
  for (size_t i = 0; i < n; ++i) g[i] = float((i * 2654435761u) % 2001) * 1e-3f - 1.0f;  // cheap, in [-1, 1]
  g[n - 1] = 300.0f;  // in the second chunk: a norm that misses it is far off
  // A plain buffer, one upload: DeviceTensor's zero fill would double the 128 MiB transfer.
  vk::Buffer d(ctx(), n * 4, vk::MemoryKind::device, "gradients");
  ctx().upload(d.view(), g.data(), n * 4);
  auto r = run_grad_norm({d.view()}, 1.0f);
  const auto gd = to_double(g);
  const double ref_norm = ops::ref::grad_norm({{gd.data(), n}});
  // 33M terms: ~8200 partials summed ~32 per lane: relative error ~1e-6, bound 1e-5.
  require_close({r[ops::kGradNormIndex]}, {ref_norm}, 0, 1e-5, "grad_norm norm over two chunks");
}
