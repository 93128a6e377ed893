// Stochastic depth (train.drop_path): the op against its reference on odd shapes, the per-step
// draws (schedule over depth, statistics, keyed by seed, step and rank), the masked reference model
// against finite differences, the GPU model with fixed masks against the reference, exact zeros for
// dropped branches, bit-identity when nothing is dropped and at evaluation, and the CLI end to end
// with --resume.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <random>

#include "harness.h"
#include "model/vit.h"
#include "model/vit_ref.h"
#include "ops/drop_path.h"
#include "ops/matmul_f16.h"
#include "stripes.h"
#include "train/train_step.h"

using namespace vkvit;
using namespace vkvit::test;
using Catch::Matchers::Contains;
using model::ParamLayout;
using model::VitConfig;

namespace {

// 3 images of 7 tokens of width 13: per-image ranges start off every vector width and alignment;
// scales 0 (dropped), 1 / keep and 1, read from offset 2 of a longer array.
const std::vector<float> kOpScales = {9.0f, 9.0f, 1.25f, 0.0f, 1.0f, 9.0f};

TEST_CASE("drop path add and scale on the GPU match the reference on odd shapes", "[drop_path][gpu]") {
  ops::DropPathShape s;
  s.samples = 3;
  s.per_sample = 7 * 13;
  s.first_scale = 2;
  const uint64_t n = s.elements();
  const auto residual = random_floats(n, 1), branch = random_floats(n, 2), dout = random_floats(n, 3);
  DeviceTensor t_res(residual), t_branch(branch), t_dout(dout), t_scales(kOpScales), out(n), dbranch(n),
      inplace(residual);
  vk::Recorder rec(ctx());
  ops::drop_path_add(rec, out.view(), t_res.view(), t_branch.view(), t_scales.view(), s);
  ops::drop_path_add(rec, inplace.view(), inplace.view(), t_branch.view(), t_scales.view(), s);  // x = x + s f(x)
  ops::drop_path_scale(rec, dbranch.view(), t_dout.view(), t_scales.view(), s);
  rec.submit_and_wait();

  const auto scales = to_double(kOpScales);
  std::vector<double> ref_out(n), ref_dbranch(n);
  ops::ref::drop_path_add(ref_out.data(), to_double(residual).data(), to_double(branch).data(), scales.data(), s);
  ops::ref::drop_path_scale(ref_dbranch.data(), to_double(dout).data(), scales.data(), s);
  // One fp32 product and one sum: about an ulp of values below 3.
  require_close(out.read(), ref_out, 5e-7, 2e-7, "drop_path_add");
  require_close(inplace.read(), ref_out, 5e-7, 2e-7, "drop_path_add in place");
  require_close(dbranch.read(), ref_dbranch, 5e-7, 2e-7, "drop_path_scale");
  // Image 1 is dropped: its output is its residual and its branch gradient an exact zero.
  const auto got = out.read(), got_d = dbranch.read();
  for (uint64_t i = s.per_sample; i < 2 * s.per_sample; ++i) {
    REQUIRE(got[i] == residual[i]);
    REQUIRE(got_d[i] == 0.0f);
  }
}

TEST_CASE("drop path rates grow linearly over depth and the draws keep each branch with probability keep",
          "[drop_path]") {
  // torch.linspace(0, 0.3, 4) = 0, 0.1, 0.2, 0.3; one block: 0.
  CHECK(train::drop_path_prob(0.3, 0, 4) == 0.0);
  CHECK(train::drop_path_prob(0.3, 1, 4) == Approx(0.1));
  CHECK(train::drop_path_prob(0.3, 3, 4) == Approx(0.3));
  CHECK(train::drop_path_prob(0.3, 0, 1) == 0.0);

  const int depth = 4;
  const uint32_t B = 64;
  const int steps = 200;
  std::vector<uint64_t> kept(depth, 0);
  for (int step = 1; step <= steps; ++step) {
    const std::vector<float> s = train::draw_drop_path(0.3, depth, B, 11, uint64_t(step), 0);
    REQUIRE(s.size() == uint64_t(depth) * 2 * B);
    for (int l = 0; l < depth; ++l) {
      const float kept_scale = static_cast<float>(1.0 / (1.0 - train::drop_path_prob(0.3, l, depth)));
      for (uint64_t i = 0; i < 2 * B; ++i) {
        const float v = s[uint64_t(l) * 2 * B + i];
        REQUIRE((v == 0.0f || v == kept_scale));
        kept[l] += v != 0.0f;
      }
    }
  }
  const double draws = double(steps) * 2 * B;  // per block
  CHECK(kept[0] == uint64_t(draws));           // block 0 is never dropped
  for (int l = 1; l < depth; ++l) {
    const double keep = 1.0 - train::drop_path_prob(0.3, l, depth);
    const double sigma = std::sqrt(draws * keep * (1 - keep));
    INFO("block " << l << " kept " << kept[l] << " of " << draws << ", expected " << draws * keep);
    CHECK(std::abs(double(kept[l]) - draws * keep) < 4 * sigma);
  }
  // A function of (seed, step, rank) only.
  const auto draw = [](uint64_t seed, uint64_t step, uint64_t rank) {
    return train::draw_drop_path(0.3, 4, 16, seed, step, rank);
  };
  CHECK(draw(1, 5, 0) == draw(1, 5, 0));
  CHECK(draw(1, 5, 0) != draw(1, 6, 0));
  CHECK(draw(1, 5, 0) != draw(1, 5, 1));
  CHECK(draw(1, 5, 0) != draw(2, 5, 0));
}

// Image 8, patch 4 (4 patches + cls: 5 tokens), 2 channels, width 12 in 3 heads, 3 blocks, MLP 20.
VitConfig tiny_config(const std::string& mixer = "attention") {
  VitConfig c;
  c.name = "vit_test_drop_path";
  c.image_size = 8, c.patch_size = 4, c.in_chans = 2, c.dim = 12, c.depth = 3, c.heads = 3, c.mlp_dim = 20;
  c.num_classes = 5;
  c.mixer = mixer;
  if (mixer != "attention") c.image_size = 12, c.pool = "mean";  // a 3 x 3 grid; no cls token mixing
  return c;
}

// 10 tokens of width 15 (heads of 5), MLP 19, 7 classes: nothing divides a vector width.
VitConfig odd_config() {
  VitConfig c;
  c.name = "vit_test_drop_path_odd";
  c.image_size = 12, c.patch_size = 4, c.in_chans = 1, c.dim = 15, c.depth = 2, c.heads = 3, c.mlp_dim = 19;
  c.num_classes = 7;
  c.pool = "mean";
  return c;
}

// Fixed masks for B images: every branch of block 0 kept at scale 1; the others mix dropped (0)
// and kept (1 / 0.8) images, each branch with at least one of each when B >= 2.
std::vector<float> fixed_scales(int depth, uint32_t B) {
  std::vector<float> s(uint64_t(depth) * 2 * B, 1.0f);
  for (int l = 1; l < depth; ++l)
    for (int branch = 0; branch < 2; ++branch)
      for (uint32_t b = 0; b < B; ++b) s[(2 * l + branch) * B + b] = (b + l + branch) % 2 ? 1.25f : 0.0f;
  return s;
}

std::vector<double> slice(const std::vector<double>& flat, const model::ParamInfo& p) {
  return {flat.begin() + p.offset, flat.begin() + p.offset + p.count};
}
std::vector<float> slice(const std::vector<float>& flat, const model::ParamInfo& p) {
  return {flat.begin() + p.offset, flat.begin() + p.offset + p.count};
}

}  // namespace

