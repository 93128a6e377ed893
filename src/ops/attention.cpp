// Launchers for multi-head attention. Unfused: ops::matmul for the four products, ops::softmax for
// the probabilities and their backward. Fused: the attention_fused_{fwd,dq,dkv}_d<d> variants of
// shaders/common/attention_fused_{fwd,dq,dkv}.glsl (shaders/variants.cmake).
// See ops/attention.h for the math and the layout.
#include "ops/attention.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "base/error.h"
#include "ops/launch.h"
#include "ops/matmul.h"
#include "ops/softmax.h"

namespace vkvit::ops {

namespace {

struct Sizes {
  uint32_t B, N, D, H, d;
  float scale;
};

Sizes check_sizes(const char* op, uint32_t B, uint32_t N, uint32_t D, uint32_t H) {
  const std::string shape = "B=" + std::to_string(B) + " N=" + std::to_string(N) + " D=" + std::to_string(D) +
                            " H=" + std::to_string(H);
  if (H == 0 || D % H != 0)
    throw Error(std::string(op) + ": width D must be a multiple of the head count H (" + shape + ")");
  const uint32_t d = D / H;
  return Sizes{B, N, D, H, d, static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)))};
}

void check_view(const char* op, const char* name, const vk::View& v, uint64_t floats) {
  if (v.size < floats * sizeof(float))
    throw Error(std::string("internal: ") + op + ": " + name + " holds " + std::to_string(v.size) + " bytes, needs " +
                std::to_string(floats * sizeof(float)));
}

// Calls fn(first_image, image_count) over chunks of images whose qkv, probs and out slices each
// fit one binding (see attention_images_per_chunk).
template <class Fn>
void for_each_image_chunk(const vk::Context& ctx, const char* op, const Sizes& s, Fn&& fn) {
  const uint64_t per_chunk = attention_images_per_chunk(ctx, s.N, s.D, s.H);
  if (per_chunk == 0)
    throw Error(std::string(op) + ": one image's attention (N=" + std::to_string(s.N) + ", D=" + std::to_string(s.D) +
                ", H=" + std::to_string(s.H) + ") does not fit one storage binding (" +
                vk::format_bytes(ctx.info().max_storage_buffer_range) + ") on " + ctx.info().name);
  for (uint64_t first = 0; first < s.B; first += per_chunk) fn(first, std::min<uint64_t>(per_chunk, s.B - first));
}

}  // namespace

uint64_t attention_images_per_chunk(const vk::Context& ctx, uint32_t N, uint32_t D, uint32_t H) {
  // No alignment step (items_per_chunk's): one image's N*N probabilities are odd for odd N, so
  // aligned chunk starts would need several images per chunk, which may not fit when one does.
  // Instead every binding may carry up to one alignment of lead in front of the slice.
  const uint64_t range = ctx.info().max_storage_buffer_range, align = ctx.info().min_storage_offset_alignment;
  if (range <= align) return 0;
  uint64_t most = UINT64_MAX;
  for (uint64_t f : {uint64_t(N) * 3 * D, uint64_t(H) * N * N, uint64_t(N) * D})
    if (f) most = std::min(most, (range - align) / 4 / f);
  return most;
}

