// GPU guards (README "How it works", bad inputs 19-21): non-finite steps, out of device memory and a lost
// device, each forced on the real path through the fault-injection variables of src/vk/fault.h
// and checked through the CLI (one clear line, a defined exit code, a checkpoint that loads and
// resumes); and work too large for one binding or one dispatch dimension, checked against the
// same work done in pieces that fit.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "harness.h"
#include "model/safetensors.h"
#include "model/vit.h"
#include "ops/layernorm.h"
#include "ops/matmul.h"
#include "stripes.h"
#include "train/checkpoint.h"
#include "train/config.h"

using namespace vkvit;
using namespace vkvit::test;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

// The fault variables are set (ScopedEnv) only around CLI runs: the test process itself never
// reads them while one is set (it only starts the vkvit binary), so its own once-read fault
// switches stay off.

// A stripes dataset (16 train + 8 val images per class: 4 steps per epoch at batch 16) and its
// tiny run config, in a temp folder.
struct TinyRun {
  TempDir dir;
  fs::path config;
  explicit TinyRun(const std::string& tag, int epochs) : dir("guards-" + tag) {
    write_stripe_dataset(dir.path / "data", 16, 8, 99, 3);
    config = dir.path / "tiny.yaml";
    write_file(config, tiny_stripes_config_yaml(epochs, (dir.path / "data").string()));
  }
  std::string train_args(const fs::path& out) const {
    return "train --config " + shell_quote(config) + " --output " + shell_quote(out);
  }
};

// Every tensor of a checkpoint is finite (and it parses: this is what --resume and eval load).
bool all_finite(const fs::path& checkpoint) {
  const model::SafeTensors st = model::read_safetensors(checkpoint.string());
  for (const auto& t : st.tensors)
    for (float v : t.data)
      if (!std::isfinite(v)) return false;
  return !st.tensors.empty();
}

// The value after `key` in `text` as an unsigned integer ("use -b 23" -> 23); 0 when absent.
uint64_t number_after(const std::string& text, const std::string& key) {
  const size_t at = text.find(key);
  if (at == std::string::npos) return 0;
  return std::strtoull(text.c_str() + at + key.size(), nullptr, 10);
}

}  // namespace

TEST_CASE("train.max_nonfinite_steps is a checked config key", "[guards]") {
  const std::string base = tiny_stripes_config_yaml(1);
  CHECK(train::RunConfig::parse(base, "t.yaml").train.max_nonfinite_steps == 5);
  train::RunConfig c = train::RunConfig::parse(base + "  max_nonfinite_steps: 0\n", "t.yaml");
  CHECK(c.train.max_nonfinite_steps == 0);
  c.apply_overrides({"train.max_nonfinite_steps=12"});
  CHECK(c.train.max_nonfinite_steps == 12);
  CHECK(train::RunConfig::parse(c.to_yaml(), "t.yaml") == c);
  CHECK_THROWS_WITH(train::RunConfig::parse(base + "  max_nonfinite_steps: -1\n", "t.yaml"),
                    Contains("train.max_nonfinite_steps") && Contains("t.yaml"));
}

