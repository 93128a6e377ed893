// The global-filter token mixer (GFNet, Rao et al. 2021): the patch tokens of each channel, as
// an h x w grid, are filtered in the frequency domain by a learned complex filter,
//   out = irfft2(rfft2(in) * K),  K: "blocks.N.filter.complex_weight" (h, w/2+1, D, 2)
// (GFNet's name and layout; real and imaginary parts in the last axis). The cls token is not
// mixed (its output row is 0), so a model whose blocks are all global filters uses mean pooling.
// vkvit puts the filter where the attention of a ViT block is (x = x + filter(norm1(x)), then
// the MLP with its own residual), as MetaFormer-style hybrids do; GFNet's own block has a single
// residual around filter and MLP, so GFNet checkpoints do not load as they are.
//
// The FFTs run on VkFFT (vk::Fft2d) inside the step's command buffer, on scratch buffers that all
// global-filter blocks of a model share; the plans over those buffers are made once per batch
// size and kept by a GlobalFilterPlans that the model owns and hands to each mixer.
#pragma once
#include <map>
#include <memory>

#include "model/token_mixer.h"
#include "ops/global_filter.h"
#include "vk/fft.h"

namespace vkvit::model {

class GlobalFilterPlans {
 public:
  // The four transforms a global-filter block needs for `batch` images: R2C from the real grids
  // into either spectrum buffer, and C2R from either spectrum buffer back into the grids.
  struct Set {
    std::unique_ptr<vk::Fft2d> real_to_a, real_to_b, b_to_real, a_to_real;
  };
  explicit GlobalFilterPlans(vk::Context& ctx) : ctx_(ctx) {}
  // Plans are keyed by batch and by the views, so mixers of one model share them.
  const Set& get(uint32_t batch, const ops::GridShape& s, const vk::View& real, const vk::View& spectrum_a,
                 const vk::View& spectrum_b);

 private:
  struct Key {
    uint32_t batch, D, h, w;
    VkBuffer buffer;
    uint64_t real, a, b;
    bool operator<(const Key& o) const;
  };
  vk::Context& ctx_;
  std::map<Key, Set> plans_;
};

std::unique_ptr<TokenMixer> make_global_filter_mixer(vk::Context& ctx, const MixerSetup& setup);

}  // namespace vkvit::model