TEST_CASE("the masked reference model's gradients match finite differences", "[drop_path][ref]") {
  for (const std::string mixer : {"attention", "global_filter", "attention post-norm"}) {
    INFO("mixer " << mixer);
    VitConfig cfg = tiny_config(mixer == "global_filter" ? mixer : "attention");
    if (mixer == "attention post-norm") cfg.norm = "post";
    model::VitRef ref(cfg);
    const ParamLayout& L = ref.layout();
    const uint32_t B = 3;
    const auto params = to_double(random_params(L, 300));
    const auto patches = to_double(random_floats(B * cfg.num_patches() * cfg.patch_dim(), 301));
    const auto w = to_double(random_floats(B * cfg.num_classes, 302));  // loss = sum(logits * w)
    const auto scales = to_double(fixed_scales(cfg.depth, B));
    ref.forward(params, patches, B, scales);
    std::vector<double> grads(L.total_floats(), 0.0);
    ref.backward(params, w, grads);

    std::mt19937 rng(303);
    std::vector<double> analytic, numeric;
    model::VitRef probe(cfg);
    for (const model::ParamInfo& p : L.params())
      for (int k = 0; k < 2; ++k) {
        const uint64_t i = p.offset + rng() % p.count;
        auto x = params;
        const double eps = 1e-5;
        x[i] = params[i] + eps;
        const double fp = dot(probe.forward(x, patches, B, scales), w);
        x[i] = params[i] - eps;
        const double fm = dot(probe.forward(x, patches, B, scales), w);
        analytic.push_back(grads[i]);
        numeric.push_back((fp - fm) / (2 * eps));
      }
    // As the unmasked reference's check: central differences in double, errors ~1e-10.
    require_gradient_close(analytic, numeric, 1e-8, 1e-6, "masked vit reference gradient, " + mixer);
  }
}