TEST_CASE("NaN steps injected on the GPU are skipped and too many in a row stop with the last good checkpoint",
          "[guards][gpu]") {
  TinyRun run("nan", 2);
  SECTION("isolated non-finite steps are skipped and training goes on") {
    const fs::path out = run.dir.path / "isolated";
    CliRun r;
    {
      ScopedEnv nan("VKVIT_FAULT_NAN_AT_STEP", "2,2");  // two attempts of step 2 in a row
      r = run_cli(run.train_args(out));
    }
    INFO(r.err);
    REQUIRE(r.status == 0);
    const auto skips = lines_with(r.err, "non-finite loss or gradient norm; the update was skipped");
    REQUIRE(skips.size() == 2);
    for (const auto& l : skips) CHECK_THAT(l, Contains("step 2:"));
    CHECK_THAT(skips[1], Contains("2 in a row"));
    // 8 batches, 2 skipped: 6 applied updates, every logged loss finite, the weights finite.
    const std::vector<std::string> steps = lines_of(read_file(out / "steps.csv"));
    REQUIRE(steps.size() == 1 + 6);
    for (size_t i = 1; i < steps.size(); ++i) CHECK(steps[i].find("nan") == std::string::npos);
    CHECK(train::read_checkpoint_meta((out / "last.safetensors").string()).step == 6);
    CHECK(all_finite(out / "last.safetensors"));
    // The step after a poisoned one is submitted before the poisoned one's loss is read, as the
    // retry it turns out to be: waiting for each step first (VKVIT_STEP_OVERLAP=0) gives the same
    // steps, bit for bit.
    {
      ScopedEnv nan("VKVIT_FAULT_NAN_AT_STEP", "2,2");
      ScopedEnv serial("VKVIT_STEP_OVERLAP", "0");
      r = run_cli(run.train_args(run.dir.path / "isolated-serial"));
    }
    REQUIRE(r.status == 0);
    CHECK(lines_with(r.err, "non-finite loss or gradient norm; the update was skipped").size() == 2);
    CHECK(lines_of(read_file(run.dir.path / "isolated-serial/steps.csv")) == steps);
  }
  SECTION("more than train.max_nonfinite_steps in a row stop the run with exit code 3") {
    const fs::path out = run.dir.path / "diverged";
    CliRun r;
    {
      ScopedEnv nan("VKVIT_FAULT_NAN_AT_STEP", "5,3");  // step 5 is epoch 2's first batch
      r = run_cli(run.train_args(out) + " --set train.max_nonfinite_steps=2");
    }
    INFO(r.err);
    CHECK(r.status == 3);
    CHECK(lines_with(r.err, "the update was skipped").size() == 3);
    const auto errors = lines_with(r.err, "vkvit: error:");
    REQUIRE(errors.size() == 1);
    const fs::path last = out / "last.safetensors";
    CHECK_THAT(errors[0], Contains("training diverged") && Contains("more than 2 steps in a row") &&
                              Contains("the last at step 5") && Contains(last.string()) &&
                              Contains("saved after step 4") && Contains("--resume"));
    // The checkpoint of epoch 1 is untouched by the skipped steps and loads.
    CHECK(train::read_checkpoint_meta(last.string()).step == 4);
    CHECK(all_finite(last));
  }
  SECTION("a malformed fault variable is one line naming it") {
    CliRun r;
    {
      ScopedEnv nan("VKVIT_FAULT_NAN_AT_STEP", "soon");
      r = run_cli(run.train_args(run.dir.path / "malformed"));
    }
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Contains("VKVIT_FAULT_NAN_AT_STEP='soon'"));
  }
}

namespace {
// `extra`: more train options, whose buffers the plan must count too.
void check_out_of_memory_advice(const std::string& tag, const std::string& extra) {
  INFO("options:" << extra);
  TinyRun run(tag, 1);
  // 32x32 inputs (resized stripes) in 4x4 patches: 65 tokens, so activations dominate the plan.
  const std::string model =
      " --set model.image_size=32 --set model.dim=64 --set model.heads=2 --set model.mlp_dim=128" + extra;
  model::VitConfig vc;
  vc.image_size = 32, vc.patch_size = 4, vc.in_chans = 1, vc.dim = 64, vc.depth = 1, vc.heads = 2, vc.mlp_dim = 128;
  vc.num_classes = 4;
  const uint64_t per_image = model::Vit::activation_plan(ctx(), vc, 2).first - model::Vit::activation_plan(ctx(), vc, 1).first;
  REQUIRE(per_image > 100000);
  // Room for the fixed part (parameters, staging) and about 24 images; batch 64 cannot fit.
  const uint64_t limit = (3ull << 20) + 24 * per_image;
  const std::string cap = std::to_string(limit);

  CliRun big;
  {
    ScopedEnv mem("VKVIT_FAULT_DEVICE_MEMORY_LIMIT", cap);
    big = run_cli(run.train_args(run.dir.path / "big") + model + " -b 64");
  }
  INFO(big.err);
  CHECK(big.status == 4);
  const auto errors = lines_with(big.err, "vkvit: error:");
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0], Contains("out of device memory") && Contains("batch 64") && Contains("activations") &&
                            Contains("memory heap") && Contains("per allocation") && Contains("use -b "));
  const uint64_t suggested = number_after(errors[0], "use -b ");
  REQUIRE(suggested >= 1);
  REQUIRE(suggested < 64);
  CHECK_FALSE(fs::exists(run.dir.path / "big"));  // refused before a run folder was made

  // The whole epoch (at least two steps and the evaluation, whose buffers count too) under the
  // same limit, and the peak stays within the plan the advice came from.
  CliRun fits;
  {
    ScopedEnv mem("VKVIT_FAULT_DEVICE_MEMORY_LIMIT", cap);
    ScopedEnv log("VKVIT_LOG", "info");
    fits = run_cli(run.train_args(run.dir.path / "fits") + model + " -b " + std::to_string(suggested));
  }
  INFO(fits.err);
  CHECK(fits.status == 0);
  CHECK(train::read_checkpoint_meta((run.dir.path / "fits/last.safetensors").string()).step >= 2);
  CHECK_THAT(fits.out, Contains("val top1"));
  const uint64_t peak = number_after(fits.err, "device memory: peak "), plan = number_after(fits.err, "memory plan ");
  REQUIRE(peak > 0);
  CHECK(peak <= plan);
  CHECK(plan <= limit);
}
}  // namespace