AttentionProducts attention_products(uint32_t images, uint32_t N, uint32_t D, uint32_t H) {
  const Sizes s = check_sizes("attention", images, N, D, H);
  const MatmulOperand qkv{3 * D, uint64_t(N) * 3 * D, s.d};                // one of q, k, v: rows 3D apart
  const MatmulOperand heads{0, uint64_t(H) * N * N, uint64_t(N) * N};       // (B, H, N, N), dense
  const MatmulOperand out{D, uint64_t(N) * D, s.d};                         // (B, N, D): rows D apart
  auto product = [&](uint32_t M, uint32_t Nc, uint32_t K, bool ta, bool tb, MatmulOperand a, MatmulOperand b,
                     MatmulOperand c, float alpha, float beta) {
    MatmulShape m;
    m.M = M, m.N = Nc, m.K = K;
    m.trans_a = ta, m.trans_b = tb;
    m.batch = images * H;
    m.batch_inner = H;
    m.a = a, m.b = b, m.c = c;
    m.alpha = alpha, m.beta = beta;
    return m;
  };
  AttentionProducts p;
  p.scores = product(N, N, s.d, false, true, qkv, qkv, heads, s.scale, 0.0f);
  p.pv = product(N, s.d, N, false, false, heads, qkv, out, 1.0f, 0.0f);
  p.dv = product(N, s.d, N, true, false, heads, out, qkv, 1.0f, 1.0f);
  p.dp = product(N, N, s.d, false, true, out, qkv, heads, 1.0f, 0.0f);
  p.dq = product(N, s.d, N, false, false, heads, qkv, qkv, s.scale, 1.0f);
  p.dk = product(N, s.d, N, true, false, heads, qkv, qkv, s.scale, 1.0f);
  return p;
}

void attention_forward(vk::Recorder& rec, const vk::View& out, const vk::View& probs, const vk::View& qkv,
                       uint32_t B, uint32_t N, uint32_t D, uint32_t H) {
  if (B == 0 || N == 0 || D == 0) return;
  vk::Context& ctx = rec.context();
  const Sizes s = check_sizes("attention_forward", B, N, D, H);
  check_view("attention_forward", "out", out, uint64_t(B) * N * D);
  check_view("attention_forward", "probs", probs, uint64_t(B) * H * N * N);
  check_view("attention_forward", "qkv", qkv, uint64_t(B) * N * 3 * D);

  for_each_image_chunk(ctx, "attention_forward", s, [&](uint64_t first, uint64_t images) {
    const uint64_t row = uint64_t(N) * 3 * D, heads = uint64_t(H) * N * N, tokens = uint64_t(N) * D;
    const vk::View qkv_c = qkv.slice(first * row, images * row);  // (images, N, 3D)
    const vk::View q = qkv_c, k = qkv_c.slice(D, images * row - D), v = qkv_c.slice(2 * D, images * row - 2 * D);
    const vk::View probs_c = probs.slice(first * heads, images * heads);  // (images, H, N, N)
    const vk::View out_c = out.slice(first * tokens, images * tokens);    // (images, N, D)
    const AttentionProducts p = attention_products(static_cast<uint32_t>(images), N, D, H);
    matmul(rec, probs_c, q, k, p.scores);  // S, written where P will live
    softmax_forward(rec, probs_c, probs_c, images * H * N, N);
    matmul(rec, out_c, probs_c, v, p.pv);  // each head into its columns of out
  });
}

