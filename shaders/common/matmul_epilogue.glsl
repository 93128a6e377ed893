// Epilogues fused into a matmul's stores (matmul_regblock, matmul_tiled, matmul_f16_tiled). Each result
// r = alpha * acc + beta * C + bias meets the operand X in binding 4 (same layout as C, from
// aux_base): 0 none; 1 GELU: X = r (fc1's pre-activation, kept for the backward), C = gelu(r);
// 2 residual: C = r + X; 3 GELU backward: C = r * gelu'(X) (X = the pre-activation); 4 row sums:
// X[m] += sum over k of op(A)[m, k] (aux_base is row 0's element; the bias gradient with
// dW = dy^T x; the kernel itself sums, and only its first column block adds), C stored as usual;
// 5 GELU only: C = gelu(r), X unused (inference: no backward needs the pre-activation, and on
// llvmpipe every store is a loop over the lanes). Each fusion saves a pass over the activations.
// Include after matmul_common.glsl or matmul_f16_common.glsl (fp32 C: result_at); spec constant 8
// is the kind (MatmulEpilogue in src/ops/matmul.h), so a kernel's own constants stop at 7.
layout(constant_id = 8) const uint EPILOGUE = 0;
#define EPILOGUE_GELU 1u
#define EPILOGUE_ADD 2u
#define EPILOGUE_GELU_GRAD 3u
#define EPILOGUE_ROW_SUMS 4u
#define EPILOGUE_GELU_ONLY 5u
#include "gelu.glsl"
layout(set = 0, binding = 4) buffer Aux { float aux[]; };

// C[ci] (and X) from one result.
void store_result(uint ci, uint n, float acc) {
  float r = result_at(ci, n, acc);
  const uint xi = ci - p.c_base + p.aux_base;
  if (EPILOGUE == EPILOGUE_GELU || EPILOGUE == EPILOGUE_GELU_ONLY) {
    if (EPILOGUE == EPILOGUE_GELU) aux[xi] = r;
    r = gelu(r);
  } else if (EPILOGUE == EPILOGUE_ADD) {
    r += aux[xi];
  } else if (EPILOGUE == EPILOGUE_GELU_GRAD) {
    r *= gelu_grad(aux[xi]);
  }
  c[ci] = r;
}