TEST_CASE("out of device memory names the buffer and the device's limits and the suggested batch trains",
          "[guards][gpu]") {
  check_out_of_memory_advice("oom", "");
  // The model EMA (a second copy of the weights), AdamW's lr-scale table and drop path's scales.
  check_out_of_memory_advice("oom-recipe", " --model-ema --layer-decay 0.75 --drop-path 0.1 --set model.depth=2");
}

TEST_CASE("activation_plan counts exactly what the model allocates", "[guards][gpu]") {
  model::VitConfig vc;
  vc.name = "vit_guards_plan";
  vc.image_size = 12, vc.patch_size = 4, vc.in_chans = 3, vc.dim = 24, vc.depth = 2, vc.heads = 3, vc.mlp_dim = 40;
  vc.num_classes = 7;
  for (uint32_t b : {1u, 5u}) {
    model::Vit vit(ctx(), vc, b);
    CHECK(model::Vit::activation_plan(ctx(), vc, b).first == vit.activation_bytes());
  }
  if (ctx().info().float16 && ctx().info().storage16) {  // train.amp adds fp16 copies of activations
    model::Vit vit(ctx(), vc, 3, /*amp=*/true);
    CHECK(model::Vit::activation_plan(ctx(), vc, 3, true).first == vit.activation_bytes());
    CHECK(vit.activation_bytes() > model::Vit::activation_plan(ctx(), vc, 3, false).first);
  }
}

TEST_CASE("a buffer over maxMemoryAllocationSize is refused naming it and the limit", "[guards][gpu]") {
  const uint64_t limit = ctx().info().max_memory_allocation_size;
  try {
    vk::Buffer b(ctx(), limit + 4096, vk::MemoryKind::device, "guards test tensor");
    FAIL("expected OutOfMemoryError");
  } catch (const OutOfMemoryError& e) {
    CHECK_THAT(std::string(e.what()), Contains("guards test tensor") && Contains("maxMemoryAllocationSize") &&
                                          Contains(vk::format_bytes(limit)));
    CHECK_THAT(e.detail(), !Contains("use a smaller batch"));
  }
}

