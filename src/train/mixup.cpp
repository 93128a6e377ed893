// Mixup and CutMix draws and the in-place mix of a patchified batch; see mixup.h.
#include "train/mixup.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "data/rng.h"
#include "ops/mix_batch.h"
#include "train/config.h"

namespace vkvit::train {

MixMode parse_mix_mode(const std::string& name) {
  if (name == "batch") return MixMode::batch;
  if (name == "pair") return MixMode::pair;
  if (name == "elem") return MixMode::elem;
  throw Error("mixup mode '" + name + "' is not one of batch, pair, elem");
}

namespace {
// Gamma(a, 1): Marsaglia and Tsang's squeeze for a >= 1; for a < 1 the boost
// Gamma(a) = Gamma(a + 1) * U^(1/a).
double sample_gamma(std::mt19937_64& rng, double a) {
  if (a < 1.0) {
    const double u = 1.0 - data::uniform01(rng);  // (0, 1]: never pow(0, 1/a) by chance alone
    return sample_gamma(rng, a + 1.0) * std::pow(u, 1.0 / a);
  }
  const double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    const double x = data::standard_normal(rng);
    double v = 1.0 + c * x;
    if (v <= 0.0) continue;
    v = v * v * v;
    const double u = data::uniform01(rng);
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}

// One draw as timm's _params_per_batch / _params_per_elem make it: applied with probability
// prob, CutMix or mixup, lambda from that one's Beta; then CutMix's box and corrected lambda.
SampleMix draw_one(const MixupParams& p, int H, int W, std::mt19937_64& rng) {
  SampleMix m;
  if (!(data::uniform01(rng) < p.prob)) return m;
  bool cutmix = p.cutmix_alpha > 0;
  if (p.mixup_alpha > 0 && p.cutmix_alpha > 0) cutmix = data::uniform01(rng) < p.switch_prob;
  const double lam = sample_beta(rng, cutmix ? p.cutmix_alpha : p.mixup_alpha);
  if (static_cast<float>(lam) == 1.0f) return m;  // timm leaves an image with lambda 1 alone
  m.lam = static_cast<float>(lam);
  m.kind = cutmix ? SampleMix::cutmix : SampleMix::mixup;
  if (cutmix) {
    m.box = cutmix_box(rng, lam, H, W);
    if (p.correct_lam) m.lam = static_cast<float>(1.0 - double(m.box.area()) / (double(H) * W));
  }
  return m;
}

// Pixel (y, x) of an image that takes from its partner as `m` says; own and other are its value
// and the partner's at the same position.
inline float mixed_value(const SampleMix& m, float own, float other, int y, int x) {
  switch (m.kind) {
    case SampleMix::mixup:
      return own * m.lam + other * (1.0f - m.lam);
    case SampleMix::cutmix:
      return (y >= m.box.y0 && y < m.box.y1 && x >= m.box.x0 && x < m.box.x1) ? other : own;
    default:
      return own;
  }
}
}  // namespace

double sample_beta(std::mt19937_64& rng, double alpha) {
  if (!(alpha > 0)) throw Error("internal: Beta(alpha, alpha) with alpha " + std::to_string(alpha));
  const double x = sample_gamma(rng, alpha), y = sample_gamma(rng, alpha);
  // Tiny alphas may underflow both; Beta(a, a) then sits at 0 or 1 with equal odds.
  if (x + y == 0.0) return data::uniform01(rng) < 0.5 ? 0.0 : 1.0;
  return x / (x + y);
}

CutBox cutmix_box(std::mt19937_64& rng, double lam, int H, int W) {
  const double ratio = std::sqrt(std::max(0.0, 1.0 - lam));
  const int cut_h = static_cast<int>(H * ratio), cut_w = static_cast<int>(W * ratio);
  const int cy = static_cast<int>(data::uniform_below(rng, uint64_t(H)));
  const int cx = static_cast<int>(data::uniform_below(rng, uint64_t(W)));
  CutBox b;
  b.y0 = std::clamp(cy - cut_h / 2, 0, H);
  b.y1 = std::clamp(cy + cut_h / 2, 0, H);
  b.x0 = std::clamp(cx - cut_w / 2, 0, W);
  b.x1 = std::clamp(cx + cut_w / 2, 0, W);
  return b;
}

std::vector<SampleMix> draw_mixes(const MixupParams& params, uint32_t B, int H, int W, std::mt19937_64& rng) {
  std::vector<SampleMix> mixes(B);
  if (!params.enabled() || B == 0) return mixes;
  switch (params.mode) {
    case MixMode::batch:
      std::fill(mixes.begin(), mixes.end(), draw_one(params, H, W, rng));
      break;
    case MixMode::pair:  // pairs (i, B-1-i) share one draw; an odd batch's middle image stays
      for (uint32_t i = 0; i < B / 2; ++i) mixes[i] = mixes[B - 1 - i] = draw_one(params, H, W, rng);
      break;
    case MixMode::elem:
      for (uint32_t i = 0; i < B; ++i) mixes[i] = draw_one(params, H, W, rng);
      break;
  }
  return mixes;
}

std::mt19937_64 mix_rng(uint64_t seed, uint64_t step, uint64_t rank) {
  constexpr uint64_t kMixupStream = 0x6d69787570ull;  // "mixup": apart from the loader's streams
  return std::mt19937_64(data::mix_seed(seed ^ kMixupStream, step, rank));
}

void mix_patches(float* patches, uint32_t B, const PatchGeometry& g, const std::vector<SampleMix>& mixes) {
  if (mixes.size() != B) throw Error("internal: mix_patches with " + std::to_string(mixes.size()) + " draws for " +
                                     std::to_string(B) + " images");
  const int P = g.patch_size, C = g.channels, grid = g.image_size / P;
  const uint64_t per_image = g.floats();
  // Both images of a pair at once: each reads the other's original value before either is written.
  for (uint32_t i = 0; i < (B + 1) / 2; ++i) {
    const uint32_t j = B - 1 - i;
    const SampleMix &mi = mixes[i], &mj = mixes[j];
    if (mi.kind == SampleMix::none && mj.kind == SampleMix::none) continue;
    float* xi = patches + i * per_image;
    float* xj = patches + j * per_image;
    uint64_t e = 0;  // walks the [patch][c][py][px] layout in order
    for (int r = 0; r < grid * grid; ++r)
      for (int c = 0; c < C; ++c)
        for (int py = 0; py < P; ++py) {
          const int y = (r / grid) * P + py;
          for (int px = 0; px < P; ++px, ++e) {
            const int x = (r % grid) * P + px;
            const float a = xi[e], b = xj[e];
            xi[e] = mixed_value(mi, a, b, y, x);
            if (j != i) xj[e] = mixed_value(mj, b, a, y, x);
          }
        }
  }
}

MixTargets mix_targets(const std::vector<uint32_t>& labels, uint32_t B, const std::vector<SampleMix>& mixes) {
  if (labels.size() < B || mixes.size() != B) throw Error("internal: mix_targets with too few labels or draws");
  MixTargets t;
  t.labels_b.resize(B);
  t.lam.resize(B);
  for (uint32_t i = 0; i < B; ++i) {
    t.labels_b[i] = labels[B - 1 - i];
    t.lam[i] = mixes[i].lam;
  }
  return t;
}

std::vector<uint32_t> encode_mixes(const std::vector<SampleMix>& mixes) {
  static_assert(ops::kMixWords == 6);
  std::vector<uint32_t> words;
  words.reserve(mixes.size() * ops::kMixWords);
  for (const SampleMix& m : mixes) {
    uint32_t lam_bits;
    std::memcpy(&lam_bits, &m.lam, 4);
    const CutBox& b = m.box;
    words.insert(words.end(), {uint32_t(m.kind), lam_bits, uint32_t(b.y0), uint32_t(b.y1), uint32_t(b.x0), uint32_t(b.x1)});
  }
  return words;
}

std::vector<SampleMix> BatchMixer::draw(uint32_t B, uint64_t step) const {
  std::mt19937_64 rng = mix_rng(seed_, step, rank_);
  return draw_mixes(params_, B, geometry_.image_size, geometry_.image_size, rng);
}

MixTargets BatchMixer::mix(float* patches, const std::vector<uint32_t>& labels, uint32_t B, uint64_t step) const {
  const std::vector<SampleMix> mixes = draw(B, step);
  mix_patches(patches, B, geometry_, mixes);
  return mix_targets(labels, B, mixes);
}

BatchMixer batch_mixer(const RunConfig& cfg, uint64_t rank) {
  MixupParams p;
  p.mixup_alpha = cfg.train.mixup;
  p.cutmix_alpha = cfg.train.cutmix;
  p.prob = cfg.train.mixup_prob;
  p.switch_prob = cfg.train.mixup_switch_prob;
  p.mode = parse_mix_mode(cfg.train.mixup_mode);
  const PatchGeometry g{cfg.model.image_size, cfg.model.patch_size, cfg.model.in_chans};
  return BatchMixer(p, g, cfg.train.seed, rank);
}

}  // namespace vkvit::train
