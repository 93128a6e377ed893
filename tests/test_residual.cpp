// Residual add and gradient accumulation: GPU vs reference, and the pass-through backward
// (accumulate into both branches) vs finite differences.
#include <catch2/catch.hpp>

#include "harness.h"
#include "ops/residual.h"

using namespace vkvit;
using namespace vkvit::test;

TEST_CASE("residual reference backward (accumulate into both branches) matches finite differences",
          "[residual][ref]") {
  const size_t n = 23;
  auto a = to_double(random_floats(n, 1)), b = to_double(random_floats(n, 2));
  auto w = to_double(random_floats(n, 3));  // L = sum((a + b) * w), so dout = w
  auto loss = [&](const std::vector<double>& as, const std::vector<double>& bs) {
    std::vector<double> out(n);
    ops::ref::residual_forward(out.data(), as.data(), bs.data(), n);
    return dot(out, w);
  };
  std::vector<double> da(n, 0.0), db(n, 0.0);
  ops::ref::accumulate(da.data(), w.data(), n);
  ops::ref::accumulate(db.data(), w.data(), n);
  // L is linear: central differences are exact up to rounding ~1e-16 / 1e-6.
  require_gradient_close(da, numeric_gradient([&](const std::vector<double>& v) { return loss(v, b); }, a), 1e-8,
                         1e-8, "residual da");
  require_gradient_close(db, numeric_gradient([&](const std::vector<double>& v) { return loss(a, v); }, b), 1e-8,
                         1e-8, "residual db");
}

TEST_CASE("residual add and accumulate on the GPU match the reference", "[residual][gpu]") {
  const size_t n = 4099;  // not a multiple of the workgroup
  auto a = random_floats(n, 4), b = random_floats(n, 5), dst0 = random_floats(n, 6);
  DeviceTensor ta(a), tb(b), out(n), dst(dst0), inplace(a);
  vk::Recorder rec(ctx());
  ops::residual_forward(rec, out.view(), ta.view(), tb.view(), n);
  ops::accumulate(rec, dst.view(), tb.view(), n);
  ops::residual_forward(rec, inplace.view(), inplace.view(), tb.view(), n);  // x = x + f(x)
  rec.submit_and_wait();

  auto ad = to_double(a), bd = to_double(b);
  std::vector<double> ref_out(n), ref_dst = to_double(dst0);
  ops::ref::residual_forward(ref_out.data(), ad.data(), bd.data(), n);
  ops::ref::accumulate(ref_dst.data(), bd.data(), n);
  // One fp32 addition: half an ulp of a value below 2 is 1.2e-7.
  require_close(out.read(), ref_out, 2e-7, 1e-7, "residual forward");
  require_close(inplace.read(), ref_out, 2e-7, 1e-7, "residual forward in place");
  require_close(dst.read(), ref_dst, 2e-7, 1e-7, "accumulate");
}