void attention_backward(vk::Recorder& rec, const vk::View& dqkv, const vk::View& scratch, const vk::View& probs,
                        const vk::View& qkv, const vk::View& dout, uint32_t B, uint32_t N, uint32_t D, uint32_t H) {
  if (B == 0 || N == 0 || D == 0) return;
  vk::Context& ctx = rec.context();
  const Sizes s = check_sizes("attention_backward", B, N, D, H);
  check_view("attention_backward", "dqkv", dqkv, uint64_t(B) * N * 3 * D);
  check_view("attention_backward", "scratch", scratch, uint64_t(B) * H * N * N);
  check_view("attention_backward", "probs", probs, uint64_t(B) * H * N * N);
  check_view("attention_backward", "qkv", qkv, uint64_t(B) * N * 3 * D);
  check_view("attention_backward", "dout", dout, uint64_t(B) * N * D);

  for_each_image_chunk(ctx, "attention_backward", s, [&](uint64_t first, uint64_t images) {
    const uint64_t row = uint64_t(N) * 3 * D, heads = uint64_t(H) * N * N, tokens = uint64_t(N) * D;
    const uint64_t len = images * row;
    const vk::View qkv_c = qkv.slice(first * row, len);  // (images, N, 3D)
    const vk::View q = qkv_c, k = qkv_c.slice(D, len - D), v = qkv_c.slice(2 * D, len - 2 * D);
    const vk::View dqkv_c = dqkv.slice(first * row, len);  // (images, N, 3D)
    const vk::View dq = dqkv_c, dk = dqkv_c.slice(D, len - D), dv = dqkv_c.slice(2 * D, len - 2 * D);
    const vk::View probs_c = probs.slice(first * heads, images * heads);      // (images, H, N, N)
    const vk::View scratch_c = scratch.slice(first * heads, images * heads);  // (images, H, N, N)
    const vk::View dout_c = dout.slice(first * tokens, images * tokens);      // (images, N, D)
    const AttentionProducts p = attention_products(static_cast<uint32_t>(images), N, D, H);
    matmul(rec, dv, probs_c, dout_c, p.dv);
    matmul(rec, scratch_c, dout_c, v, p.dp);
    // dS = P * (dP - rowsum(dP * P)), in place over dP.
    softmax_backward(rec, scratch_c, probs_c, scratch_c, images * H * N, N, /*accumulate=*/false);
    matmul(rec, dq, scratch_c, k, p.dq);
    matmul(rec, dk, scratch_c, q, p.dk);
  });
}

