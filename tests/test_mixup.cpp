// Mixup / CutMix (train/mixup.h): Beta draws, CutMix boxes (size, clipping, corrected lambda),
// probability and switch probability, the three modes and the pairing, the patchified host mix
// against an image-space reference, the GPU pass (ops/mix_batch.h) against the host mix, the
// targets, determinism, a short training run with both on, and (at the end) a PyTorch reference of
// timm's Mixup given the same draws.
#include <catch2/catch.hpp>

#include "described_devices.h"
#include "harness.h"
#include "stripes.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/patchify.h"
#include "model/vit.h"
#include "ops/cross_entropy.h"
#include "model/safetensors.h"
#include "ops/mix_batch.h"
#include "train/config.h"
#include "train/mixup.h"
#include "train/train_step.h"
#include "train/trainer.h"

using namespace vkvit;
using namespace vkvit::train;
using Catch::Matchers::Contains;

namespace {

bool same(const SampleMix& a, const SampleMix& b) {
  return a.kind == b.kind && a.lam == b.lam && a.box.y0 == b.box.y0 && a.box.y1 == b.box.y1 && a.box.x0 == b.box.x0 &&
         a.box.x1 == b.box.x1;
}

// Images as C planes of H x W (the layout timm mixes), mixed as timm's Mixup does: image i from
// the originals of i and B-1-i.
std::vector<float> mix_images_reference(const std::vector<float>& images, uint32_t B, int C, int S,
                                        const std::vector<SampleMix>& mixes) {
  std::vector<float> out = images;
  const size_t per_image = size_t(C) * S * S;
  for (uint32_t i = 0; i < B; ++i) {
    const SampleMix& m = mixes[i];
    const float* own = images.data() + i * per_image;
    const float* other = images.data() + (B - 1 - i) * per_image;
    for (int c = 0; c < C; ++c)
      for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x) {
          const size_t e = (size_t(c) * S + y) * S + x;
          if (m.kind == SampleMix::mixup) out[i * per_image + e] = own[e] * m.lam + other[e] * (1.0f - m.lam);
          if (m.kind == SampleMix::cutmix && y >= m.box.y0 && y < m.box.y1 && x >= m.box.x0 && x < m.box.x1)
            out[i * per_image + e] = other[e];
        }
  }
  return out;
}

// The loader's layout of C planes of S x S: data::patchify of each image.
std::vector<float> patchify_all(const std::vector<float>& images, uint32_t B, int C, int S, int P) {
  std::vector<float> out(images.size());
  const size_t per_image = size_t(C) * S * S;
  for (uint32_t i = 0; i < B; ++i) {
    cv::Mat img(S, S, CV_32FC(C));
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x)
        for (int c = 0; c < C; ++c) img.ptr<float>(y)[x * C + c] = images[i * per_image + (size_t(c) * S + y) * S + x];
    data::patchify(img, P, out.data() + i * per_image);
  }
  return out;
}

MixupParams both(MixMode mode) {
  MixupParams p;
  p.mixup_alpha = 0.8;
  p.cutmix_alpha = 1.0;
  p.mode = mode;
  return p;
}

}  // namespace

TEST_CASE("Beta(alpha, alpha) draws have the Beta mean and variance", "[mixup]") {
  for (double alpha : {0.2, 0.8, 1.0, 4.0}) {
    DYNAMIC_SECTION("alpha=" << alpha) {
      std::mt19937_64 rng(11);
      const int n = 40000;
      double sum = 0, sq = 0, below_quarter = 0;
      for (int i = 0; i < n; ++i) {
        const double v = sample_beta(rng, alpha);
        REQUIRE(v >= 0.0);
        REQUIRE(v <= 1.0);
        sum += v;
        sq += v * v;
        below_quarter += v < 0.25;
      }
      const double mean = sum / n, var = sq / n - mean * mean;
      const double expect_var = 1.0 / (4.0 * (2.0 * alpha + 1.0));
      // 5 standard errors of the mean; the variance within 5%.
      CHECK(mean == Approx(0.5).margin(5 * std::sqrt(expect_var / n)));
      CHECK(var == Approx(expect_var).epsilon(0.05));
      if (alpha == 1.0) CHECK(below_quarter / n == Approx(0.25).margin(0.01));  // uniform
    }
  }
}

