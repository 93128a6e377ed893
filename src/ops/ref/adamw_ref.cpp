// Plain C++ reference for one AdamW step, in double precision (torch.optim.AdamW semantics; see
// ops/adamw.h), written in the order of PyTorch's single-tensor implementation.
#include <cmath>

#include "ops/adamw.h"

namespace vkvit::ops::ref {

void adamw_step(double* params, double* m, double* v, const double* grads, double clip_coef, const uint8_t* decay,
                uint64_t n, const AdamWHyper& h, uint64_t t) {
  adamw_step(params, m, v, grads, clip_coef, decay, nullptr, n, h, t);
}

// timm's param groups with an lr_scale: the group's lr is lr * scale, for the step and the decay.
void adamw_step(double* params, double* m, double* v, const double* grads, double clip_coef, const uint8_t* decay,
                const double* lr_scale, uint64_t n, const AdamWHyper& h, uint64_t t) {
  if (!std::isfinite(clip_coef)) return;  // skipped step
  const double bias_correction1 = 1 - std::pow(h.beta1, double(t));
  const double bias_correction2 = 1 - std::pow(h.beta2, double(t));
  for (uint64_t i = 0; i < n; ++i) {
    const double lr = lr_scale ? h.lr * lr_scale[i] : h.lr;
    if (lr_scale && lr_scale[i] == 0) continue;  // frozen: no optimizer state either
    const double step_size = lr / bias_correction1;
    const double g = grads[i] * clip_coef;
    if (decay[i]) params[i] *= 1 - lr * h.weight_decay;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * g;
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * g * g;
    params[i] -= step_size * m[i] / (std::sqrt(v[i]) / std::sqrt(bias_correction2) + h.eps);
  }
}

}  // namespace vkvit::ops::ref
