// Launchers of the global-filter kernels (see global_filter.h; references in ref/global_filter_ref.cpp). Bindings
// cover the whole batch: the FFT plans around these kernels bind whole buffers too, and the
// mixer checks at construction that its largest buffer fits one binding.
#include "ops/global_filter.h"

#include "base/error.h"
#include "ops/launch.h"

namespace vkvit::ops {

namespace {
struct LayoutPush {
  uint32_t n, D, P;
};
struct MultiplyPush {
  uint32_t n, D, F;
};
struct GradPush {
  uint32_t batch, D, F, wc, w;
  float inv_hw;
};

// Mirrors shaders/global_filter_scatter.comp's layout(constant_id = 0) WORKGROUP_SIZE
// (common/index.glsl) and layout(constant_id = 1) ACCUMULATE.
struct ScatterSpec {
  vk::SpecField<0, uint32_t> workgroup_size;
  vk::SpecField<1, bool> accumulate;
  vk::SpecConstants to_spec() const { return vk::SpecConstants(workgroup_size, accumulate); }
};
// Mirrors shaders/global_filter_mul.comp's layout(constant_id = 0) WORKGROUP_SIZE and
// layout(constant_id = 1) CONJ.
struct MultiplySpec {
  vk::SpecField<0, uint32_t> workgroup_size;
  vk::SpecField<1, bool> conj;
  vk::SpecConstants to_spec() const { return vk::SpecConstants(workgroup_size, conj); }
};

uint32_t checked_count(uint64_t n, const char* what) {
  if (n > UINT32_MAX) throw Error(std::string("global filter: ") + what + " has " + std::to_string(n) +
                                  " elements, over 2^32 - 1; use a smaller batch");
  return static_cast<uint32_t>(n);
}
}  // namespace

void global_filter_gather(vk::Recorder& rec, const vk::View& grids, const vk::View& tokens, const GridShape& s) {
  const uint64_t n = uint64_t(s.batch) * s.D * s.P();
  const vk::Kernel& k = rec.context().pipelines().get(shaders::global_filter_gather, 2, sizeof(LayoutPush),
                                                      vk::WorkgroupSpec{kElementwiseGroup});
  const LayoutPush push{checked_count(n, "the grid"), s.D, s.P()};
  rec.dispatch(k, {grids.slice(0, n), tokens.slice(0, uint64_t(s.batch) * s.T() * s.D)}, push,
               rec.groups_1d(div_up(n, kElementwiseGroup)), "global_filter_gather");
}

void global_filter_scatter(vk::Recorder& rec, const vk::View& tokens, const vk::View& grids, const GridShape& s,
                           bool accumulate) {
  const uint64_t n = uint64_t(s.batch) * s.T() * s.D;
  const vk::Kernel& k = rec.context().pipelines().get(shaders::global_filter_scatter, 2, sizeof(LayoutPush),
                                                      ScatterSpec{kElementwiseGroup, accumulate});
  const LayoutPush push{checked_count(n, "the token tensor"), s.D, s.P()};
  rec.dispatch(k, {tokens.slice(0, n), grids.slice(0, uint64_t(s.batch) * s.D * s.P())}, push,
               rec.groups_1d(div_up(n, kElementwiseGroup)), "global_filter_scatter");
}

void global_filter_multiply(vk::Recorder& rec, const vk::View& out, const vk::View& spectrum, const vk::View& filter,
                            const GridShape& s, bool conjugate) {
  const uint64_t n = uint64_t(s.batch) * s.D * s.F();  // complex numbers
  const vk::Kernel& k = rec.context().pipelines().get(shaders::global_filter_mul, 3, sizeof(MultiplyPush),
                                                      MultiplySpec{kElementwiseGroup, conjugate});
  const MultiplyPush push{checked_count(n, "the spectrum"), s.D, s.F()};
  rec.dispatch(k, {out.slice(0, 2 * n), spectrum.slice(0, 2 * n), filter.slice(0, 2ull * s.F() * s.D)}, push,
               rec.groups_1d(div_up(n, kElementwiseGroup)), "global_filter_mul");
}

void global_filter_grad(vk::Recorder& rec, const vk::View& dfilter, const vk::View& g, const vk::View& x,
                        const GridShape& s) {
  const uint64_t spectrum = 2ull * s.batch * s.D * s.F();
  const vk::Kernel& k = rec.context().pipelines().get(shaders::global_filter_grad, 3, sizeof(GradPush),
                                                      vk::WorkgroupSpec{kElementwiseGroup});
  const GradPush push{s.batch, s.D, s.F(), s.wc(), s.w, 1.0f / float(s.P())};
  rec.dispatch(k, {dfilter.slice(0, 2ull * s.F() * s.D), g.slice(0, spectrum), x.slice(0, spectrum)}, push,
               rec.groups_1d(div_up(uint64_t(s.F()) * s.D, kElementwiseGroup)), "global_filter_grad");
}

}  // namespace vkvit::ops
