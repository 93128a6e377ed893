// Patch embedding launchers: the patch projection is ops::linear (one matmul over all B * Np
// patches); one small kernel each way handles the class token, position embedding and layout
// (the forward's four floats per invocation as 64-bit pairs where D % 4 == 0 and the views allow).
#include "ops/patch_embed.h"

#include "ops/launch.h"
#include "ops/linear.h"

namespace vkvit::ops {

namespace {
struct PatchEmbedPush {
  uint32_t B, T, D;
};
static_assert(sizeof(PatchEmbedPush) == 12);

// Mirrors shaders/common/patch_embed.glsl's layout(constant_id = 0) WORKGROUP_SIZE (common/index.glsl)
// and layout(constant_id = 1) WIDE.
struct PatchEmbedSpec {
  vk::SpecField<0, uint32_t> workgroup_size;
  vk::SpecField<1, bool> wide;
  vk::SpecConstants to_spec() const { return vk::SpecConstants(workgroup_size, wide); }
};
}  // namespace

void patch_embed_forward(vk::Recorder& rec, const vk::View& tokens, const vk::View& proj, const vk::View& patches,
                         const vk::View& w, const vk::View& bias, const vk::View& cls, const vk::View& pos,
                         const PatchEmbedShape& s) {
  if (s.B == 0 || s.D == 0) return;
  const uint64_t rows = uint64_t(s.B) * s.Np, T = s.Np + 1;
  linear_forward(rec, proj.slice(0, rows * s.D), patches.slice(0, rows * s.CPP), w, bias,
                 static_cast<uint32_t>(rows), s.D, s.CPP);
  const bool wide = s.D % 4 == 0 && wide_views(rec.context(), {tokens, proj, cls, pos});
  // The _wide module has the 64-bit pairs; the plain one no 64-bit type (common/wide.glsl).
  const vk::Kernel& k = rec.context().pipelines().get(wide ? shaders::patch_embed_wide : shaders::patch_embed, 4,
                                                      sizeof(PatchEmbedPush), PatchEmbedSpec{kElementwiseGroup, wide});
  const PatchEmbedPush push{s.B, static_cast<uint32_t>(T), s.D};
  rec.dispatch(k, {tokens.slice(0, s.B * T * s.D), proj.slice(0, std::max<uint64_t>(rows, 1) * s.D),
                   cls.slice(0, s.D), pos.slice(0, T * s.D)},
               push, rec.groups_1d(div_up(s.B * T * s.D / (wide ? 4 : 1), kElementwiseGroup)), "patch_embed");
}

void patch_embed_backward(vk::Recorder& rec, const vk::View& dw, const vk::View& dbias, const vk::View& dcls,
                          const vk::View& dpos, const vk::View& proj, const vk::View& dtokens,
                          const vk::View& patches, const PatchEmbedShape& s) {
  if (s.B == 0 || s.D == 0) return;
  const uint64_t rows = uint64_t(s.B) * s.Np, T = s.Np + 1;
  const vk::Kernel& k =
      rec.context().pipelines().get(shaders::patch_embed_backward, 4, sizeof(PatchEmbedPush),
                                    vk::WorkgroupSpec{kElementwiseGroup});
  const PatchEmbedPush push{s.B, static_cast<uint32_t>(T), s.D};
  rec.dispatch(k, {dcls.slice(0, s.D), dpos.slice(0, T * s.D), proj.slice(0, std::max<uint64_t>(rows, 1) * s.D),
                   dtokens.slice(0, s.B * T * s.D)},
               push, rec.groups_1d(div_up(T * s.D, kElementwiseGroup)), "patch_embed_backward");
  // No dx: the patches are data. The weight is only read for dx, so none is passed.
  linear_backward(rec, vk::View{}, dw, dbias, proj.slice(0, rows * s.D), patches.slice(0, rows * s.CPP),
                  vk::View{}, static_cast<uint32_t>(rows), s.D, s.CPP);
}

}  // namespace vkvit::ops