TEST_CASE("CutMix boxes: side int(size sqrt(1 - lambda)), centre uniform, clipped to the image", "[mixup]") {
  // lambda 0.75 on 32 x 20: cut 16 x 10, half sides 8 and 5.
  std::mt19937_64 rng(3);
  const int H = 32, W = 20, n = 20000;
  double clipped_top = 0, area_sum = 0;
  for (int i = 0; i < n; ++i) {
    const CutBox b = cutmix_box(rng, 0.75, H, W);
    REQUIRE(0 <= b.y0);
    REQUIRE(b.y0 <= b.y1);
    REQUIRE(b.y1 <= H);
    REQUIRE(0 <= b.x0);
    REQUIRE(b.x0 <= b.x1);
    REQUIRE(b.x1 <= W);
    // Unclipped edges are the full side; a clipped one sits at the border, the other side intact.
    if (b.y0 > 0 && b.y1 < H) CHECK(b.y1 - b.y0 == 16);
    if (b.y0 == 0) CHECK(b.y1 <= 8 + 8);
    if (b.x0 > 0 && b.x1 < W) CHECK(b.x1 - b.x0 == 10);
    clipped_top += b.y0 == 0;
    area_sum += double(b.area());
  }
  // Centres cy < 8 clip the top edge (cy = 8 gives y0 = 0 exactly): 9 of 32 rows.
  CHECK(clipped_top / n == Approx(9.0 / 32).margin(0.015));
  // The mean clipped area, enumerated over every centre.
  double expect = 0;
  for (int cy = 0; cy < H; ++cy)
    for (int cx = 0; cx < W; ++cx)
      expect += double(std::min(cy + 8, H) - std::max(cy - 8, 0)) * (std::min(cx + 5, W) - std::max(cx - 5, 0));
  expect /= H * W;
  CHECK(area_sum / n == Approx(expect).epsilon(0.02));
  CHECK(expect < 0.25 * H * W);  // clipping shrinks the box below 1 - lambda of the image

  // lambda 0: sides H and W, so even a corner centre keeps a quarter of the image; lambda 1: empty.
  for (int i = 0; i < 100; ++i) CHECK(cutmix_box(rng, 0.0, H, W).area() >= (H / 2) * (W / 2));
  CHECK(cutmix_box(rng, 1.0, H, W).area() == 0);
}

TEST_CASE("CutMix lambda: from the clipped area with correct_lam, the drawn one without", "[mixup]") {
  const int S = 24;
  for (bool correct : {true, false}) {
    MixupParams p;
    p.cutmix_alpha = 1.0;
    p.mode = MixMode::elem;
    p.correct_lam = correct;
    std::mt19937_64 rng(5);
    const auto mixes = draw_mixes(p, 2000, S, S, rng);
    int differ = 0;
    for (const SampleMix& m : mixes) {
      REQUIRE(m.kind == SampleMix::cutmix);
      const float from_area = static_cast<float>(1.0 - double(m.box.area()) / (S * S));
      if (correct) CHECK(m.lam == from_area);
      differ += m.lam != from_area;
    }
    if (!correct) CHECK(differ > 1000);  // rounding and clipping make them differ
  }
}

