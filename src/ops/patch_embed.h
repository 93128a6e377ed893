// Patch embedding of a ViT (timm PatchEmbed + class token + learned position embedding).
// The CPU cuts each image into Np patches and flattens each patch in the layout of the conv weight
// (D, C, P, P), so the stride-P convolution becomes a linear layer with weight (D, C*P*P):
//   tokens[b, 0]     = cls_token + pos_embed[0]
//   tokens[b, 1 + i] = patches[b, i] W^T + bias + pos_embed[1 + i]
// `proj` is scratch of (B, Np, D) floats for the patch-matmul output (forward) and for the patch
// tokens' gradient (backward); its contents need not survive between the two.
// (Writing the matmul straight into rows 1..Np of each image would need a sub-view offset by one
// row, D floats, which violates minStorageBufferOffsetAlignment for most D; the scratch keeps one
// code path for every width.)
#pragma once
#include <cstdint>

#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

struct PatchEmbedShape {
  uint32_t B = 0;    // images
  uint32_t Np = 0;   // patches per image; tokens per image are Np + 1
  uint32_t CPP = 0;  // C * P * P, floats per patch
  uint32_t D = 0;    // embedding width
};

void patch_embed_forward(vk::Recorder& rec, const vk::View& tokens /* (B, Np + 1, D) */,
                         const vk::View& proj /* (B, Np, D) scratch */, const vk::View& patches /* (B, Np, CPP) */,
                         const vk::View& w /* (D, CPP) */, const vk::View& bias /* (D) */,
                         const vk::View& cls /* (D) */, const vk::View& pos /* (Np + 1, D) */,
                         const PatchEmbedShape& s);

// Accumulates dw, dbias, dcls, dpos; the patches get no gradient (they are data).
void patch_embed_backward(vk::Recorder& rec, const vk::View& dw /* (D, CPP) */, const vk::View& dbias /* (D) */,
                          const vk::View& dcls /* (D) */, const vk::View& dpos /* (Np + 1, D) */,
                          const vk::View& proj /* (B, Np, D) scratch */,
                          const vk::View& dtokens /* (B, Np + 1, D) */, const vk::View& patches /* (B, Np, CPP) */,
                          const PatchEmbedShape& s);

namespace ref {
void patch_embed_forward(double* tokens, const double* patches, const double* w, const double* bias,
                         const double* cls, const double* pos, const PatchEmbedShape& s);
void patch_embed_backward(double* dw, double* dbias, double* dcls, double* dpos, const double* dtokens,
                          const double* patches, const PatchEmbedShape& s);
}  // namespace ref

}  // namespace vkvit::ops