namespace {

struct GpuRun {
  std::vector<float> logits, grads, eval_logits;
};

// Forward (with `scales` when given) and backward of B images on the GPU; then an evaluation
// forward after setting the same scales again, which must ignore them.
GpuRun run_gpu(model::Vit& vit, const std::vector<float>& params, const std::vector<float>& patches,
               const std::vector<float>& dlogits, uint32_t B, const std::vector<float>* scales) {
  const uint64_t K = vit.config().num_classes;
  vit.write_params(params);
  ctx().upload(vit.patches_input(), patches.data(), patches.size() * 4);
  DeviceTensor d_dlogits(dlogits);
  GpuRun r;
  {
    vk::Recorder rec(ctx());
    rec.fill(vit.grads_view(), 0.0f);
    if (scales) vit.set_drop_path(rec, *scales, B);
    vit.forward(rec, B);
    vit.backward(rec, B, d_dlogits.view());
    rec.submit_and_wait();
  }
  r.logits.resize(B * K);
  ctx().download(vit.logits(), r.logits.data(), r.logits.size() * 4);
  r.grads = vit.read_grads();
  {
    vk::Recorder rec(ctx());
    if (scales) vit.set_drop_path(rec, *scales, B);
    vit.forward(rec, B, /*for_backward=*/false);
    rec.submit_and_wait();
  }
  r.eval_logits.resize(B * K);
  ctx().download(vit.logits(), r.eval_logits.data(), r.eval_logits.size() * 4);
  return r;
}

// The logits of an evaluation forward without drop path.
std::vector<float> plain_eval_logits(model::Vit& vit, const std::vector<float>& params, const std::vector<float>& patches,
                                    const std::vector<float>& dlogits, uint32_t B) {
  return run_gpu(vit, params, patches, dlogits, B, nullptr).eval_logits;
}

void check_masked_vit_gpu(const VitConfig& cfg, uint32_t max_batch, uint32_t B, uint32_t seed) {
  model::Vit vit(ctx(), cfg, max_batch);
  const ParamLayout& L = vit.layout();
  const auto params = random_params(L, seed);
  const auto patches = random_floats(B * cfg.num_patches() * cfg.patch_dim(), seed + 1);
  const auto dlogits = random_floats(B * cfg.num_classes, seed + 2);
  const std::vector<float> scales = fixed_scales(cfg.depth, B);
  const GpuRun plain = run_gpu(vit, params, patches, dlogits, B, nullptr);
  const GpuRun masked = run_gpu(vit, params, patches, dlogits, B, &scales);

  model::VitRef ref(cfg);
  const auto pd = to_double(params);
  const auto ref_logits = ref.forward(pd, to_double(patches), B, to_double(scales));
  std::vector<double> ref_grads(L.total_floats(), 0.0);
  ref.backward(pd, to_double(dlogits), ref_grads);
  // The unmasked model's budget (test_vit.cpp): the masks add one fp32 product per element.
  require_close(masked.logits, ref_logits, 5e-6, 1e-5, cfg.name + " masked logits");
  for (const model::ParamInfo& p : L.params())
    require_close(slice(masked.grads, p), slice(ref_grads, p), 5e-6, 1e-5, cfg.name + " masked d" + p.name);
  // The masks change the result; evaluation ignores them, bit for bit.
  CHECK(masked.logits != plain.logits);
  CHECK(masked.eval_logits == plain.logits);
  CHECK(plain.eval_logits == plain.logits);
}

}  // namespace