TEST_CASE("a lost device stops training with one line naming the checkpoint that resumes", "[guards][gpu]") {
  TinyRun run("lost", 2);
  const fs::path out = run.dir.path / "run", last = out / "last.safetensors";
  CliRun lost;
  {
    ScopedEnv dev("VKVIT_FAULT_DEVICE_LOST_AT_STEP", "6");  // epoch 2's second step
    lost = run_cli(run.train_args(out));
  }
  INFO(lost.err);
  CHECK(lost.status == 5);
  const auto errors = lines_with(lost.err, "vkvit: error:");
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0], Contains("GPU was lost") && Contains("VK_ERROR_DEVICE_LOST") && Contains("during step 6") &&
                            Contains(last.string()) && Contains("saved after step 4") &&
                            Contains("--resume " + last.string()) && Contains((out / "config.yaml").string()));
  const train::CheckpointMeta meta = train::read_checkpoint_meta(last.string());
  CHECK(meta.step == 4);
  CHECK(meta.epoch == 1);
  CHECK(all_finite(last));

  // The command the line gives finishes the run, and ends where an uninterrupted run ends.
  const CliRun resumed = run_cli("train --config " + shell_quote(out / "config.yaml") + " --resume " + shell_quote(last));
  INFO(resumed.err);
  REQUIRE(resumed.status == 0);
  CHECK(train::read_checkpoint_meta(last.string()).step == 8);
  const CliRun whole = run_cli(run.train_args(run.dir.path / "whole"));
  REQUIRE(whole.status == 0);
  const model::SafeTensors a = model::read_safetensors(last.string());
  const model::SafeTensors b = model::read_safetensors((run.dir.path / "whole/last.safetensors").string());
  REQUIRE(a.tensors.size() == b.tensors.size());
  size_t differing = 0;
  for (const auto& t : a.tensors) {
    const model::Tensor* u = b.find(t.name);
    REQUIRE(u != nullptr);
    if (u->data != t.data) ++differing;
  }
  CHECK(differing == 0);
  // The rows the lost run logged past its checkpoint (step 5) are dropped on resume and written
  // again: steps.csv and summary.csv read as the uninterrupted run's.
  CHECK(read_file(out / "steps.csv") == read_file(run.dir.path / "whole/steps.csv"));
  auto epochs_and_losses = [](const std::string& text) {  // summary rows without the speed column
    std::vector<std::string> rows;
    for (const std::string& l : lines_of(text)) rows.push_back(l.substr(0, l.find(',', l.find(',') + 1)));
    return rows;
  };
  CHECK(epochs_and_losses(read_file(out / "summary.csv")) ==
        epochs_and_losses(read_file(run.dir.path / "whole/summary.csv")));
}

// One image's attention probabilities are 4097 x 4097 floats (64 MiB): a batch of two puts the
// probabilities and their gradient over lavapipe's 128 MiB maxStorageBufferRange, so attention,
// softmax and the batched matmuls must split. Everything else in this model is small (width 16),
// so the whole step stays cheap in FLOPs.
TEST_CASE("a model whose activations cross maxStorageBufferRange matches the same images run one by one",
          "[guards][gpu]") {
  model::VitConfig vc;
  vc.name = "vit_guards_wide_tokens";
  vc.image_size = 128, vc.patch_size = 2, vc.in_chans = 1, vc.dim = 16, vc.depth = 1, vc.heads = 1, vc.mlp_dim = 16;
  vc.num_classes = 5;
  const uint32_t B = 2, N = vc.tokens(), K = vc.num_classes;
  const uint64_t probs_bytes = uint64_t(B) * vc.heads * N * N * 4;
  if (probs_bytes <= ctx().info().max_storage_buffer_range) {
    WARN("maxStorageBufferRange " << ctx().info().max_storage_buffer_range << " holds the whole batch: nothing splits");
    return;
  }
  model::Vit vit(ctx(), vc, B);
  vit.init(3);
  const uint64_t per_image = uint64_t(vc.num_patches()) * vc.patch_dim();
  const std::vector<float> patches = random_floats(B * per_image, 41, -2.0f, 2.0f);
  const std::vector<float> dlogits = random_floats(B * K, 43);
  DeviceTensor dl(dlogits);

  auto run = [&](uint32_t first, uint32_t count, bool zero_grads) {
    ctx().upload(vit.patches_input(), patches.data() + first * per_image, count * per_image * 4);
    ctx().upload(dl.view(), dlogits.data() + first * K, count * K * 4);
    vk::Recorder rec(ctx());
    if (zero_grads) rec.fill(vit.grads_view(), 0.0f);
    vit.forward(rec, count);
    vit.backward(rec, count, dl.view());
    rec.submit_and_wait();
    std::vector<float> logits(count * K);
    ctx().download(vit.logits(), logits.data(), logits.size() * 4);
    return logits;
  };
  const std::vector<float> logits_batch = run(0, B, true);
  const std::vector<float> grads_batch = vit.read_grads();
  std::vector<double> logits_single;
  for (uint32_t b = 0; b < B; ++b)  // gradients accumulate over the single-image runs
    for (float v : run(b, 1, b == 0)) logits_single.push_back(v);
  const std::vector<float> grads_single = vit.read_grads();

  require_close(logits_batch, logits_single, 1e-5, 1e-4, "logits of the batch vs image by image");
  // Summation order differs (one reduction over both images' 8194 tokens vs two of 4097), so
  // elements that cancel to near zero get an absolute tolerance scaled to the gradients' size.
  double scale = 0;
  for (float g : grads_single) scale = std::max(scale, double(std::fabs(g)));
  REQUIRE(scale > 0);
  require_close(grads_batch, to_double(grads_single), 1e-4 * scale, 1e-3, "gradients of the batch vs the summed images");
}