TEST_CASE("mixup probability and switch probability choose as often as they say", "[mixup]") {
  MixupParams p = both(MixMode::elem);
  p.prob = 0.6;
  p.switch_prob = 0.3;
  std::mt19937_64 rng(7);
  const uint32_t n = 40000;
  const auto mixes = draw_mixes(p, n, 16, 16, rng);
  double none = 0, cut = 0, lam_sum = 0, mixups = 0;
  for (const SampleMix& m : mixes) {
    none += m.kind == SampleMix::none;
    cut += m.kind == SampleMix::cutmix;
    if (m.kind == SampleMix::none) CHECK(m.lam == 1.0f);
    if (m.kind == SampleMix::mixup) {
      lam_sum += m.lam;
      ++mixups;
    }
  }
  CHECK(none / n == Approx(0.4).margin(0.01));
  CHECK(cut / (n - none) == Approx(0.3).margin(0.015));
  CHECK(lam_sum / mixups == Approx(0.5).margin(0.01));  // Beta(0.8, 0.8)'s mean

  // One of the two alone: only that kind.
  MixupParams only_mixup;
  only_mixup.mixup_alpha = 0.8;
  only_mixup.mode = MixMode::elem;
  for (const SampleMix& m : draw_mixes(only_mixup, 500, 16, 16, rng)) CHECK(m.kind == SampleMix::mixup);
  MixupParams only_cutmix;
  only_cutmix.cutmix_alpha = 1.0;
  only_cutmix.mode = MixMode::elem;
  for (const SampleMix& m : draw_mixes(only_cutmix, 500, 16, 16, rng)) CHECK(m.kind != SampleMix::mixup);
  // Both off: nothing.
  for (const SampleMix& m : draw_mixes(MixupParams{}, 50, 16, 16, rng)) CHECK(m.kind == SampleMix::none);
}

TEST_CASE("mixup modes: one draw per batch, per pair (i, B-1-i), per image", "[mixup]") {
  for (uint32_t B : {8u, 9u}) {
    DYNAMIC_SECTION("B=" << B) {
      std::mt19937_64 rng(B);
      const auto batch = draw_mixes(both(MixMode::batch), B, 16, 16, rng);
      for (const SampleMix& m : batch) CHECK(same(m, batch[0]));

      const auto pair = draw_mixes(both(MixMode::pair), B, 16, 16, rng);
      for (uint32_t i = 0; i < B; ++i) CHECK(same(pair[i], pair[B - 1 - i]));
      if (B % 2) CHECK(pair[B / 2].kind == SampleMix::none);  // the middle image pairs with itself
      int distinct_pairs = 0;
      for (uint32_t i = 1; i < B / 2; ++i) distinct_pairs += !same(pair[i], pair[0]);
      CHECK(distinct_pairs > 0);

      const auto elem = draw_mixes(both(MixMode::elem), B, 16, 16, rng);
      int distinct = 0;
      for (uint32_t i = 1; i < B; ++i) distinct += !same(elem[i], elem[0]);
      CHECK(distinct > 0);
    }
  }
  CHECK(parse_mix_mode("pair") == MixMode::pair);
  CHECK_THROWS_WITH(parse_mix_mode("half"), Contains("batch, pair, elem"));
}

TEST_CASE("mixing the patchified batch equals mixing the images, then patchifying", "[mixup]") {
  const int C = 3, S = 12, P = 4;
  const PatchGeometry g{S, P, C};
  for (MixMode mode : {MixMode::batch, MixMode::pair, MixMode::elem})
    for (uint32_t B : {5u, 6u})
      for (uint64_t seed = 0; seed < 6; ++seed) {
        INFO("mode " << int(mode) << " B " << B << " seed " << seed);
        const std::vector<float> images = test::random_floats(size_t(B) * g.floats(), uint32_t(100 + seed));
        MixupParams p = both(mode);
        p.switch_prob = seed % 2 ? 1.0 : 0.0;  // CutMix on odd seeds, mixup on even ones
        std::mt19937_64 rng(seed);
        const auto mixes = draw_mixes(p, B, S, S, rng);
        std::vector<float> patches = patchify_all(images, B, C, S, P);
        mix_patches(patches.data(), B, g, mixes);
        const std::vector<float> expect = patchify_all(mix_images_reference(images, B, C, S, mixes), B, C, S, P);
        REQUIRE(patches.size() == expect.size());
        size_t mismatches = 0;
        for (size_t e = 0; e < expect.size(); ++e) mismatches += patches[e] != expect[e];
        CHECK(mismatches == 0);
        // Something moved where a draw mixes (a small 1 - lambda may give CutMix an empty box).
        bool moves = false;
        for (const SampleMix& m : mixes) moves |= m.kind == SampleMix::mixup || m.box.area() > 0;
        CHECK(moves == (patches != patchify_all(images, B, C, S, P)));
      }
}

