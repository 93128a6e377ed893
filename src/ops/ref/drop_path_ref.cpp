// Plain C++ reference for the drop path add and the branch-gradient scaling, in double precision.
#include "ops/drop_path.h"

namespace vkvit::ops::ref {

void drop_path_add(double* out, const double* residual, const double* branch, const double* scales,
                   const DropPathShape& s) {
  for (uint64_t i = 0; i < s.elements(); ++i)
    out[i] = residual[i] + scales[s.first_scale + i / s.per_sample] * branch[i];
}

void drop_path_scale(double* out, const double* in, const double* scales, const DropPathShape& s) {
  for (uint64_t i = 0; i < s.elements(); ++i) out[i] = scales[s.first_scale + i / s.per_sample] * in[i];
}

}  // namespace vkvit::ops::ref
