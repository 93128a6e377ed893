// LayerNorm backward (accumulates). With xhat = (x - mean) * rstd and g = dout * gamma:
//   din    += rstd * (g - mean_D(g) - xhat * mean_D(g * xhat))        (per row)
//   dgamma += sum_rows dout * xhat,   dbeta += sum_rows dout           (per column)
// (derivation: PyTorch's native_layer_norm_backward; llm.c layernorm_backward).
// Two kernels share these bindings and loads (src/ops/layernorm.cpp runs both per chunk):
// layernorm_backward_rows.glsl computes din and, where the row fits the registers, partial column sums;
// common/layernorm_backward_params.glsl computes dgamma and dbeta, from those partial sums or from
// dout and the input.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"
#include "wide.glsl"

// VEC columns per access: 4 reads vec4 (needs D % 4 == 0, fewer gathers on lavapipe), or 1;
// scalar loads come back as vec4(x, 0, 0, 0), and a zero dout component contributes nothing to
// any sum.
layout(constant_id = 1) const uint VEC = 1;
// VEC = 4 accesses of din, the input, dout and the partial rows as two 64-bit components
// (wide.glsl); set where shaderInt64 is on and those views are 16-byte aligned.
#ifdef WIDE_MODULE
layout(constant_id = 4) const bool WIDE = false;
#else
const bool WIDE = false;  // the plain module has no 64-bit pairs (wide.glsl)
#endif

layout(set = 0, binding = 0) buffer DIn { float din[]; };               // (M, D)
layout(set = 0, binding = 1) buffer DGamma { float dgamma[]; };         // (D)
layout(set = 0, binding = 2) buffer DBeta { float dbeta[]; };           // (D)
layout(set = 0, binding = 3) readonly buffer Mean { float mean_[]; };   // (M)
layout(set = 0, binding = 4) readonly buffer Rstd { float rstd_[]; };   // (M)
layout(set = 0, binding = 5) readonly buffer In { float in_[]; };       // (M, D)
layout(set = 0, binding = 6) readonly buffer DOut { float dout[]; };    // (M, D)
layout(set = 0, binding = 7) readonly buffer Gamma { float gamma[]; };  // (D)
layout(set = 0, binding = 0) buffer DIn4 { vec4 din4[]; };              // (M, D / 4), the same memory
layout(set = 0, binding = 7) readonly buffer Gamma4 { vec4 gamma4[]; }; // (D / 4)
layout(set = 0, binding = 5) readonly buffer In4 { vec4 in4[]; };       // (M, D / 4), the same memory
layout(set = 0, binding = 6) readonly buffer DOut4 { vec4 dout4[]; };   // (M, D / 4), the same memory
// The partial rows (rows / ROWS, 2, D): per column, the sums of dout * xhat (dgamma's) then of
// dout (dbeta's) over one subgroup's ROWS rows.
layout(set = 0, binding = 8) buffer Partials { float part[]; };
layout(set = 0, binding = 8) buffer Partials4 { vec4 part4[]; };       // the same memory
layout(set = 0, binding = 0) buffer DIn8 { wide4 din8[]; };              // the same memory, 64-bit pairs
layout(set = 0, binding = 5) readonly buffer In8 { wide4 in8[]; };
layout(set = 0, binding = 6) readonly buffer DOut8 { wide4 dout8[]; };
layout(set = 0, binding = 8) buffer Partials8 { wide4 part8[]; };
layout(push_constant) uniform Push { uint M; uint D; } p;

vec4 load_in(uint r, uint c) {
  const uint i = r * (p.D / 4u) + c;
  if (VEC == 4u) return WIDE ? unpack4(in8[i]) : in4[i];
  return vec4(in_[r * p.D + c], 0.0, 0.0, 0.0);
}
vec4 load_dout(uint r, uint c) {
  const uint i = r * (p.D / 4u) + c;
  if (VEC == 4u) return WIDE ? unpack4(dout8[i]) : dout4[i];
  return vec4(dout[r * p.D + c], 0.0, 0.0, 0.0);
}