TEST_CASE("mix_batch on the GPU equals the host mix on odd shapes", "[mixup][gpu]") {
  struct Shape {
    int C, S, P;
    uint32_t B;
  };
  for (const Shape& sh : {Shape{3, 12, 4, 5}, Shape{3, 12, 4, 6}, Shape{2, 10, 5, 7}, Shape{1, 28, 14, 64}})
    for (MixMode mode : {MixMode::batch, MixMode::pair, MixMode::elem})
      for (double switch_prob : {0.0, 0.5, 1.0}) {
        INFO("C " << sh.C << " S " << sh.S << " P " << sh.P << " B " << sh.B << " mode " << int(mode) << " switch "
                  << switch_prob);
        const PatchGeometry g{sh.S, sh.P, sh.C};
        const std::vector<float> images = test::random_floats(sh.B * g.floats(), sh.B + uint32_t(mode));
        MixupParams p = both(mode);
        p.switch_prob = switch_prob;
        std::mt19937_64 rng(sh.B * 10 + uint64_t(mode));
        const auto mixes = draw_mixes(p, sh.B, sh.S, sh.S, rng);
        std::vector<float> host = images;
        mix_patches(host.data(), sh.B, g, mixes);

        const std::vector<uint32_t> words = encode_mixes(mixes);
        std::vector<float> word_bits(words.size());
        std::memcpy(word_bits.data(), words.data(), words.size() * 4);
        test::DeviceTensor d_images(images), d_mixes(word_bits);
        const ops::MixBatchShape shape{sh.B, uint32_t(sh.S), uint32_t(sh.P), uint32_t(sh.C)};
        REQUIRE(ops::mix_batch_fits(test::ctx(), shape));
        vk::Recorder rec(test::ctx());
        ops::mix_batch(rec, d_images.view(), d_mixes.view(), shape);
        rec.submit_and_wait();
        // CutMix copies values: exact. Mixup's two products may be fused by the shader compiler: a
        // rounding of values in [-1, 1].
        const double atol = switch_prob == 1.0 ? 0.0 : 2.4e-7;
        test::require_close(d_images.read(), test::to_double(host), atol, 0.0, "mix_batch");
      }
  CHECK(test::ctx().validation_errors() == 0);
  // A batch beyond one binding (or 32-bit indices) is left to the host.
  CHECK_FALSE(ops::mix_batch_fits(test::ctx(), ops::MixBatchShape{1u << 16, 224, 16, 3}));
}

TEST_CASE("the trainer mixes on the GPU for GPUs and on the host for CPU drivers", "[mixup]") {
  const ops::MixBatchShape demo{64, 28, 14, 1};
  for (const test::DescribedDevice& d : test::described_devices()) {
    INFO(d.key);
    test::ScopedKernelDevice described(d.info);
    CHECK(ops::mix_batch_on_gpu(test::ctx(), demo) == !d.info.is_cpu_driver());
  }
  CHECK_FALSE(ops::mix_batch_on_gpu(test::ctx(), ops::MixBatchShape{1u << 16, 224, 16, 3}));
}