TEST_CASE("vit with fixed drop path masks on the GPU matches the masked reference", "[drop_path][gpu]") {
  SECTION("attention, batch 3 of 4") { check_masked_vit_gpu(tiny_config(), 4, 3, 400); }
  SECTION("odd widths, mean pool, batch 3 of 3") { check_masked_vit_gpu(odd_config(), 3, 3, 410); }
  SECTION("global filter") { check_masked_vit_gpu(tiny_config("global_filter"), 2, 2, 420); }
  SECTION("post-norm blocks") {
    VitConfig cfg = tiny_config();
    cfg.norm = "post";
    check_masked_vit_gpu(cfg, 3, 3, 430);
  }
}

TEST_CASE("drop path: all-ones scales are the model without it, and a dropped branch's gradients are exact zeros",
          "[drop_path][gpu]") {
  const VitConfig cfg = tiny_config();
  const uint32_t B = 2;
  model::Vit vit(ctx(), cfg, B);
  const ParamLayout& L = vit.layout();
  const auto params = random_params(L, 500);
  const auto patches = random_floats(B * cfg.num_patches() * cfg.patch_dim(), 501);
  const auto dlogits = random_floats(B * cfg.num_classes, 502);
  const GpuRun plain = run_gpu(vit, params, patches, dlogits, B, nullptr);

  // Every scale 1 (what train.drop_path 0 would mean): the fused residual adds, bit for bit.
  const std::vector<float> ones(uint64_t(cfg.depth) * 2 * B, 1.0f);
  const GpuRun with_ones = run_gpu(vit, params, patches, dlogits, B, &ones);
  CHECK(with_ones.logits == plain.logits);
  CHECK(with_ones.grads == plain.grads);

  // Block 2's MLP dropped for both images, its attention for image 0 only.
  std::vector<float> scales = ones;
  scales[(2 * 2 + 1) * B + 0] = scales[(2 * 2 + 1) * B + 1] = 0.0f;
  scales[(2 * 2 + 0) * B + 0] = 0.0f;
  scales[(2 * 2 + 0) * B + 1] = 2.0f;
  const GpuRun dropped = run_gpu(vit, params, patches, dlogits, B, &scales);
  for (const char* name : {"blocks.2.mlp.fc1.weight", "blocks.2.mlp.fc1.bias", "blocks.2.mlp.fc2.weight",
                           "blocks.2.mlp.fc2.bias", "blocks.2.norm2.weight", "blocks.2.norm2.bias"}) {
    INFO(name);
    const auto g = slice(dropped.grads, L.at(name));
    CHECK(std::all_of(g.begin(), g.end(), [](float v) { return v == 0.0f; }));
  }
  const auto qkv = slice(dropped.grads, L.at("blocks.2.attn.qkv.weight"));
  CHECK(std::any_of(qkv.begin(), qkv.end(), [](float v) { return v != 0.0f; }));  // image 1 still trains it
}

