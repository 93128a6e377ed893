#include "ops/matmul.h"

#include "ops/launch.h"
#include "vk/error.h"

namespace vkvit::ops {

namespace {
struct MatmulPush {
  uint32_t M, N, K;
  uint32_t lda, ldb, ldc;
  uint32_t batch_inner;
  uint32_t a_outer, a_inner, b_outer, b_inner, c_outer, c_inner;
  float alpha, beta;
  uint32_t flags;
};
static_assert(sizeof(MatmulPush) == 64);
}  // namespace

void matmul(vk::Recorder& rec, const vk::View& c, const vk::View& a, const vk::View& b, const MatmulShape& s,
            const vk::View& bias) {
  if (s.M == 0 || s.N == 0 || s.batch == 0) return;
  if (s.batch_inner == 0 || s.batch % s.batch_inner != 0)
    throw Error("internal: matmul batch " + std::to_string(s.batch) + " is not a multiple of batch_inner " +
                std::to_string(s.batch_inner));
  MatmulPush p{};
  p.M = s.M;
  p.N = s.N;
  p.K = s.K;
  p.lda = s.a.ld ? s.a.ld : (s.trans_a ? s.M : s.K);
  p.ldb = s.b.ld ? s.b.ld : (s.trans_b ? s.K : s.N);
  p.ldc = s.c.ld ? s.c.ld : s.N;
  p.batch_inner = s.batch_inner;
  p.a_outer = static_cast<uint32_t>(s.a.stride_outer);
  p.a_inner = static_cast<uint32_t>(s.a.stride_inner);
  p.b_outer = static_cast<uint32_t>(s.b.stride_outer);
  p.b_inner = static_cast<uint32_t>(s.b.stride_inner);
  p.c_outer = static_cast<uint32_t>(s.c.stride_outer);
  p.c_inner = static_cast<uint32_t>(s.c.stride_inner);
  p.alpha = s.alpha;
  p.beta = s.beta;
  const bool has_bias = bias.buffer != VK_NULL_HANDLE;
  p.flags = (s.trans_a ? 1u : 0u) | (s.trans_b ? 2u : 0u) | (has_bias ? 4u : 0u);
  const vk::Kernel& k = rec.context().pipelines().get("matmul", 4, sizeof(MatmulPush));
  rec.dispatch(k, {c, a, b, has_bias ? bias : a}, p, vk::Groups{div_up(s.N, 16), div_up(s.M, 16), s.batch},
               "matmul");
}

}  // namespace vkvit::ops
