// Plain C++ reference for the global gradient norm and the clip coefficient, in double precision
// (torch.nn.utils.clip_grad_norm_ semantics; see ops/grad_norm.h).
#include <algorithm>
#include <cmath>

#include "ops/grad_norm.h"

namespace vkvit::ops::ref {

double grad_norm(const std::vector<Range>& grads) {
  // norm = scale * sqrt(ssq): scale is the largest |g| seen so far, ssq the sum of (g / scale)^2.
  // Any NaN makes the sum of squares NaN, else any Inf makes it Inf (as in the fp32 sum).
  double scale = 0, ssq = 1;
  bool nan = false, inf = false;
  for (const Range& r : grads)
    for (uint64_t i = 0; i < r.n; ++i) {
      const double a = std::abs(r.data[i]);
      nan = nan || std::isnan(a);
      inf = inf || std::isinf(a);
      if (a == 0 || !std::isfinite(a)) continue;
      if (a > scale) {
        ssq = 1 + ssq * (scale / a) * (scale / a);
        scale = a;
      } else {
        ssq += (a / scale) * (a / scale);
      }
    }
  if (nan) return NAN;
  if (inf) return INFINITY;
  return scale * std::sqrt(ssq);
}

double clip_coefficient(double norm, double max_norm) {
  if (!std::isfinite(norm)) return NAN;
  if (max_norm <= 0) return 1.0;
  return std::min(1.0, max_norm / (norm + 1e-6));
}

}  // namespace vkvit::ops::ref
