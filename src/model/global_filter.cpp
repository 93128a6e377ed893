// GlobalFilterMixer (see global_filter.h) and the FFT plans its blocks share.
#include "model/global_filter.h"

#include <tuple>

#include "base/error.h"
#include "ops/residual.h"

namespace vkvit::model {

bool GlobalFilterPlans::Key::operator<(const Key& o) const {
  return std::tie(batch, D, h, w, buffer, real, a, b) < std::tie(o.batch, o.D, o.h, o.w, o.buffer, o.real, o.a, o.b);
}

const GlobalFilterPlans::Set& GlobalFilterPlans::get(uint32_t batch, const ops::GridShape& s, const vk::View& real,
                                                     const vk::View& spectrum_a, const vk::View& spectrum_b) {
  // The three views come from one arena; a key on the buffer and the three offsets is unique.
  const Key key{batch, s.D, s.h, s.w, real.buffer, real.offset, spectrum_a.offset, spectrum_b.offset};
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  const vk::FftShape shape{uint64_t(batch) * s.D, s.h, s.w};
  using vk::FftDirections;
  Set set;
  set.real_to_a = std::make_unique<vk::Fft2d>(ctx_, shape, real, spectrum_a, vk::FftNorm::backward,
                                              FftDirections::forward_only);
  set.real_to_b = std::make_unique<vk::Fft2d>(ctx_, shape, real, spectrum_b, vk::FftNorm::backward,
                                              FftDirections::forward_only);
  set.b_to_real = std::make_unique<vk::Fft2d>(ctx_, shape, real, spectrum_b, vk::FftNorm::backward,
                                              FftDirections::inverse_only);
  set.a_to_real = std::make_unique<vk::Fft2d>(ctx_, shape, real, spectrum_a, vk::FftNorm::backward,
                                              FftDirections::inverse_only);
  return plans_.emplace(key, std::move(set)).first->second;
}

namespace {

class GlobalFilterMixer : public TokenMixer {
 public:
  GlobalFilterMixer(vk::Context& ctx, const MixerSetup& s) : prefix_(s.prefix), plans_(s.fft_plans) {
    shape_.batch = s.max_batch;
    shape_.D = s.cfg.dim;
    shape_.h = shape_.w = s.cfg.grid();
    const std::string name = s.prefix + "filter.complex_weight";
    filter_ = param_view(s.params, s.layout, name);
    dfilter_ = param_view(s.grads, s.layout, name);
    // Every kernel and FFT binds a whole tensor of the batch: the largest must fit one binding.
    const uint64_t per_image = std::max<uint64_t>(uint64_t(shape_.T()) * shape_.D, 2ull * shape_.D * shape_.F()) * 4;
    const uint64_t range = ctx.info().max_storage_buffer_range;
    if (per_image * s.max_batch > range)
      throw Error("model: the global filter of " + s.cfg.name + " at batch " + std::to_string(s.max_batch) +
                  " needs a storage binding of " + vk::format_bytes(per_image * s.max_batch) + ", over " +
                  ctx.info().name + "'s maxStorageBufferRange of " + vk::format_bytes(range) +
                  ": use a batch of at most " + std::to_string(range / per_image));
  }

  void allocate(ActivationAlloc& alloc) override {
    const uint64_t B = shape_.batch, grid = B * shape_.D * shape_.P(), spectrum = 2 * B * shape_.D * shape_.F();
    real_ = alloc.scratch("filter.grids (B, D, h, w)", grid);
    spectrum_a_ = alloc.scratch("filter.spectrum a (B, D, h, w/2+1)", spectrum);
    spectrum_b_ = alloc.scratch("filter.spectrum b (B, D, h, w/2+1)", spectrum);
  }

  void forward(vk::Recorder& rec, const vk::View& out, const vk::View& in, uint32_t batch,
               const vk::View& residual) override {
    const ops::GridShape s = at(batch);
    const GlobalFilterPlans::Set& fft = plans(batch);
    ops::global_filter_gather(rec, real_, in, s);
    fft.real_to_a->forward(rec);                                          // a = rfft2(x)
    ops::global_filter_multiply(rec, spectrum_b_, spectrum_a_, filter_, s, false);  // b = a * K
    fft.b_to_real->inverse(rec);                                          // grids = irfft2(b)
    ops::global_filter_scatter(rec, out, real_, s, false);
    if (residual.buffer != VK_NULL_HANDLE) ops::residual_forward(rec, out, out, residual, uint64_t(s.batch) * s.T() * s.D);
  }

  void backward(vk::Recorder& rec, const vk::View& din, const vk::View& dout, const vk::View& in,
                uint32_t batch) override {
    const ops::GridShape s = at(batch);
    const GlobalFilterPlans::Set& fft = plans(batch);
    // rfft2(x) is recomputed rather than kept from the forward: one more transform instead of a
    // spectrum per block held until the backward.
    ops::global_filter_gather(rec, real_, in, s);
    fft.real_to_a->forward(rec);  // a = X = rfft2(x)
    ops::global_filter_gather(rec, real_, dout, s);
    fft.real_to_b->forward(rec);  // b = G = rfft2(dy)
    ops::global_filter_grad(rec, dfilter_, spectrum_b_, spectrum_a_, s);
    ops::global_filter_multiply(rec, spectrum_a_, spectrum_b_, filter_, s, true);  // a = G * conj(K)
    fft.a_to_real->inverse(rec);                                                     // grids = dx
    ops::global_filter_scatter(rec, din, real_, s, true);
  }

 private:
  ops::GridShape at(uint32_t batch) const {
    if (batch == 0 || batch > shape_.batch)
      throw Error("internal: global filter batch " + std::to_string(batch) + " outside 1.." + std::to_string(shape_.batch));
    ops::GridShape s = shape_;
    s.batch = batch;
    return s;
  }
  const GlobalFilterPlans::Set& plans(uint32_t batch) {
    if (!plans_) throw Error("internal: a global-filter mixer was made without the model's FFT plans");
    return plans_->get(batch, shape_, real_, spectrum_a_, spectrum_b_);
  }

  std::string prefix_;
  std::shared_ptr<GlobalFilterPlans> plans_;
  ops::GridShape shape_;          // batch = the model's max batch
  vk::View filter_, dfilter_;     // (h, wc, D, 2)
  vk::View real_;                 // (B, D, h, w) scratch shared by the model's filters
  vk::View spectrum_a_, spectrum_b_;  // (B, D, h, wc) complex scratch, shared likewise
};

}  // namespace

std::unique_ptr<TokenMixer> make_global_filter_mixer(vk::Context& ctx, const MixerSetup& setup) {
  return std::make_unique<GlobalFilterMixer>(ctx, setup);
}

}  // namespace vkvit::model
