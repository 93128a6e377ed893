// Mixup and CutMix on the host, the batch-level half of DeiT's recipe. The semantics follow timm's
// Mixup class (huggingface/pytorch-image-models, timm/data/mixup.py):
//   - image i of a batch of B mixes with image B-1-i (the batch flipped);
//   - lambda ~ Beta(alpha, alpha) of mixup or of CutMix; with both on, CutMix with switch_prob;
//     a draw is applied with probability prob (otherwise lambda = 1, the image is left alone);
//   - mode batch: one draw for the whole batch; pair: one per pair (i, B-1-i), both images of a
//     pair swap the same box; elem: one per image;
//   - mixup: x_i = lambda x_i + (1 - lambda) x_{B-1-i}, on the original (unmixed) images;
//   - CutMix: a box of side ratio sqrt(1 - lambda) centred uniformly in the image, clipped to it
//     (timm's integer rounding: side = int(size * ratio), edges centre -/+ side / 2), is copied from
//     the partner; lambda becomes 1 - box area / image area when correct_lam (timm's default);
//   - the target of image i is lambda_i smooth(y_i) + (1 - lambda_i) smooth(y_{B-1-i}), which the
//     two-label cross-entropy (ops/cross_entropy.h) takes as (y_i, y_{B-1-i}, lambda_i).
// timm asserts an even batch; vkvit's last batch may be odd, and its middle image then pairs with
// itself, which leaves it unchanged up to rounding (its two labels are equal too).
//
// The batch is mixed in its patchified layout (data/patchify.h): mixing is linear, so mixing
// normalised images equals normalising mixed ones, and a box in image space is the set of pixel
// positions whose (patch row, patch column, py, px) fall in it. TrainStep::record_mix mixes it on
// the GPU after the upload (ops/mix_batch.h) or, on CPU drivers, in the mapped staging memory on the
// host with mix_patches (see ops::mix_batch_on_gpu).
// Draws come from a generator seeded by (train.seed, step, rank), so a resumed run repeats them
// and each data-parallel rank mixes its own batch differently, as timm's ranks do.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace vkvit::train {

struct RunConfig;

enum class MixMode { batch, pair, elem };
MixMode parse_mix_mode(const std::string& name);  // "batch" | "pair" | "elem"; throws vkvit::Error

struct MixupParams {
  double mixup_alpha = 0;  // 0 = no mixup
  double cutmix_alpha = 0;  // 0 = no CutMix
  double prob = 1.0;        // probability of mixing a batch / pair / image
  double switch_prob = 0.5;  // with both on: probability of CutMix
  MixMode mode = MixMode::batch;
  bool correct_lam = true;  // lambda from the clipped box's area
  bool enabled() const { return mixup_alpha > 0 || cutmix_alpha > 0; }
};

// Half-open rows [y0, y1) and columns [x0, x1) of an image.
struct CutBox {
  int y0 = 0, y1 = 0, x0 = 0, x1 = 0;
  int64_t area() const { return int64_t(y1 - y0) * (x1 - x0); }
};

// How one image takes from its partner B-1-i.
struct SampleMix {
  enum Kind { none, mixup, cutmix } kind = none;
  float lam = 1.0f;  // weight of the image's own label (and, for mixup, of its pixels)
  CutBox box;        // cutmix only
};

// Beta(alpha, alpha) from two Gamma(alpha) draws (Marsaglia and Tsang 2000).
double sample_beta(std::mt19937_64& rng, double alpha);
// timm's rand_bbox for an H x W image: side ratio sqrt(1 - lam), centre uniform, clipped.
CutBox cutmix_box(std::mt19937_64& rng, double lam, int H, int W);

// The draws for a batch of B images of H x W (one entry per image).
std::vector<SampleMix> draw_mixes(const MixupParams& params, uint32_t B, int H, int W, std::mt19937_64& rng);

// The generator of one step's draws.
std::mt19937_64 mix_rng(uint64_t seed, uint64_t step, uint64_t rank);

// Patchified layout of one image: (image / patch)^2 rows of channels * patch^2 floats.
struct PatchGeometry {
  int image_size = 0, patch_size = 0, channels = 0;
  uint64_t floats() const { return uint64_t(image_size) * image_size * channels; }
};

// Mixes `B` patchified images in place as `mixes` say (image i with image B-1-i, from the
// originals): the host form of ops::mix_batch, used where the batch does not fit its pass.
void mix_patches(float* patches, uint32_t B, const PatchGeometry& geometry, const std::vector<SampleMix>& mixes);

// What the two-label cross-entropy needs per image: the partner's label and lambda.
struct MixTargets {
  std::vector<uint32_t> labels_b;
  std::vector<float> lam;
};
MixTargets mix_targets(const std::vector<uint32_t>& labels, uint32_t B, const std::vector<SampleMix>& mixes);

// The draws as ops::mix_batch reads them: ops::kMixWords uint32 per image.
std::vector<uint32_t> encode_mixes(const std::vector<SampleMix>& mixes);

// The trainer's part: the draws of a step's batch (TrainStep::record_mix applies them).
class BatchMixer {
 public:
  BatchMixer(const MixupParams& params, const PatchGeometry& geometry, uint64_t seed, uint64_t rank)
      : params_(params), geometry_(geometry), seed_(seed), rank_(rank) {}
  bool enabled() const { return params_.enabled(); }
  const PatchGeometry& geometry() const { return geometry_; }
  std::vector<SampleMix> draw(uint32_t B, uint64_t step) const;
  // On the host: draws, mixes `patches` in place, returns the targets.
  MixTargets mix(float* patches, const std::vector<uint32_t>& labels, uint32_t B, uint64_t step) const;

 private:
  MixupParams params_;
  PatchGeometry geometry_;
  uint64_t seed_, rank_;
};

// The run's mixer: train.mixup, cutmix, mixup_prob, mixup_switch_prob, mixup_mode and seed, the
// model's image geometry; `rank` mixes a data-parallel rank's batch apart from the others'.
BatchMixer batch_mixer(const RunConfig& cfg, uint64_t rank);

}  // namespace vkvit::train