TEST_CASE("drop path under mixed precision stays within fp16 tolerance of fp32", "[drop_path][gpu][fp16]") {
  const std::string why = ops::matmul_f16_unsupported(ctx(), ops::MatmulOut::f32);
  if (!why.empty()) {
    skipped_because(why);
    return;
  }
  const VitConfig cfg = tiny_config();
  const uint32_t B = 3;
  const auto params = random_params(model::vit_param_layout(cfg), 700);
  const auto patches = random_floats(B * cfg.num_patches() * cfg.patch_dim(), 701);
  const auto dlogits = random_floats(B * cfg.num_classes, 702);
  const std::vector<float> scales = fixed_scales(cfg.depth, B);
  model::Vit f32(ctx(), cfg, B), f16(ctx(), cfg, B, /*amp=*/true);
  const GpuRun want = run_gpu(f32, params, patches, dlogits, B, &scales);
  const GpuRun got = run_gpu(f16, params, patches, dlogits, B, &scales);
  auto rel_error = [](const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) num += double(a[i] - b[i]) * (a[i] - b[i]), den += double(b[i]) * b[i];
    return std::sqrt(num / std::max(den, 1e-30));
  };
  // fp16 operands: as tests/test_amp.cpp's budget (logits within 5e-3, gradients 1.5e-2 relative).
  INFO("logits rel " << rel_error(got.logits, want.logits) << ", gradients rel " << rel_error(got.grads, want.grads));
  CHECK(rel_error(got.logits, want.logits) < 5e-3);
  CHECK(rel_error(got.logits, want.logits) > 1e-6);  // the fp16 path did round
  CHECK(rel_error(got.grads, want.grads) < 1.5e-2);
  CHECK(got.eval_logits == plain_eval_logits(f16, params, patches, dlogits, B));
}

TEST_CASE("TrainStep with drop path 0 records the step without it, bit for bit", "[drop_path][gpu]") {
  const VitConfig cfg = tiny_config();
  const uint32_t B = 3;
  const auto params = random_params(model::vit_param_layout(cfg), 600);
  const auto patches = random_floats(B * cfg.num_patches() * cfg.patch_dim(), 601);
  const std::vector<uint32_t> labels = {0, 3, 4};
  auto step_params = [&](double rate) {
    model::Vit vit(ctx(), cfg, B);
    train::TrainStep step(ctx(), vit, B);
    vit.write_params(params);
    ctx().upload(vit.patches_input(), patches.data(), patches.size() * 4);
    ctx().upload(step.labels(), labels.data(), labels.size() * 4);
    vk::Recorder rec(ctx());
    if (rate >= 0) step.record_drop_path(rec, rate, 7, 0, B, 1);
    ops::AdamWHyper hyper;
    step.record(rec, B, hyper, 1, 0.1f, 0.0f);
    rec.submit_and_wait();
    return vit.read_params();
  };
  const auto without = step_params(-1);
  CHECK(step_params(0.0) == without);
  CHECK(step_params(0.5) != without);
}

// End to end: --drop-path from the command line, written into the run's config; a run that stops
// after step 1 and resumes retraces the uninterrupted run (the masks are keyed by seed and step);
// the steps differ from a run without drop path.
TEST_CASE("vkvit train --drop-path trains, records the key and resumes step for step", "[drop_path][cli]") {
  TempDir dir("drop_path_cli");
  const std::filesystem::path data = dir.path / "data", config = dir.path / "tiny.yaml";
  write_stripe_dataset(data, 8, 2, 78, 0);  // 32 train images: 2 steps of 16 per epoch
  write_file(config, tiny_stripes_config_yaml(2));
  // Two blocks: block 1 drops each branch of each image with probability 0.1.
  const std::string base = "train --config " + q(config) + " --data-dir " + q(data) + " -q --set model.depth=2";
  const std::string drop = " --drop-path 0.1";
  CliRun whole = run_cli(base + drop + " --max-steps 3 --output " + q(dir.path / "whole"));
  INFO(whole.out << whole.err);
  REQUIRE(whole.status == 0);
  CHECK_THAT(whole.err, !Contains("validation:"));
  CHECK_THAT(read_file(dir.path / "whole/config.yaml"), Contains("drop_path: 0.1"));

  CliRun first = run_cli(base + drop + " --max-steps 1 --output " + q(dir.path / "resumed"));
  REQUIRE(first.status == 0);
  CliRun second = run_cli(base + drop + " --max-steps 3 --resume " + q(dir.path / "resumed/last.safetensors"));
  INFO(second.out << second.err);
  REQUIRE(second.status == 0);
  CliRun plain = run_cli(base + " --max-steps 3 --output " + q(dir.path / "plain"));
  REQUIRE(plain.status == 0);
  const std::string whole_steps = read_file(dir.path / "whole/steps.csv");
  CHECK(read_file(dir.path / "resumed/steps.csv") == whole_steps);
  CHECK(read_file(dir.path / "plain/steps.csv") != whole_steps);

  CliRun bad = run_cli(base + " --max-steps 1 --set train.drop_path=1.5 --output " + q(dir.path / "bad"));
  CHECK(bad.status != 0);
  CHECK_THAT(bad.err, Contains("train.drop_path"));
}

