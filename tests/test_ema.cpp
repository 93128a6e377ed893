// Model EMA (ops/ema.h and train.model_ema): timm's decay rule with and without warmup, the GPU
// update against the reference on odd sizes, a step skipped for non-finite gradients, a split at
// maxStorageBufferRange; and in training: the EMA the trainer keeps against the rule, a resume
// after --max-steps that retraces an uninterrupted run bit for bit (EMA included), summary.csv's
// EMA columns, best.safetensors holding the EMA, and `vkvit train --model-ema`.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "harness.h"
#include "model/safetensors.h"
#include "model/vit.h"
#include "ops/ema.h"
#include "ops/grad_norm.h"
#include "stripes.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/run_dir.h"
#include "train/trainer.h"

using namespace vkvit;
using namespace vkvit::test;
namespace fs = std::filesystem;

namespace {

// One EMA update on the GPU per decay, compared with the reference after each.
void check_updates(uint64_t n, const std::vector<double>& decays, uint32_t seed) {
  INFO("n = " << n);
  std::vector<float> e0 = random_floats(n, seed), p0 = random_floats(n, seed + 1, -3.0f, 3.0f);
  DeviceTensor ema(e0), params(p0);
  std::vector<double> want = to_double(e0);
  for (size_t k = 0; k < decays.size(); ++k) {
    // New weights each time, as an optimizer step would leave them.
    const std::vector<float> p = random_floats(n, seed + 10 + uint32_t(k), -3.0f, 3.0f);
    params.write(p);
    vk::Recorder rec(ctx());
    ops::ema_update(rec, ema.view(), params.view(), vk::View{}, n, decays[k]);
    rec.submit_and_wait();
    const std::vector<double> pd = to_double(p);
    ops::ref::ema_update(want.data(), pd.data(), n, decays[k]);
    // Two fp32 products and a sum per update on values of a few units.
    require_close(ema.read(), want, 1e-6, 1e-6, "ema after update " + std::to_string(k + 1));
  }
}

std::vector<std::string> file_lines(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> cells_of(const std::string& line) {
  std::vector<std::string> cells;
  size_t from = 0;
  for (size_t comma; (comma = line.find(',', from)) != std::string::npos; from = comma + 1)
    cells.push_back(line.substr(from, comma - from));
  cells.push_back(line.substr(from));
  return cells;
}

const model::Tensor& tensor(const model::SafeTensors& st, const std::string& name) {
  const model::Tensor* t = st.find(name);
  INFO(name);
  REQUIRE(t != nullptr);
  return *t;
}

// The model's weights of a checkpoint as one flat vector in the layout of `vit`.
std::vector<float> flat_weights(const model::SafeTensors& st, const model::Vit& vit) {
  std::vector<float> flat(vit.layout().total_floats(), 0.0f);
  for (const auto& p : vit.params()) {
    const model::Tensor& t = tensor(st, p.name);
    std::copy(t.data.begin(), t.data.end(), flat.begin() + std::ptrdiff_t(p.offset));
  }
  return flat;
}

struct EmaRun {
  TempDir dir;
  fs::path data;
  train::RunConfig cfg;
  explicit EmaRun(const std::string& tag, int epochs, double decay) : dir("ema-" + tag), data(dir.path / "data") {
    write_stripe_dataset(data, 16, 8, 1234, 3);  // 64 train (4 steps per epoch), 32 val
    cfg = train::RunConfig::parse(tiny_stripes_config_yaml(epochs, data.string()), "tiny_stripes.yaml");
    cfg.train.model_ema = true;
    cfg.train.model_ema_decay = decay;
  }
  train::TrainResult run(const std::string& folder, uint64_t max_steps = 0, const std::string& resume = "") {
    return train_quietly(cfg, dir / folder, max_steps, resume);
  }
};

}  // namespace

TEST_CASE("ema decay follows timm's ModelEmaV3 where the first update copies and warmup caps the decay", "[ema][ref]") {
  // Fixed decay: 0 for the first update (the EMA becomes the weights), then the decay.
  CHECK(ops::ema_decay(0.9998, false, 1) == 0.0);
  CHECK(ops::ema_decay(0.9998, false, 2) == 0.9998);
  CHECK(ops::ema_decay(0.9998, false, 1000000) == 0.9998);
  // Warmup: min(decay, 1 - (1 + (step - 1))^(-2/3)).
  CHECK(ops::ema_decay(0.9998, true, 1) == 0.0);
  CHECK(ops::ema_decay(0.9998, true, 2) == Approx(1 - std::pow(2.0, -2.0 / 3)).epsilon(1e-15));  // 0.370
  CHECK(ops::ema_decay(0.9998, true, 8) == Approx(0.75).epsilon(1e-15));  // 1 - 8^(-2/3)
  CHECK(ops::ema_decay(0.9998, true, 1001) == Approx(1 - std::pow(1001.0, -2.0 / 3)).epsilon(1e-15));
  // 1 - s^(-2/3) passes 0.9998 at s = 5000^1.5 ~ 353553: the cap holds from there on.
  CHECK(ops::ema_decay(0.9998, true, 353000) < 0.9998);
  CHECK(ops::ema_decay(0.9998, true, 354000) == 0.9998);
  double previous = -1;
  for (uint64_t step = 1; step < 3000; step += 7) {
    const double d = ops::ema_decay(0.999, true, step);
    CHECK(d >= previous);
    CHECK(d <= 0.999);
    previous = d;
  }
  CHECK_THROWS(ops::ema_decay(0.9998, false, 0));
}

// Sizes with a last group of 1-3 floats (its own dispatch), whole groups only, and a lone float.
TEST_CASE("ema on the GPU matches the reference on odd sizes", "[ema][gpu]") {
  const int errors_before = validation_errors_so_far();
  SECTION("four floats as 64-bit pairs where the device has them") {
    for (uint64_t n : {1ull, 3ull, 4ull, 255ull, 257ull, 4099ull, 100003ull})
      check_updates(n, {0.0, 0.9, 0.5, 0.9998}, uint32_t(n % 1000) + 7);
  }
  SECTION("one float at a time (no 64-bit pairs)") {
    ScopedTuning narrow([](vk::Tuning& k) { k.wide = false; });
    for (uint64_t n : {2ull, 256ull, 1025ull, 100003ull}) check_updates(n, {0.0, 0.75, 0.999}, uint32_t(n % 1000) + 8);
  }
  CHECK(validation_errors_so_far() == errors_before);
}

TEST_CASE("ema skips the update of a step whose gradients are not finite", "[ema][gpu]") {
  const uint64_t n = 1037;
  const std::vector<float> e0 = random_floats(n, 21), p = random_floats(n, 22);
  std::vector<float> g = random_floats(n, 23);
  DeviceTensor ema(e0), params(p), grads(g), result(ops::kGradNormFloats);
  DeviceTensor scratch(ops::grad_norm_scratch_floats(ctx(), {grads.view()}));
  auto step = [&] {
    vk::Recorder rec(ctx());
    ops::grad_norm(rec, result.view(), scratch.view(), {grads.view()}, 1.0f);
    ops::ema_update(rec, ema.view(), params.view(), result.view(), n, 0.5);
    rec.submit_and_wait();
  };
  SECTION("finite gradients: updated, whatever the clip coefficient") {
    step();
    std::vector<double> want = to_double(e0);
    const std::vector<double> pd = to_double(p);
    ops::ref::ema_update(want.data(), pd.data(), n, 0.5);
    require_close(ema.read(), want, 1e-7, 1e-6, "ema after a finite step");
  }
  SECTION("a NaN or an Inf gradient: bitwise unchanged") {
    for (float bad : {NAN, INFINITY}) {
      g[517] = bad;
      grads.write(g);
      step();
      CHECK(std::isnan(result.read()[ops::kClipCoefIndex]));
      CHECK(ema.read() == e0);
    }
  }
}

TEST_CASE("ema splits buffers larger than maxStorageBufferRange", "[ema][gpu]") {
  const uint64_t chunk = ctx().info().max_storage_buffer_range / 4;
  const uint64_t n = chunk + 1037;
  if (skip_unless_allocatable(n * 4, "splitting the EMA update")) return;
  std::vector<float> e0(n), p(n);
  for (uint64_t i = 0; i < n; ++i) {  // cheap deterministic values in [-1, 1]
    e0[i] = float((i * 2654435761u) % 2001) * 1e-3f - 1.0f;
    p[i] = float((i * 40503u + 17) % 1999) * 1e-3f - 0.999f;
  }
  auto buffer = [&](const char* what) { return std::make_unique<vk::Buffer>(ctx(), n * 4, vk::MemoryKind::device, what); };
  auto ema = buffer("ema"), params = buffer("params");
  ctx().upload(ema->view(), e0.data(), n * 4);
  ctx().upload(params->view(), p.data(), n * 4);
  vk::Recorder rec(ctx());
  ops::ema_update(rec, ema->view(), params->view(), vk::View{}, n, 0.75);
  rec.submit_and_wait();
  std::vector<uint64_t> at = {0, 1, n - 2, n - 1};
  for (int64_t d = -3; d <= 3; ++d) at.push_back(uint64_t(int64_t(chunk) + d));
  std::vector<float> got;
  std::vector<double> want;
  for (uint64_t i : at) {
    float x;
    ctx().download(ema->view().slice(i, 1), &x, 4);
    got.push_back(x);
    want.push_back(0.75 * e0[i] + 0.25 * p[i]);
  }
  require_close(got, want, 1e-7, 1e-6, "ema at the chunk edge and the tail");
}

namespace {

// Every tensor of two safetensors files, bit for bit (names and shapes too).
void require_same_tensors(const std::string& a_path, const std::string& b_path) {
  const model::SafeTensors a = model::read_safetensors(a_path), b = model::read_safetensors(b_path);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (const auto& ta : a.tensors) {
    INFO(ta.name);
    const model::Tensor& tb = tensor(b, ta.name);
    REQUIRE(tb.shape == ta.shape);
    CHECK(std::memcmp(ta.data.data(), tb.data.data(), ta.data.size() * 4) == 0);
  }
}

}  // namespace

TEST_CASE("the trainer's EMA copies the weights at the first step and averages with the decay after", "[ema][train]") {
  EmaRun r("rule", 1, 0.5);
  model::Vit vit(ctx(), train::to_vit_config(r.cfg.model), 1);
  r.run("one", 1);
  const model::SafeTensors one = model::read_safetensors(r.dir / "one/last.safetensors");
  const std::vector<float> w1 = flat_weights(one, vit);
  CHECK(tensor(one, train::kEmaWeights).data == w1);  // 0 * ema + 1 * w1
  r.run("two", 2);
  const model::SafeTensors two = model::read_safetensors(r.dir / "two/last.safetensors");
  const std::vector<float> w2 = flat_weights(two, vit);
  CHECK(w2 != w1);
  std::vector<double> want(w1.size());
  for (size_t i = 0; i < w1.size(); ++i) want[i] = 0.5 * double(w1[i]) + 0.5 * double(w2[i]);
  require_close(tensor(two, train::kEmaWeights).data, want, 1e-7, 1e-6, "EMA after two steps at decay 0.5");

  // A checkpoint of a run without EMA, resumed with it: the EMA starts from the resumed weights,
  // which is where step 1's update (decay 0) put it in the run that had it all along.
  r.cfg.train.model_ema = false;
  r.run("plain", 1);
  CHECK(model::read_safetensors(r.dir / "plain/last.safetensors").find(train::kEmaWeights) == nullptr);
  r.cfg.train.model_ema = true;
  r.run("", 2, r.dir / "plain/last.safetensors");
  const model::SafeTensors resumed = model::read_safetensors(r.dir / "plain/last.safetensors");
  CHECK(flat_weights(resumed, vit) == w2);
  CHECK(tensor(resumed, train::kEmaWeights).data == tensor(two, train::kEmaWeights).data);
}

// --max-steps stops mid-epoch; --resume continues with the saved EMA, so the resumed run's every
// tensor (weights, Adam's moments, the EMA) and every summary.csv cell but the timing equal the
// uninterrupted run's.
TEST_CASE("resume after --max-steps continues the EMA bit for bit and summary.csv has its columns", "[ema][train]") {
  EmaRun r("resume", 2, 0.9);
  const int errors_before = validation_errors_so_far();
  CHECK(r.run("resumed", 6).stopped_early);
  CHECK(model::read_safetensors(r.dir / "resumed/last.safetensors").find(train::kEmaWeights) != nullptr);
  const train::TrainResult resumed = r.run("", 0, r.dir / "resumed/last.safetensors");
  const train::TrainResult whole = r.run("whole");
  CHECK(validation_errors_so_far() == errors_before);
  require_same_tensors(r.dir / "resumed/last.safetensors", r.dir / "whole/last.safetensors");
  CHECK(resumed.last_ema_eval.top1 == whole.last_ema_eval.top1);
  CHECK(resumed.best_top1 == whole.best_top1);

  for (const char* run : {"resumed", "whole"}) {
    INFO(run);
    const std::vector<std::string> lines = file_lines(r.dir / (std::string(run) + "/summary.csv"));
    REQUIRE(lines.size() == 3);
    CHECK(lines[0] == train::RunDir::kSummaryHeaderEma);
    double best = -1;
    for (size_t e = 1; e < 3; ++e) {
      const std::vector<std::string> cells = cells_of(lines[e]);
      REQUIRE(cells.size() == 11);
      for (size_t c : {2, 3, 4, 8, 9, 10}) CHECK_FALSE(cells[c].empty());
      best = std::max(best, std::stod(cells[9]));
    }
    CHECK(best == Approx(whole.best_top1).margin(1e-9));
  }
  const std::vector<std::string> a = file_lines(r.dir / "resumed/summary.csv"), b = file_lines(r.dir / "whole/summary.csv");
  for (size_t e = 1; e < 3; ++e) {
    std::vector<std::string> ca = cells_of(a[e]), cb = cells_of(b[e]);
    ca[6] = cb[6] = "";  // img/s
    CHECK(ca == cb);
  }
}

TEST_CASE("best.safetensors holds the EMA chosen by its top-1 and the model stays last's main tensors", "[ema][train]") {
  EmaRun r("best", 1, 0.9);
  const train::TrainResult result = r.run("run");
  REQUIRE(result.last_ema_eval.images == 32);
  CHECK(result.best_top1 == result.last_ema_eval.top1);
  const train::CheckpointMeta best_meta = train::read_checkpoint_meta(r.dir / "run/best.safetensors");
  CHECK(best_meta.weights == "ema");
  CHECK(best_meta.best_top1 == result.last_ema_eval.top1);
  CHECK(train::read_checkpoint_meta(r.dir / "run/last.safetensors").weights.empty());

  model::Vit vit(ctx(), train::to_vit_config(r.cfg.model), 1);
  const model::SafeTensors best = model::read_safetensors(r.dir / "run/best.safetensors");
  const model::SafeTensors last = model::read_safetensors(r.dir / "run/last.safetensors");
  CHECK(best.find(train::kEmaWeights) == nullptr);
  CHECK(flat_weights(best, vit) == tensor(last, train::kEmaWeights).data);
  CHECK(flat_weights(best, vit) != flat_weights(last, vit));
  // Both load as a model: last's EMA tensor is training state, not an unexpected tensor.
  CHECK_NOTHROW(train::load_checkpoint_weights(r.dir / "run/last.safetensors", vit));
  CHECK(vit.read_params() == flat_weights(last, vit));
  CHECK_NOTHROW(train::load_checkpoint_weights(r.dir / "run/best.safetensors", vit));
  CHECK(vit.read_params() == flat_weights(best, vit));
}

TEST_CASE("vkvit train --model-ema reports the EMA and eval and predict and info read its checkpoints", "[ema][train][cli]") {
  TempDir dir("ema-cli");
  const fs::path data = dir.path / "data", config = dir.path / "tiny.yaml", run = dir.path / "run";
  write_stripe_dataset(data, 16, 8, 77, 0);
  write_file(config, tiny_stripes_config_yaml(1));
  const CliRun train = run_cli("train --config " + q(config) + " --data-dir " + q(data) + " --output " + q(run) +
                               " --model-ema --model-ema-decay 0.9");
  INFO(train.out << train.err);
  REQUIRE(train.status == 0);
  CHECK(train.out.find("EMA val top1") != std::string::npos);
  CHECK(train.err.find("best.safetensors now holds the model EMA's weights") != std::string::npos);
  const train::RunConfig saved = train::RunConfig::load((run / "config.yaml").string());
  CHECK(saved.train.model_ema);
  CHECK(saved.train.model_ema_decay == 0.9);
  CHECK_FALSE(saved.train.model_ema_warmup);
  for (const char* file : {"best.safetensors", "last.safetensors"}) {
    INFO(file);
    const CliRun eval = run_cli("eval --checkpoint " + q(run / file) + " --data-dir " + q(data / "val"));
    INFO(eval.out << eval.err);
    CHECK(eval.status == 0);
    CHECK(eval.out.find("top1") != std::string::npos);
    const CliRun info = run_cli("info " + q(run / file));
    CHECK(info.status == 0);
    CHECK_THAT(info.out, Catch::Matchers::Contains(std::string(file) == "best.safetensors" ? "weights     the model EMA's"
                                                                          : "the model EMA rides beside them"));
    const CliRun predict = run_cli("predict --checkpoint " + q(run / file) + " --topk 1 " + q(data / "val"));
    CHECK(predict.status == 0);
    CHECK_FALSE(predict.out.empty());
  }
  const CliRun bad = run_cli("train --config " + q(config) + " --data-dir " + q(data) + " --model-ema-decay 1.5");
  CHECK(bad.status != 0);
}

// A step whose update is skipped (a NaN in its batch: non-finite gradients, which an amp overflow
// also gives) leaves the EMA as it was. After steps 1 and 2 and a skipped attempt at step 3, the
// EMA is 0.5 E2 + 0.5 W3, not E2 averaged once more with the unchanged weights first. The fault
// is read once per process, so the runs are `vkvit train` subprocesses.
TEST_CASE("a skipped step leaves the trainer's EMA alone", "[ema][train][cli]") {
  TempDir dir("ema-skip");
  const fs::path data = dir.path / "data", config = dir.path / "tiny.yaml";
  write_stripe_dataset(data, 16, 8, 1234, 3);  // 64 train (4 steps per epoch), 32 val
  write_file(config, tiny_stripes_config_yaml(2));
  auto train_steps = [&](const std::string& out, int steps) {
    const CliRun r = run_cli("train --config " + q(config) + " --data-dir " + q(data) + " --output " + q(dir.path / out) +
                             " -q --model-ema --model-ema-decay 0.5 --max-steps " + std::to_string(steps));
    INFO(r.err);
    REQUIRE(r.status == 0);
    return model::read_safetensors((dir.path / out / "last.safetensors").string());
  };
  const model::SafeTensors two = train_steps("two", 2);
  model::SafeTensors skip = two;
  {
    ScopedEnv fault("VKVIT_FAULT_NAN_AT_STEP", "3");
    skip = train_steps("skip", 3);
  }
  const train::RunConfig cfg = train::RunConfig::parse(tiny_stripes_config_yaml(2, data.string()), "tiny.yaml");
  model::Vit vit(ctx(), train::to_vit_config(cfg.model), 1);
  const std::vector<float> w2 = flat_weights(two, vit), w3 = flat_weights(skip, vit);
  const std::vector<float>& e2 = tensor(two, train::kEmaWeights).data;
  std::vector<double> want(w2.size());
  double extra_average_gap = 0;  // how far an update at the skipped step would have moved it
  for (size_t i = 0; i < w2.size(); ++i) {
    want[i] = 0.5 * double(e2[i]) + 0.5 * double(w3[i]);
    const double averaged_again = 0.5 * (0.5 * double(e2[i]) + 0.5 * double(w2[i])) + 0.5 * double(w3[i]);
    extra_average_gap = std::max(extra_average_gap, std::fabs(averaged_again - want[i]));
  }
  CHECK(extra_average_gap > 1e-5);  // the check below can tell the two apart
  require_close(tensor(skip, train::kEmaWeights).data, want, 1e-7, 1e-6, "EMA after a skipped step");
}

#ifdef VKVIT_MPIEXEC

// Every rank applies the same update to the same weights, so every rank's EMA is the same; rank 0
// saves it. Two ranks of batch 8 keep the EMA one process of batch 16 keeps, up to the order of
// the gradient sums.
TEST_CASE("a data-parallel run keeps the EMA one process keeps", "[ema][mpi][cli]") {
  TempDir dir("ema-mpi");
  const fs::path data = dir.path / "data", config = dir.path / "tiny.yaml";
  write_stripe_dataset(data, 32, 8, 7, 0);  // 128 train, 32 val images
  write_file(config, tiny_stripes_config_yaml(1));
  auto args = [&](int batch, const fs::path& out) {
    return "train --config " + q(config) + " --data-dir " + q(data) + " -b " + std::to_string(batch) + " --output " +
           q(out) + " -q --model-ema --model-ema-decay 0.9";
  };
  const CliRun single = run_cli(args(16, dir.path / "one"));
  INFO(single.err);
  REQUIRE(single.status == 0);
  const CliRun ranks = mpirun("-np 2 " + std::string(VKVIT_BINARY) + " " + args(8, dir.path / "two"));
  INFO(ranks.err);
  REQUIRE(ranks.status == 0);
  const model::SafeTensors one = model::read_safetensors((dir.path / "one/last.safetensors").string());
  const model::SafeTensors two = model::read_safetensors((dir.path / "two/last.safetensors").string());
  const std::vector<float>& a = tensor(one, train::kEmaWeights).data;
  const std::vector<float>& b = tensor(two, train::kEmaWeights).data;
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - double(b[i])));
  INFO("max |EMA difference| " << worst);
  CHECK(worst < 1e-3);
  CHECK(train::read_checkpoint_meta((dir.path / "two/best.safetensors").string()).weights == "ema");
  CHECK(file_lines(dir.path / "two/summary.csv")[0] == train::RunDir::kSummaryHeaderEma);
}
#endif