// Grids wider than maxComputeWorkGroupCount[0] (65535 on lavapipe): a product with more row
// blocks than that, and a LayerNorm forward with more row groups, against the reference (its
// backward, 32 rows per workgroup, is checked at the same size).
TEST_CASE("a matmul and a layernorm whose grids exceed 65535 workgroups match the reference", "[guards][gpu]") {
  const uint64_t max_x = ctx().info().max_workgroup_count[0];
  if (max_x > (1u << 16)) {
    WARN("maxComputeWorkGroupCount[0] is " << max_x << ": a grid over it would not fit in memory here");
    return;
  }
  SECTION("matmul") {
    // Row blocks of at most 16 rows (the lavapipe kernel's 8 or 16, the naive kernel's 16).
    ops::MatmulShape s;
    s.M = 1100003, s.N = 8, s.K = 5;
    const std::vector<float> a = random_floats(uint64_t(s.M) * s.K, 51), b = random_floats(uint64_t(s.K) * s.N, 52);
    DeviceTensor da(a), db(b), dc(uint64_t(s.M) * s.N);
    vk::Recorder rec(ctx());
    ops::matmul(rec, dc.view(), da.view(), db.view(), s);
    rec.submit_and_wait();
    std::vector<double> ref(uint64_t(s.M) * s.N);
    const std::vector<double> ad = to_double(a), bd = to_double(b);
    ops::ref::matmul(ref.data(), ad.data(), bd.data(), s);
    require_close(dc.read(), ref, 1e-5, 1e-5, "matmul M=" + std::to_string(s.M));
  }
  SECTION("layernorm forward and backward") {
    const uint64_t M = max_x * 4 + 4099;  // 4 rows per workgroup
    const uint32_t D = 13;  // odd: scalar loads; wide enough that no row's variance is tiny
    const std::vector<float> x = random_floats(M * D, 61, -3.0f, 3.0f), gamma = random_floats(D, 62, 0.5f, 1.5f),
                             beta = random_floats(D, 63), dy = random_floats(M * D, 64);
    DeviceTensor dx_in(x), dg(gamma), dbeta(beta), out(M * D), mean(M), rstd(M), ddy(dy), din(M * D), dgamma(D), ddbeta(D);
    vk::Recorder rec(ctx());
    ops::layernorm_forward(rec, out.view(), mean.view(), rstd.view(), dx_in.view(), dg.view(), dbeta.view(), M, D, 1e-6f);
    DeviceTensor scratch(ops::layernorm_backward_scratch_floats(ctx(), M, D));
    ops::layernorm_backward(rec, din.view(), dgamma.view(), ddbeta.view(), mean.view(), rstd.view(), dx_in.view(),
                            ddy.view(), dg.view(), scratch.view(), M, D);
    rec.submit_and_wait();
    std::vector<double> r_out(M * D), r_mean(M), r_rstd(M), r_din(M * D, 0.0), r_dg(D, 0.0), r_db(D, 0.0);
    const std::vector<double> xd = to_double(x), gd = to_double(gamma), bd = to_double(beta), dyd = to_double(dy);
    ops::ref::layernorm_forward(r_out.data(), r_mean.data(), r_rstd.data(), xd.data(), gd.data(), bd.data(), M, D, 1e-6);
    ops::ref::layernorm_backward(r_din.data(), r_dg.data(), r_db.data(), r_mean.data(), r_rstd.data(), xd.data(),
                                 dyd.data(), gd.data(), M, D);
    // As test_layernorm.cpp's tolerances, with room for the rare row of 13 values with a small
    // variance (large rstd) among 266k.
    require_close(out.read(), r_out, 1e-4, 1e-4, "layernorm out");
    require_close(din.read(), r_din, 1e-4, 1e-3, "layernorm din");
    // Sums over a million rows in float: relative tolerance.
    require_close(dgamma.read(), r_dg, 1e-2, 1e-3, "layernorm dgamma");
    require_close(ddbeta.read(), r_db, 1e-2, 1e-3, "layernorm dbeta");
  }
}