// The trainer's GPU path end to end: this device described as a discrete GPU (so the pass runs
// here), a batch uploaded to the model's input, TrainStep::record_mix and the step. The input
// after the step is the host mix of the batch, and the step's loss is the two-label loss of its
// logits with the draws' partners and lambdas.
TEST_CASE("TrainStep::record_mix on a GPU mixes the uploaded batch and trains on its soft targets", "[mixup][gpu]") {
  vk::DeviceInfo gpu = test::ctx().info();
  gpu.type = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
  gpu.name = gpu.driver_name = "a discrete GPU";
  test::ScopedKernelDevice as_gpu(gpu);
  model::VitConfig cfg;
  cfg.image_size = 12;
  cfg.patch_size = 4;
  cfg.in_chans = 2;
  cfg.dim = 16;
  cfg.depth = 1;
  cfg.heads = 2;
  cfg.mlp_dim = 32;
  cfg.num_classes = 5;
  const uint32_t B = 7;
  const PatchGeometry g{cfg.image_size, cfg.patch_size, cfg.in_chans};
  REQUIRE(ops::mix_batch_on_gpu(test::ctx(), ops::MixBatchShape{B, 12, 4, 2}));
  model::Vit vit(test::ctx(), cfg, B, false);
  vit.init(3);
  train::TrainStep step(test::ctx(), vit, B);
  const std::vector<float> batch = test::random_floats(B * g.floats(), 31);
  const std::vector<uint32_t> labels = {0, 1, 2, 3, 4, 0, 2};
  test::ctx().upload(vit.patches_input(), batch.data(), batch.size() * 4);
  test::ctx().upload(step.labels(), labels.data(), B * 4);
  MixupParams p = both(MixMode::elem);
  const BatchMixer mixer(p, g, 5, 0);
  std::vector<float> unused_staging = batch;  // the host path's; the GPU path leaves it alone
  vk::Recorder rec(test::ctx());
  step.record_mix(rec, mixer, unused_staging.data(), labels, B, 9);
  ops::AdamWHyper hyper;
  hyper.lr = 0.0;
  step.record(rec, B, hyper, 1, 0.1f, 0.0f);
  rec.submit_and_wait();
  CHECK(unused_staging == batch);

  std::vector<float> expect = batch;
  const std::vector<SampleMix> mixes = mixer.draw(B, 9);
  mix_patches(expect.data(), B, g, mixes);
  std::vector<float> mixed(batch.size());
  test::ctx().download(vit.patches_input(), mixed.data(), mixed.size() * 4);
  test::require_close(mixed, test::to_double(expect), 2.4e-7, 0.0, "mixed input");

  std::vector<float> logits(B * 5);
  test::ctx().download(vit.logits(), logits.data(), logits.size() * 4);
  const MixTargets t = mix_targets(labels, B, mixes);
  const auto xd = test::to_double(logits), lam = test::to_double(t.lam);
  std::vector<double> losses(B);
  const double expect_loss = ops::ref::cross_entropy_forward_mixed(losses.data(), xd.data(), labels.data(),
                                                                   t.labels_b.data(), lam.data(), B, 5, 0.1);
  float loss = 0;
  test::ctx().download(step.loss(), &loss, 4);
  CHECK(loss == Approx(expect_loss).epsilon(1e-5));
  CHECK(test::ctx().validation_errors() == 0);
}

TEST_CASE("mix targets are the partner label and lambda, and the mixer is a function of seed, step and rank", "[mixup]") {
  std::vector<SampleMix> mixes(5);
  mixes[1].kind = SampleMix::mixup;
  mixes[1].lam = 0.25f;
  const MixTargets t = mix_targets({10, 11, 12, 13, 14}, 5, mixes);
  CHECK(t.labels_b == std::vector<uint32_t>{14, 13, 12, 11, 10});
  CHECK(t.lam == std::vector<float>{1, 0.25f, 1, 1, 1});

  const PatchGeometry g{8, 4, 1};
  const std::vector<float> images = test::random_floats(6 * g.floats(), 9);
  const std::vector<uint32_t> labels = {0, 1, 2, 3, 4, 5};
  auto run = [&](uint64_t seed, uint64_t step, uint64_t rank) {
    std::vector<float> x = images;
    const MixTargets targets = BatchMixer(both(MixMode::elem), g, seed, rank).mix(x.data(), labels, 6, step);
    return std::make_pair(x, targets.lam);
  };
  CHECK(run(1, 5, 0) == run(1, 5, 0));
  CHECK(run(1, 5, 0) != run(1, 6, 0));
  CHECK(run(1, 5, 0) != run(1, 5, 1));
  CHECK(run(1, 5, 0) != run(2, 5, 0));
}

