// Exact (erf) GELU and its derivative, as PyTorch's nn.GELU(approximate='none'), shared by
// shaders/gelu.comp, gelu_backward.comp and the lavapipe matmul's fused epilogues:
//   gelu(x)  = 0.5 x (1 + erf(x / sqrt2))
//   gelu'(x) = 0.5 (1 + erf(x / sqrt2)) + x exp(-x^2 / 2) / sqrt(2 pi)
// erf_approx: see erf.glsl.
#include "erf.glsl"

float gelu(float x) { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752)); }

float gelu_grad(float x) {
  const float cdf = 0.5 * (1.0 + erf_approx(x * 0.70710678118654752));
  const float pdf = exp(-0.5 * x * x) * 0.39894228040143268;  // 1/sqrt(2 pi)
  return cdf + x * pdf;
}