namespace {

struct FusedPush {
  uint32_t heads;
  uint32_t N;
  uint32_t H;
  uint32_t D;
  float scale;
  uint32_t row_blocks;      // workgroups per head group (the outer rows split into blocks)
  uint32_t rows_per_block;  // a multiple of 8 (the kernels' row chunk)
};
static_assert(sizeof(FusedPush) == 28);

// Outer rows per workgroup: heads of up to 64 tokens run whole (several per workgroup), longer
// ones in blocks of 64 rows, so no workgroup runs for long (a whole 2049-token head in one
// workgroup left rows unwritten on lavapipe) and few heads still fill every core.
constexpr uint32_t kFusedRowBlock = 64;
uint32_t fused_rows_per_block(uint32_t N) { return N <= kFusedRowBlock ? (N + 7) / 8 * 8 : kFusedRowBlock; }
uint32_t fused_row_blocks(uint32_t N) { return div_up(N, fused_rows_per_block(N)); }

// Heads per workgroup: about 64 query rows, so that few-token heads (17 rows) share the
// workgroup's fixed cost on lavapipe while long sequences keep one head per workgroup.
uint32_t fused_heads_per_group(uint32_t N) { return std::max(1u, 64u / N); }
vk::Groups fused_groups(vk::Recorder& rec, const FusedPush& push) {
  return rec.groups_1d(uint64_t(div_up(push.heads, fused_heads_per_group(push.N))) * push.row_blocks);
}

// Mirrors common/attention_fused.glsl's layout(constant_id = 0) UNUSED_LANES, layout(constant_id = 1)
// HEADS_PER_GROUP, layout(constant_id = 2) CHUNK_ROWS and layout(constant_id = 3) WIDE.
struct FusedSpec {
  vk::SpecField<0, uint32_t> unused_lanes;
  vk::SpecField<1, uint32_t> heads_per_group;
  vk::SpecField<2, uint32_t> chunk_rows;
  vk::SpecField<3, bool> wide;
  vk::SpecConstants to_spec() const { return vk::SpecConstants(unused_lanes, heads_per_group, chunk_rows, wide); }
};

// One fused kernel as two modules (shaders/variants.cmake): without 64-bit types, and `_wide`
// with the 64-bit pairs (common/wide.glsl), taken where wide_accesses allows.
struct FusedShader {
  vk::ShaderId plain, wide;
};
// The fused kernels of one head width (HEAD_DIM is compile-time: one variant per width in
// shaders/variants.cmake).
struct FusedKernels {
  uint32_t head_dim;
  FusedShader forward, backward_dq, backward_dkv;
};
constexpr FusedKernels kFusedKernels[] = {
    {16,
     {shaders::attention_fused_fwd_d16, shaders::attention_fused_fwd_d16_wide},
     {shaders::attention_fused_dq_d16, shaders::attention_fused_dq_d16_wide},
     {shaders::attention_fused_dkv_d16, shaders::attention_fused_dkv_d16_wide}},
    {32,
     {shaders::attention_fused_fwd_d32, shaders::attention_fused_fwd_d32_wide},
     {shaders::attention_fused_dq_d32, shaders::attention_fused_dq_d32_wide},
     {shaders::attention_fused_dkv_d32, shaders::attention_fused_dkv_d32_wide}},
    {64,
     {shaders::attention_fused_fwd_d64, shaders::attention_fused_fwd_d64_wide},
     {shaders::attention_fused_dq_d64, shaders::attention_fused_dq_d64_wide},
     {shaders::attention_fused_dkv_d64, shaders::attention_fused_dkv_d64_wide}},
};
// nullptr for a head width without kernels.
const FusedKernels* fused_kernels(uint32_t head_dim) {
  for (const FusedKernels& k : kFusedKernels)
    if (k.head_dim == head_dim) return &k;
  return nullptr;
}

const vk::Kernel& fused_kernel(vk::Context& ctx, const FusedShader& shader, uint32_t bindings, uint32_t N) {
  if (const std::string why = attention_fused_unsupported(ctx.info()); !why.empty())
    throw Error(why + "; unset VKVIT_ATTENTION=fused to use the unfused path");
  // CHUNK_ROWS: rows of a chunk of 8 that can be real (all 8 once N > 8). WIDE: 64-bit pairs (the
  // vec4 views are checked 16-byte aligned). The pin keeps the 8 lanes in one subgroup.
  const bool wide = wide_accesses(ctx);
  return ctx.pipelines().get(wide ? shader.wide : shader.plain, bindings, sizeof(FusedPush),
                             FusedSpec{8u, fused_heads_per_group(N), std::min(N, 8u), wide}, 0,
                             kernel_choice(ctx).attention.pin);  // kernel choice
}

void check_vec4_aligned(const char* op, std::initializer_list<vk::View> views) {
  for (const vk::View& v : views)
    if (v.offset % 16 != 0)
      throw Error(std::string("internal: ") + op + ": a view starts at byte " + std::to_string(v.offset) +
                  ", not 16-byte aligned as the fused kernels' vec4 loads need");
}

// Calls fn(first_image, images, push) over chunks of images whose qkv, out and (B, H, N) slices
// each fit one binding and start aligned.
template <class Fn>
void for_each_fused_chunk(const vk::Context& ctx, const char* op, const Sizes& s, Fn&& fn) {
  const uint64_t N = s.N;
  const uint64_t per_chunk = items_per_chunk(ctx, {N * 3 * s.D, N * s.D, uint64_t(s.H) * N});
  if (per_chunk == 0)
    throw Error(std::string(op) + ": one image's attention (N=" + std::to_string(s.N) + ", D=" + std::to_string(s.D) +
                ") does not fit one storage binding (" + vk::format_bytes(ctx.info().max_storage_buffer_range) +
                ") on " + ctx.info().name);
  for (uint64_t first = 0; first < s.B; first += per_chunk) {
    const uint64_t images = std::min<uint64_t>(per_chunk, s.B - first);
    fn(first, images,
       FusedPush{static_cast<uint32_t>(images * s.H), s.N, s.H, s.D, s.scale, fused_row_blocks(s.N),
                 fused_rows_per_block(s.N)});
  }
}

}  // namespace

std::string attention_fused_unsupported(const vk::DeviceInfo& info) {
  return eight_lane_unsupported(info, "fused attention");
}

bool attention_fused_supported(uint32_t D, uint32_t H) {
  if (H == 0 || D % H != 0) return false;
  return fused_kernels(D / H) != nullptr;
}

