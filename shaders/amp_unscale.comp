#version 450
// Mixed-precision training: turns grad_norm's result over loss-scaled gradients (computed with no
// clipping) into the result for the true gradients, so the optimizer and the trainer see what
// PyTorch's GradScaler.unscale_ followed by clip_grad_norm_ gives (src/train/loss_scaler.h):
//   result[0] = norm / scale                      the true L2 norm (NaN/Inf written through)
//   result[1] = coef / scale, coef = min(1, max_norm / (norm / scale + 1e-6)) or 1 without clipping;
//               NaN when the norm is not finite (AdamW then skips the step: an fp16 overflow).
// AdamW multiplies every gradient by result[1], which both unscales and clips in one product.
// One invocation; scale is a power of two, so dividing by it is exact.
layout(local_size_x = 1) in;
layout(set = 0, binding = 0) buffer Result { float result[]; };  // (2) grad_norm's result, rewritten in place
layout(push_constant) uniform Push {
  float inv_scale;
  float max_norm;  // <= 0: no clipping
} p;

void main() {
  const float norm = result[0] * p.inv_scale;
  float coef = 1.0;
  if (isnan(norm) || isinf(norm)) {
    coef = uintBitsToFloat(0x7fc00000u);  // NaN
  } else if (p.max_norm > 0.0) {
    coef = min(1.0, p.max_norm / (norm + 1e-6));
  }
  result[0] = norm;
  result[1] = coef * p.inv_scale;
}