// End to end: train.mixup 0.8 and train.cutmix 1.0 from the command line, written into the run's
// config; the steps' losses differ from a run without (the soft-target loss is in use), and
// --resume retraces the uninterrupted run's steps (the draws are keyed by seed and step).
TEST_CASE("vkvit train --mixup --cutmix trains, records the keys and resumes step for step", "[mixup][cli]") {
  using namespace vkvit::test;
  TempDir dir("mixup_cli");
  const std::filesystem::path data = dir.path / "data", config = dir.path / "tiny.yaml";
  write_stripe_dataset(data, 8, 2, 78, 0);  // 32 train images: 2 steps of 16 per epoch
  write_file(config, tiny_stripes_config_yaml(2));
  const std::string base = "train --config " + q(config) + " --data-dir " + q(data) + " -q";
  const std::string mix = " --mixup 0.8 --cutmix 1.0 --set train.mixup_mode=elem";
  CliRun whole = run_cli(base + mix + " --max-steps 3 --output " + q(dir.path / "whole"));
  INFO(whole.out << whole.err);
  REQUIRE(whole.status == 0);
  CHECK_THAT(whole.err, !Contains("validation:"));  // under VKVIT_VALIDATION=1 the child reports errors there
  const std::string saved = read_file(dir.path / "whole/config.yaml");
  CHECK_THAT(saved, Contains("mixup: 0.8") && Contains("cutmix: 1") && Contains("mixup_prob: 1") &&
                        Contains("mixup_switch_prob: 0.5") && Contains("mixup_mode: elem"));

  CliRun first = run_cli(base + mix + " --max-steps 1 --output " + q(dir.path / "resumed"));
  REQUIRE(first.status == 0);
  CliRun second = run_cli(base + mix + " --max-steps 3 --resume " + q(dir.path / "resumed/last.safetensors"));
  INFO(second.out << second.err);
  REQUIRE(second.status == 0);
  CliRun plain = run_cli(base + " --max-steps 3 --output " + q(dir.path / "plain"));
  REQUIRE(plain.status == 0);

  const std::string whole_steps = read_file(dir.path / "whole/steps.csv");
  CHECK(read_file(dir.path / "resumed/steps.csv") == whole_steps);
  // Step 1 starts from the same weights on the same images: only the mixing makes it differ.
  CHECK(read_file(dir.path / "plain/steps.csv") != whole_steps);

  CliRun bad = run_cli(base + " --max-steps 1 --set train.mixup_mode=half --output " + q(dir.path / "bad"));
  CHECK(bad.status != 0);
  CHECK_THAT(bad.err, Contains("train.mixup_mode"));
}

// The cost of mixing one batch, on the host and with the GPU pass (whose time includes a
// submission and wait): the demo config (fmnist_vit_tiny.yaml: 28 x 28, patch 14, one channel,
// batch 64) and DeiT-S's ImageNet batch (224 x 224, patch 16, three channels, batch 128).
// Hidden: run with "[.mixup-bench]".
TEST_CASE("mixup and CutMix cost per batch on the host and on the GPU", "[.mixup-bench]") {
  struct Shape {
    const char* name;
    PatchGeometry g;
    uint32_t B;
  };
  for (const Shape& s : {Shape{"fmnist_vit_tiny", {28, 14, 1}, 64}, Shape{"imagenet_vit_s16", {224, 16, 3}, 128}}) {
    std::vector<float> batch = test::random_floats(s.B * s.g.floats(), 1);
    const std::vector<uint32_t> labels(s.B, 0);
    std::string line;
    for (const char* kind : {"mixup", "cutmix"}) {
      MixupParams p;
      (std::string(kind) == "mixup" ? p.mixup_alpha : p.cutmix_alpha) = 1.0;
      p.mode = MixMode::elem;
      const BatchMixer mixer(p, s.g, 1, 0);
      const int reps = s.B > 100 ? 5 : 200;
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < reps; ++i) mixer.mix(batch.data(), labels, s.B, uint64_t(i));
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
      const std::vector<uint32_t> words = encode_mixes(mixer.draw(s.B, 1));
      std::vector<float> word_bits(words.size());
      std::memcpy(word_bits.data(), words.data(), words.size() * 4);
      test::DeviceTensor d_images(batch), d_mixes(word_bits);
      const ops::MixBatchShape shape{s.B, uint32_t(s.g.image_size), uint32_t(s.g.patch_size), uint32_t(s.g.channels)};
      const auto t1 = std::chrono::steady_clock::now();
      for (int i = 0; i < reps; ++i) {
        vk::Recorder rec(test::ctx());
        ops::mix_batch(rec, d_images.view(), d_mixes.view(), shape);
        rec.submit_and_wait();
      }
      const double gpu_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count() / reps;
      line += std::string(" ") + kind + " host " + std::to_string(ms).substr(0, 6) + " ms, GPU pass " +
              std::to_string(gpu_ms).substr(0, 6) + " ms;";
    }
    WARN(s.name << " batch " << s.B << ":" << line);
  }
}

