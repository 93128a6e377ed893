// erf for fp32 (GLSL has none). For |x| >= 0.5: Abramowitz & Stegun 7.1.26, absolute error
// < 1.5e-7 where |erf| > 0.52. For |x| < 0.5 that bound is too coarse relative to erf itself, so
// the Maclaurin series to x^11 is used there (truncation error < 2e-8).
float erf_approx(float x) {
  float ax = abs(x);
  if (ax < 0.5) {
    float x2 = x * x;
    // 2/sqrt(pi) * (x - x^3/3 + x^5/10 - x^7/42 + x^9/216 - x^11/1320)
    return 1.1283791670955126 * x *
           (1.0 + x2 * (-0.3333333333333333 +
                        x2 * (0.1 + x2 * (-0.023809523809523808 + x2 * (0.004629629629629629 - x2 * 0.0007575757575757576)))));
  }
  float t = 1.0 / (1.0 + 0.3275911 * ax);
  float poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
  return sign(x) * (1.0 - poly * exp(-ax * ax));
}
