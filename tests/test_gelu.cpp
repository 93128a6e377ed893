// GELU: GPU vs the double-precision reference, and the reference backward vs finite differences.
#include <catch2/catch.hpp>

#include "harness.h"
#include "ops/gelu.h"

using namespace vkvit;
using namespace vkvit::test;

TEST_CASE("gelu reference backward matches finite differences", "[gelu][ref]") {
  const size_t n = 37;
  auto x = to_double(random_floats(n, 1, -4, 4));
  auto w = to_double(random_floats(n, 2));  // L = sum(gelu(x) * w)
  std::vector<double> dx(n, 0.0);
  ops::ref::gelu_backward(dx.data(), x.data(), w.data(), n);
  auto loss = [&](const std::vector<double>& xs) {
    std::vector<double> y(n);
    ops::ref::gelu_forward(y.data(), xs.data(), n);
    return dot(y, w);
  };
  // Central differences in double: truncation ~eps^2, rounding ~1e-16/eps.
  require_gradient_close(dx, numeric_gradient(loss, x), 1e-8, 1e-6, "gelu dx");
}

TEST_CASE("gelu forward and backward on the GPU match the reference", "[gelu][gpu]") {
  // Odd size (not a multiple of the workgroup) and inputs spanning the erf branches.
  const size_t n = 4099;
  auto x = random_floats(n, 3, -6, 6);
  auto dout = random_floats(n, 4);
  auto din0 = random_floats(n, 5);  // backward accumulates into din

  DeviceTensor in(x), out(n), d_out(dout), d_in(din0);
  vk::Recorder rec(ctx());
  ops::gelu_forward(rec, out.view(), in.view(), n);
  ops::gelu_backward(rec, d_in.view(), in.view(), d_out.view(), n);
  rec.submit_and_wait();

  std::vector<double> ref_out(n), ref_din = to_double(din0);
  auto xd = to_double(x), doutd = to_double(dout);
  ops::ref::gelu_forward(ref_out.data(), xd.data(), n);
  ops::ref::gelu_backward(ref_din.data(), xd.data(), doutd.data(), n);
  // fp32 erf approximation: abs error < 2e-7 in erf, so ~1e-6 in the outputs for |x| <= 6.
  require_close(out.read(), ref_out, 2e-6, 1e-5, "gelu forward");
  require_close(d_in.read(), ref_din, 2e-6, 1e-5, "gelu backward");
}