// Against a PyTorch reference that follows timm's Mixup with the draws given
// (tests/reference/make_mixup_fixtures.py, fixtures in tests/fixtures/mixup): for each mode
// (batch, pair, elem) and kind (mixup, CutMix, none), the mixed batch on the host and on the GPU,
// each image's lambda and partner label, and the soft-target cross-entropy with label smoothing
// (loss and logit gradient, on the GPU and in the double reference).

namespace {

std::string mixup_fixture(const std::string& name) { return std::string(VKVIT_SOURCE_DIR) + "/tests/fixtures/mixup/" + name; }

struct Reference {
  nlohmann::json meta;
  model::SafeTensors tensors;
  int B = 0, C = 0, H = 0, K = 0;
  const std::vector<float>& at(const std::string& name) const {
    const model::Tensor* t = tensors.find(name);
    REQUIRE(t != nullptr);
    return t->data;
  }
};

const Reference& reference() {
  static const Reference r = [] {
    Reference ref;
    std::ifstream in(mixup_fixture("cases.json"));
    ref.meta = nlohmann::json::parse(in);
    ref.tensors = model::read_safetensors(mixup_fixture("mixup.safetensors"));
    ref.B = ref.meta["B"], ref.C = ref.meta["C"], ref.H = ref.meta["H"], ref.K = ref.meta["K"];
    return ref;
  }();
  return r;
}

// The reference's (B, C, H, W) images are cut into 4 x 4 patches (a 3 x 3 grid of 12 px images).
constexpr int kRefPatch = 4;

// The case's draws as vkvit's per-image SampleMix (pair: image B-1-k shares draw k).
std::vector<SampleMix> mixes_of(const nlohmann::json& c, int B, int H) {
  const nlohmann::json& draws = c["draws"];
  std::vector<SampleMix> out;
  for (int i = 0; i < B; ++i) {
    const std::string mode = c["mode"];
    const nlohmann::json& d = mode == "batch" ? draws[0] : mode == "elem" ? draws[i] : draws[i < B / 2 ? i : B - 1 - i];
    SampleMix m;
    const std::string kind = d["kind"];
    if (kind == "mixup") {
      m.kind = SampleMix::mixup;
      m.lam = d["lam"].get<float>();
    } else if (kind == "cutmix") {
      m.kind = SampleMix::cutmix;
      m.box = CutBox{d["box"][0], d["box"][1], d["box"][2], d["box"][3]};
      m.lam = float(1.0 - double(m.box.area()) / (double(H) * H));  // correct_lam, as draw_mixes sets it
    }
    out.push_back(m);
  }
  return out;
}

}  // namespace

TEST_CASE("Mixup and CutMix mix the batch as timm's Mixup does with the same draws", "[mixup]") {
  const Reference& r = reference();
  const std::vector<float> images = patchify_all(r.at("images"), uint32_t(r.B), r.C, r.H, kRefPatch);
  for (const nlohmann::json& c : r.meta["cases"]) {
    const std::string name = c["name"];
    INFO(name);
    const std::vector<SampleMix> mixes = mixes_of(c, r.B, r.H);
    std::vector<float> mixed = images;
    mix_patches(mixed.data(), uint32_t(r.B), PatchGeometry{r.H, kRefPatch, r.C}, mixes);
    // float32 products as torch's: lam x_i + (1 - lam) x_j; copies are exact.
    test::require_close(mixed, test::to_double(patchify_all(r.at(name + ".mixed"), uint32_t(r.B), r.C, r.H, kRefPatch)), 1.2e-7, 0.0,
                        name + " mixed batch");

    std::vector<uint32_t> labels;
    for (float v : r.at("labels")) labels.push_back(uint32_t(v));
    const MixTargets t = mix_targets(labels, uint32_t(r.B), mixes);
    test::require_close(t.lam, test::to_double(r.at(name + ".lam")), 1e-7, 0.0, name + " lambda");
    for (int i = 0; i < r.B; ++i) CHECK(t.labels_b[size_t(i)] == labels[size_t(r.B - 1 - i)]);
  }
}

