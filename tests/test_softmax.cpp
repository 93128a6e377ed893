// softmax: the reference backward vs finite differences, and GPU vs reference on odd row lengths
// (1, 13, 17, 50, 197, 1024, 1500: none a multiple of a workgroup), out of place and in place, on
// both the one-row-per-invocation path for short rows and the workgroup-per-row path.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "harness.h"
#include "ops/softmax.h"

using namespace vkvit;
using namespace vkvit::test;

TEST_CASE("softmax reference backward matches finite differences", "[softmax][ref]") {
  const uint64_t rows = 3;
  const uint32_t cols = 7;
  const size_t n = rows * cols;
  auto x = to_double(random_floats(n, 101, -3, 3));
  auto w = to_double(random_floats(n, 102));  // L = sum(softmax(x) * w)
  auto loss = [&](const std::vector<double>& xs) {
    std::vector<double> y(n);
    ops::ref::softmax_forward(y.data(), xs.data(), rows, cols);
    return dot(y, w);
  };
  std::vector<double> p(n);
  ops::ref::softmax_forward(p.data(), x.data(), rows, cols);
  auto numeric = numeric_gradient(loss, x);

  // Accumulating into a non-zero gradient adds exactly the vjp.
  auto dx0 = to_double(random_floats(n, 103));
  auto dx = dx0;
  ops::ref::softmax_backward(dx.data(), p.data(), w.data(), rows, cols);
  for (size_t i = 0; i < n; ++i) dx[i] -= dx0[i];
  // Central differences in double: truncation ~eps^2 = 1e-12, rounding ~1e-16/eps = 1e-10.
  require_gradient_close(dx, numeric, 1e-8, 1e-6, "softmax dx (accumulate)");

  // Overwrite in place over dout, as attention uses it.
  auto inplace = w;
  ops::ref::softmax_backward(inplace.data(), p.data(), inplace.data(), rows, cols, /*accumulate=*/false);
  require_gradient_close(inplace, numeric, 1e-8, 1e-6, "softmax dx (in place)");
}

namespace {

// Forward (out of place and in place) and backward (accumulate and in place) vs the reference.
void check_softmax(uint64_t rows, uint32_t cols) {
  const size_t n = rows * cols;
  auto x = random_floats(n, 200 + cols, -8, 8);
  // Offsets of 200 per row (up to 1200 at 7 rows): exp(x) would overflow float without the max
  // subtraction.
  for (uint64_t r = 0; r < rows; ++r)
    for (uint32_t c = 0; c < cols; ++c) x[r * cols + c] += 200.0f * float(r) - 300.0f;
  auto g = random_floats(n, 300 + cols);
  auto din0 = random_floats(n, 400 + cols);

  DeviceTensor in(x), out(n), inplace(x), dout(g), din(din0), dinplace(g);
  vk::Recorder rec(ctx());
  ops::softmax_forward(rec, out.view(), in.view(), rows, cols);
  ops::softmax_forward(rec, inplace.view(), inplace.view(), rows, cols);
  ops::softmax_backward(rec, din.view(), out.view(), dout.view(), rows, cols);
  ops::softmax_backward(rec, dinplace.view(), out.view(), dinplace.view(), rows, cols, /*accumulate=*/false);
  rec.submit_and_wait();

  // The reference backward takes the GPU's probabilities, so it checks the backward alone.
  auto xd = to_double(x), gd = to_double(g);
  std::vector<double> ref_p(n);
  ops::ref::softmax_forward(ref_p.data(), xd.data(), rows, cols);
  const auto gpu_p = out.read();
  auto pd = to_double(gpu_p);
  auto ref_din = to_double(din0), ref_over = gd;
  ops::ref::softmax_backward(ref_din.data(), pd.data(), gd.data(), rows, cols);
  ops::ref::softmax_backward(ref_over.data(), pd.data(), ref_over.data(), rows, cols, false);

  // fp32 exp of arguments down to -16 is within a few ulp relative (Vulkan allows 3 + 2|x|
  // ulp, ~4e-6 at |x| = 16), and the row sum adds ~cols * 6e-8 relative: rtol 2e-5 holds with
  // margin for cols <= 1500; atol covers probabilities far below 1e-7. Measured on lavapipe:
  // forward <= 1.1e-6 rel, backward <= 6e-8 abs.
  require_close(gpu_p, ref_p, 1e-9, 2e-5, "softmax forward");
  require_close(inplace.read(), ref_p, 1e-9, 2e-5, "softmax forward in place");
  // p * (g - p.g) with |g| <= 1: the dot product over cols rounds at ~cols * 6e-8 * max|p g|.
  require_close(din.read(), ref_din, 1e-6, 1e-5, "softmax backward (accumulate)");
  require_close(dinplace.read(), ref_over, 1e-6, 1e-5, "softmax backward (in place)");
}

// Sets VKVIT_SOFTMAX_SHORT_ROW (the row length up to which the launcher runs one row per
// invocation) for one scope, restoring the previous value.
class ShortRowLimit {
 public:
  explicit ShortRowLimit(const char* value) {
    if (const char* old = std::getenv("VKVIT_SOFTMAX_SHORT_ROW")) old_ = old, had_ = true;
    setenv("VKVIT_SOFTMAX_SHORT_ROW", value, 1);
  }
  ~ShortRowLimit() {
    if (had_)
      setenv("VKVIT_SOFTMAX_SHORT_ROW", old_.c_str(), 1);
    else
      unsetenv("VKVIT_SOFTMAX_SHORT_ROW");
  }

 private:
  std::string old_;
  bool had_ = false;
};

}  // namespace

TEST_CASE("softmax forward and backward on the GPU match the reference on odd rows", "[softmax][gpu]") {
  // The launcher's own choice: rows up to 32 one per invocation, longer ones a workgroup each.
  for (uint32_t cols : {1u, 13u, 17u, 32u, 33u, 50u, 197u, 1024u, 1500u})
    DYNAMIC_SECTION("cols=" << cols) { check_softmax(7, cols); }
}

TEST_CASE("softmax short-row and workgroup-per-row paths agree with the reference", "[softmax][gpu]") {
  // Both shaders on the same short rows: 300 rows fill four 64-row workgroups of the short-row
  // path, the last one partly (the rows past the end must not be touched).
  for (const char* limit : {"0", "64"})
    for (uint32_t cols : {1u, 13u, 17u, 50u})
      DYNAMIC_SECTION("short-row limit " << limit << " cols=" << cols) {
        ShortRowLimit forced(limit);
        check_softmax(300, cols);
      }
}
