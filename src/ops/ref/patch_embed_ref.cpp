// Plain C++ reference for the patch embedding (patch projection + class token + position
// embedding), in double precision.
#include <vector>

#include "ops/linear.h"
#include "ops/patch_embed.h"

namespace vkvit::ops::ref {

void patch_embed_forward(double* tokens, const double* patches, const double* w, const double* bias,
                         const double* cls, const double* pos, const PatchEmbedShape& s) {
  const uint64_t T = s.Np + 1, D = s.D;
  std::vector<double> proj(uint64_t(s.Np) * D);
  for (uint64_t b = 0; b < s.B; ++b) {
    linear_forward(proj.data(), patches + b * s.Np * s.CPP, w, bias, s.Np, D, s.CPP);
    double* out = tokens + b * T * D;
    for (uint64_t d = 0; d < D; ++d) out[d] = cls[d] + pos[d];
    for (uint64_t i = 0; i < s.Np; ++i)
      for (uint64_t d = 0; d < D; ++d) out[(1 + i) * D + d] = proj[i * D + d] + pos[(1 + i) * D + d];
  }
}

void patch_embed_backward(double* dw, double* dbias, double* dcls, double* dpos, const double* dtokens,
                          const double* patches, const PatchEmbedShape& s) {
  const uint64_t T = s.Np + 1, D = s.D;
  for (uint64_t b = 0; b < s.B; ++b) {
    const double* g = dtokens + b * T * D;
    for (uint64_t d = 0; d < D; ++d) dcls[d] += g[d];
    for (uint64_t i = 0; i < T * D; ++i) dpos[i] += g[i];
    linear_backward(nullptr, dw, dbias, g + D, patches + b * s.Np * s.CPP, nullptr, s.Np, D, s.CPP);
  }
}

}  // namespace vkvit::ops::ref