void attention_fused_forward(vk::Recorder& rec, const vk::View& out, const vk::View& lse, const vk::View& qkv,
                             uint32_t B, uint32_t N, uint32_t D, uint32_t H) {
  if (B == 0 || N == 0 || D == 0) return;
  vk::Context& ctx = rec.context();
  const Sizes s = check_sizes("attention_fused_forward", B, N, D, H);
  if (!attention_fused_supported(D, H))
    throw Error("internal: attention_fused_forward: no fused kernel for head width " + std::to_string(s.d));
  check_view("attention_fused_forward", "out", out, uint64_t(B) * N * D);
  check_view("attention_fused_forward", "lse", lse, uint64_t(B) * H * N);
  check_view("attention_fused_forward", "qkv", qkv, uint64_t(B) * N * 3 * D);
  check_vec4_aligned("attention_fused_forward", {out, qkv});
  const vk::Kernel& k = fused_kernel(ctx, fused_kernels(s.d)->forward, 3, N);
  for_each_fused_chunk(ctx, "attention_fused_forward", s, [&](uint64_t first, uint64_t images, const FusedPush& push) {
    const uint64_t row = uint64_t(N) * 3 * D, tokens = uint64_t(N) * D, heads = uint64_t(H) * N;
    rec.dispatch(k, {out.slice(first * tokens, images * tokens), lse.slice(first * heads, images * heads),
                     qkv.slice(first * row, images * row)},
                 push, fused_groups(rec, push), "attention_fused");
  });
}

void attention_fused_backward(vk::Recorder& rec, const vk::View& dqkv, const vk::View& delta, const vk::View& lse,
                              const vk::View& qkv, const vk::View& out, const vk::View& dout, uint32_t B, uint32_t N,
                              uint32_t D, uint32_t H) {
  if (B == 0 || N == 0 || D == 0) return;
  vk::Context& ctx = rec.context();
  const char* op = "attention_fused_backward";
  const Sizes s = check_sizes(op, B, N, D, H);
  if (!attention_fused_supported(D, H))
    throw Error(std::string("internal: ") + op + ": no fused kernel for head width " + std::to_string(s.d));
  check_view(op, "dqkv", dqkv, uint64_t(B) * N * 3 * D);
  check_view(op, "delta", delta, uint64_t(B) * H * N);
  check_view(op, "lse", lse, uint64_t(B) * H * N);
  check_view(op, "qkv", qkv, uint64_t(B) * N * 3 * D);
  check_view(op, "out", out, uint64_t(B) * N * D);
  check_view(op, "dout", dout, uint64_t(B) * N * D);
  check_vec4_aligned(op, {dqkv, qkv, out, dout});
  const vk::Kernel& kq = fused_kernel(ctx, fused_kernels(s.d)->backward_dq, 6, N);
  const vk::Kernel& kkv = fused_kernel(ctx, fused_kernels(s.d)->backward_dkv, 5, N);
  for_each_fused_chunk(ctx, op, s, [&](uint64_t first, uint64_t images, const FusedPush& push) {
    const uint64_t row = uint64_t(N) * 3 * D, tokens = uint64_t(N) * D, heads = uint64_t(H) * N;
    const vk::View dqkv_c = dqkv.slice(first * row, images * row), qkv_c = qkv.slice(first * row, images * row);
    const vk::View out_c = out.slice(first * tokens, images * tokens);
    const vk::View dout_c = dout.slice(first * tokens, images * tokens);
    const vk::View lse_c = lse.slice(first * heads, images * heads), delta_c = delta.slice(first * heads, images * heads);
    const vk::Groups groups = fused_groups(rec, push);
    rec.dispatch(kq, {dqkv_c, delta_c, qkv_c, out_c, dout_c, lse_c}, push, groups, "attention_fused_dq");
    rec.dispatch(kkv, {dqkv_c, qkv_c, dout_c, lse_c, delta_c}, push, groups, "attention_fused_dkv");
  });
}

}  // namespace vkvit::ops