#ifdef VKVIT_MPIEXEC
// Two data-parallel ranks, each drawing its own images' masks (keyed by seed, step and rank): a
// run stopped after step 2 and resumed on two ranks retraces the uninterrupted two-rank run, and
// differs from the two-rank run without drop path.
TEST_CASE("two ranks with drop path resume step for step", "[drop_path][mpi][cli]") {
  TempDir dir("drop_path_mpi");
  const std::filesystem::path data = dir.path / "data", config = dir.path / "tiny.yaml";
  write_stripe_dataset(data, 8, 2, 78, 0);  // 32 train images: 2 steps of 2 x 8 per epoch
  write_file(config, tiny_stripes_config_yaml(2));
  const std::string vkvit = std::string(VKVIT_BINARY) + " train --config " + q(config) + " --data-dir " + q(data) +
                            " -q -b 8 --set model.depth=2";
  const std::string drop = " --drop-path 0.1";
  auto ranks2 = [&](const std::string& args) {
    const CliRun r = mpirun("-np 2 " + vkvit + args);
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
  };
  ranks2(drop + " --max-steps 4 --output " + q(dir.path / "whole"));
  ranks2(drop + " --max-steps 2 --output " + q(dir.path / "resumed"));
  ranks2(drop + " --max-steps 4 --resume " + q(dir.path / "resumed/last.safetensors"));
  ranks2(" --max-steps 4 --output " + q(dir.path / "plain"));
  const std::string whole_steps = read_file(dir.path / "whole/steps.csv");
  CHECK(read_file(dir.path / "resumed/steps.csv") == whole_steps);
  CHECK(read_file(dir.path / "plain/steps.csv") != whole_steps);
}
#endif

// The cost of drop path in a training step: forward + backward with every branch of blocks 1.. on
// the separate pass (scales 0 or 1 / keep), against the same step without drop path (the fused
// residual adds). VKVIT_DROP_PATH_BENCH_MODEL / _BATCH pick the shape. Hidden: "[.drop-path-bench]".
TEST_CASE("drop path cost in a forward and backward", "[.drop-path-bench]") {
  const char* model_env = std::getenv("VKVIT_DROP_PATH_BENCH_MODEL");
  const char* batch_env = std::getenv("VKVIT_DROP_PATH_BENCH_BATCH");
  const VitConfig cfg = VitConfig::preset(model_env ? model_env : "vit_fmnist_tiny");
  const uint32_t B = batch_env ? static_cast<uint32_t>(std::atoi(batch_env)) : 64;
  model::Vit vit(ctx(), cfg, B);
  vit.init(1);
  const auto patches = random_floats(uint64_t(B) * cfg.num_patches() * cfg.patch_dim(), 5);
  ctx().upload(vit.patches_input(), patches.data(), patches.size() * 4);
  DeviceTensor dlogits(random_floats(uint64_t(B) * cfg.num_classes, 6));
  const std::vector<float> scales = train::draw_drop_path(0.1, cfg.depth, B, 1, 1, 0);
  auto time_ms = [&](bool drop) {
    vk::Recorder rec(ctx());
    const auto t0 = std::chrono::steady_clock::now();
    if (drop) vit.set_drop_path(rec, scales, B);
    vit.forward(rec, B);
    rec.fill(vit.grads_view(), 0.0f);
    vit.backward(rec, B, dlogits.view());
    rec.submit_and_wait();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  time_ms(false), time_ms(true);  // the first runs build pipelines
  // Interleaved, the best of each: the host may be busy with other work.
  double off = 1e30, on = 1e30;
  for (int rep = 0; rep < 8; ++rep) off = std::min(off, time_ms(false)), on = std::min(on, time_ms(true));
  WARN(cfg.name << " batch " << B << ": forward + backward " << off << " ms without drop path, " << on
                << " ms with drop path 0.1 (separate passes on blocks 1.." << cfg.depth - 1 << ")");
}