TEST_CASE("mix_batch on the GPU mixes as timm's Mixup does with the same draws", "[mixup][gpu]") {
  const Reference& r = reference();
  const std::vector<float> images = patchify_all(r.at("images"), uint32_t(r.B), r.C, r.H, kRefPatch);
  for (const nlohmann::json& c : r.meta["cases"]) {
    const std::string name = c["name"];
    INFO(name);
    const std::vector<uint32_t> words = encode_mixes(mixes_of(c, r.B, r.H));
    std::vector<float> word_bits(words.size());
    std::memcpy(word_bits.data(), words.data(), words.size() * 4);
    test::DeviceTensor d_images(images), d_mixes(word_bits);
    vk::Recorder rec(test::ctx());
    ops::mix_batch(rec, d_images.view(), d_mixes.view(),
                   ops::MixBatchShape{uint32_t(r.B), uint32_t(r.H), uint32_t(kRefPatch), uint32_t(r.C)});
    rec.submit_and_wait();
    // The shader may fuse mixup's multiply-add: one more rounding of values in [-1, 1].
    test::require_close(d_images.read(), test::to_double(patchify_all(r.at(name + ".mixed"), uint32_t(r.B), r.C, r.H, kRefPatch)),
                        2.4e-7, 0.0, name + " mixed batch on the GPU");
  }
  CHECK(test::ctx().validation_errors() == 0);
}

TEST_CASE("the two-label cross-entropy equals timm's SoftTargetCrossEntropy on mixed smoothed targets",
          "[mixup][cross_entropy][gpu]") {
  const Reference& r = reference();
  const uint32_t B = uint32_t(r.B), K = uint32_t(r.K);
  const float eps = r.meta["label_smoothing"].get<float>();
  std::vector<uint32_t> labels;
  for (float v : r.at("labels")) labels.push_back(uint32_t(v));
  const std::vector<float>& logits = r.at("logits");
  auto bits = [](const std::vector<uint32_t>& u) {
    std::vector<float> f(u.size());
    std::memcpy(f.data(), u.data(), u.size() * 4);
    return f;
  };
  for (const nlohmann::json& c : r.meta["cases"]) {
    const std::string name = c["name"];
    INFO(name);
    const MixTargets t = mix_targets(labels, B, mixes_of(c, r.B, r.H));
    // The double reference.
    std::vector<double> losses(B), dlogits(size_t(B) * K, 0.0);
    const auto xd = test::to_double(logits), lam = test::to_double(t.lam);
    const double ref_loss = ops::ref::cross_entropy_forward_mixed(losses.data(), xd.data(), labels.data(),
                                                                  t.labels_b.data(), lam.data(), B, K, eps);
    ops::ref::cross_entropy_backward_mixed(dlogits.data(), xd.data(), labels.data(), t.labels_b.data(), lam.data(), 1.0,
                                           B, K, eps);
    CHECK(ref_loss == Approx(r.at(name + ".loss")[0]).epsilon(1e-6));
    test::require_close(test::to_float(dlogits), test::to_double(r.at(name + ".dlogits")), 1e-7, 1e-6,
                        name + " reference dlogits");
    // The GPU op.
    test::DeviceTensor d_losses(B), d_loss(1), d_correct(B), d_lse(B), d_dlogits(size_t(B) * K), d_logits(logits),
        d_labels(bits(labels)), d_labels_b(bits(t.labels_b)), d_lam(t.lam), d_dloss(std::vector<float>{1.0f});
    vk::Recorder rec(test::ctx());
    ops::cross_entropy_forward_backward(rec, d_losses.view(), d_loss.view(), d_correct.view(), d_lse.view(),
                                        d_dlogits.view(), d_logits.view(), d_labels.view(),
                                        ops::MixedLabels{d_labels_b.view(), d_lam.view()}, d_dloss.view(), B, K, eps);
    rec.submit_and_wait();
    CHECK(d_loss.read()[0] == Approx(r.at(name + ".loss")[0]).epsilon(1e-6));
    test::require_close(d_dlogits.read(), test::to_double(r.at(name + ".dlogits")), 2e-7, 1e-6, name + " dlogits");
  }
  CHECK(test::ctx().validation_errors() == 0);
}
