// Optimizer steps and parameter groups in training: k micro-batches of B make the optimizer step
// one batch of kB makes (parameters after 1 and 3 steps, the logged loss, lr and gradient norm);
// an accumulated run resumed after --max-steps retraces the uninterrupted one bit for bit (Mixup
// on, an epoch tail dropped); frozen tensors keep their bits over several steps (amp too), the
// gradients that still train equal the full backward pass's and the norm counts only them; a
// layer-decayed step against the AdamW reference with per-tensor scales; the config keys; and through the CLI (--accum-steps, --layer-decay, --freeze, --linear-probe), two
// data-parallel ranks train like one process.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "harness.h"
#include "model/safetensors.h"
#include "model/vit.h"
#include "ops/adamw.h"
#include "stripes.h"
#include "train/config.h"
#include "train/param_groups.h"
#include "train/train_step.h"
#include "train/trainer.h"

using namespace vkvit;
using namespace vkvit::test;
namespace fs = std::filesystem;

namespace {

struct StepRow {
  uint64_t step;
  double loss, lr, grad_norm;
};

std::vector<StepRow> read_steps(const fs::path& run) {
  std::vector<StepRow> rows;
  const auto lines = lines_of(read_file(run / "steps.csv"));
  for (size_t i = 1; i < lines.size(); ++i) {
    std::stringstream ss(lines[i]);
    std::vector<std::string> f;
    for (std::string field; std::getline(ss, field, ',');) f.push_back(field);
    REQUIRE(f.size() == 5);
    rows.push_back({std::stoull(f[0]), std::stod(f[2]), std::stod(f[3]), std::stod(f[4])});
  }
  return rows;
}

// The model's weights of a checkpoint as one flat vector in the layout of `vit`.
std::vector<float> flat_weights(const fs::path& checkpoint, const model::Vit& vit) {
  const model::SafeTensors st = model::read_safetensors(checkpoint);
  std::vector<float> flat(vit.layout().total_floats(), 0.0f);
  for (const auto& p : vit.params()) {
    const model::Tensor* t = st.find(p.name);
    INFO(p.name);
    REQUIRE(t != nullptr);
    std::copy(t->data.begin(), t->data.end(), flat.begin() + std::ptrdiff_t(p.offset));
  }
  return flat;
}

struct Run {
  TempDir dir;
  fs::path data;
  train::RunConfig cfg;
  Run(const std::string& tag, int epochs) : dir("accum-" + tag), data(dir.path / "data") {
    write_stripe_dataset(data, 16, 8, 1234, 3);  // 64 train, 32 val
    cfg = train::RunConfig::parse(tiny_stripes_config_yaml(epochs, data.string()), "tiny_stripes.yaml");
  }
  train::TrainResult run(const std::string& folder, uint64_t max_steps = 0, const std::string& resume = "") {
    return train_quietly(cfg, dir / folder, max_steps, resume);
  }
};

}  // namespace

TEST_CASE("k micro-batches of B make the optimizer step one batch of kB makes", "[accumulation][train]") {
  Run r("equal", 1);
  const int errors_before = validation_errors_so_far();
  model::Vit vit(ctx(), train::to_vit_config(r.cfg.model), 1);
  // fp32 after 1 and 3 steps; amp (fp16 products, the loss scale in every micro-batch's gradient) after 2.
  for (const auto& [steps, amp] : {std::pair{1ull, false}, std::pair{3ull, false}, std::pair{2ull, true}}) {
    INFO(steps << " optimizer steps, amp " << amp);
    r.cfg.train.amp = amp;
    const std::string one = "one" + std::to_string(steps), acc = "acc" + std::to_string(steps);
    r.cfg.train.batch_size = 16;
    r.cfg.train.accum_steps = 1;
    r.run(one, steps);
    r.cfg.train.batch_size = 8;
    r.cfg.train.accum_steps = 2;
    r.run(acc, steps);
    const std::vector<StepRow> a = read_steps(r.dir / one), b = read_steps(r.dir / acc);
    REQUIRE(a.size() == steps);
    REQUIRE(b.size() == steps);
    for (size_t i = 0; i < a.size(); ++i) {
      CHECK(a[i].step == b[i].step);
      CHECK(a[i].lr == b[i].lr);  // the schedule counts optimizer steps
      CHECK(std::abs(a[i].loss - b[i].loss) <= 1e-5 * std::abs(a[i].loss));
      CHECK(std::abs(a[i].grad_norm - b[i].grad_norm) <= 1e-5 * std::abs(a[i].grad_norm));
    }
    // The same gradients up to fp32 summation order, which Adam's m / sqrt(v) passes on as is,
    // except where an element's gradient nearly cancels: there the rounding decides the update,
    // which is at most the lr in magnitude. So: nearly all elements close, every one within twice
    // the summed lr of the steps.
    const std::vector<float> x = flat_weights(r.dir.path / acc / "last.safetensors", vit);
    const std::vector<float> y = flat_weights(r.dir.path / one / "last.safetensors", vit);
    double lr_sum = 0;
    for (const StepRow& row : a) lr_sum += row.lr;
    size_t loose = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double d = std::abs(double(x[i]) - double(y[i]));
      if (d > 2e-6 + 1e-5 * std::abs(double(y[i]))) ++loose;
      INFO("element " << i << ": " << x[i] << " vs " << y[i]);
      REQUIRE(d <= 2 * lr_sum);
    }
    CHECK(loose <= x.size() / 200);
  }
  CHECK(validation_errors_so_far() == errors_before);
}

TEST_CASE("an accumulated run resumed after --max-steps retraces the uninterrupted one", "[accumulation][train]") {
  Run r("resume", 2);
  r.cfg.train.batch_size = 8;
  r.cfg.train.accum_steps = 3;  // 8 micro-batches an epoch: 2 steps, the last 2 micro-batches dropped
  r.cfg.train.mixup = 0.8;      // draws keyed per micro-batch
  r.cfg.model.depth = 2;        // so that drop path drops in block 1; its draws are keyed per micro-batch too
  r.cfg.train.drop_path = 0.3;
  CHECK(r.run("resumed", 3).stopped_early);
  r.run("", 0, r.dir / "resumed/last.safetensors");
  r.run("whole");
  const std::vector<StepRow> a = read_steps(r.dir / "resumed"), b = read_steps(r.dir / "whole");
  REQUIRE(b.size() == 4);
  REQUIRE(a.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK(a[i].step == i + 1);
    CHECK(a[i].loss == b[i].loss);
    CHECK(a[i].grad_norm == b[i].grad_norm);
  }
  // Drop path did act on the accumulated steps: without it the same run trains otherwise.
  r.cfg.train.drop_path = 0;
  r.run("no_drop_path");
  CHECK(read_steps(r.dir / "no_drop_path")[0].loss != b[0].loss);
  const model::SafeTensors x = model::read_safetensors(r.dir / "resumed/last.safetensors");
  const model::SafeTensors y = model::read_safetensors(r.dir / "whole/last.safetensors");
  REQUIRE(x.tensors.size() == y.tensors.size());
  for (const auto& t : x.tensors) {
    INFO(t.name);
    const model::Tensor* u = y.find(t.name);
    REQUIRE(u != nullptr);
    CHECK(std::memcmp(t.data.data(), u->data.data(), t.data.size() * 4) == 0);
  }
}

namespace {

// One model of three blocks with a fixed batch uploaded: the full step's gradients, and a step
// with parameter groups, compared tensor by tensor.
struct FreezeBench {
  train::RunConfig cfg = train::RunConfig::parse(tiny_stripes_config_yaml(1), "tiny_stripes.yaml");
  uint32_t B = 6;
  std::vector<float> patches;
  std::vector<uint32_t> labels;
  explicit FreezeBench() {
    cfg.model.depth = 3;
    const model::VitConfig v = train::to_vit_config(cfg.model);
    patches = random_floats(uint64_t(B) * v.num_patches() * v.patch_dim(), 77);
    for (uint32_t i = 0; i < B; ++i) labels.push_back(i % uint32_t(v.num_classes));
  }
  std::unique_ptr<model::Vit> model(bool amp) const {
    auto vit = std::make_unique<model::Vit>(ctx(), train::to_vit_config(cfg.model), B, amp);
    vit->init(5);
    return vit;
  }
  void upload(const model::Vit& vit, const train::TrainStep& step) const {
    ctx().upload(vit.patches_input(), patches.data(), patches.size() * 4);
    ctx().upload(step.labels(), labels.data(), labels.size() * 4);
  }
};

void check_frozen_steps(bool amp, double layer_decay, const std::vector<std::string>& freeze) {
  FreezeBench fb;
  auto full = fb.model(amp);
  train::TrainStep full_step(ctx(), *full, fb.B);
  fb.upload(*full, full_step);
  vk::Recorder rec(ctx());
  full_step.record_gradients(rec, fb.B, 0.0f, 1.0f);
  rec.submit_and_wait();
  const std::vector<float> g_full = full->read_grads();

  auto vit = fb.model(amp);
  const std::vector<float> p0 = vit->read_params();
  const train::ParamGroups groups = train::param_groups(vit->layout(), vit->config().depth, layer_decay, freeze);
  train::TrainStep step(ctx(), *vit, fb.B, &groups);
  fb.upload(*vit, step);
  ops::AdamWHyper h;
  h.lr = 1e-2;
  for (uint64_t t = 1; t <= 3; ++t) {
    step.record(rec, fb.B, h, t, 0.0f, 0.0f);
    rec.submit_and_wait();
    if (amp) step.scaler().update(true);
    if (t > 1) continue;
    // The first step's gradients of trainable tensors are the full backward pass's, and the norm
    // counts only them.
    const std::vector<float> g = vit->read_grads();
    double sum = 0;
    for (size_t i = 0; i < vit->params().size(); ++i) {
      const model::ParamInfo& p = vit->params()[i];
      const bool linear = p.name.find("attn.") != std::string::npos || p.name.find("mlp.") != std::string::npos ||
                          p.name.rfind("head.", 0) == 0;
      if (groups.frozen[i] && linear) {  // the linear layers skip frozen gradients: the zeros stay
        INFO(p.name);
        CHECK(std::all_of(g.begin() + std::ptrdiff_t(p.offset), g.begin() + std::ptrdiff_t(p.offset + p.count),
                          [](float x) { return x == 0.0f; }));
      }
      if (groups.frozen[i]) continue;
      const std::vector<float> got(g.begin() + std::ptrdiff_t(p.offset), g.begin() + std::ptrdiff_t(p.offset + p.count));
      const std::vector<float> want(g_full.begin() + std::ptrdiff_t(p.offset),
                                    g_full.begin() + std::ptrdiff_t(p.offset + p.count));
      for (float x : want) sum += double(x) * double(x);
      require_close(got, to_double(want), 1e-7, 1e-5, "gradient of " + p.name);
    }
    float norm = 0;
    ctx().download(step.norm(), &norm, 4);
    // amp: the gradients hold the loss scale, the norm is unscaled.
    const double scale = amp ? double(step.scaler().scale()) : 1.0;
    CHECK(std::abs(double(norm) * scale - std::sqrt(sum)) <= 1e-5 * std::sqrt(sum));
  }
  const std::vector<float> p3 = vit->read_params();
  for (size_t i = 0; i < vit->params().size(); ++i) {
    const model::ParamInfo& p = vit->params()[i];
    INFO(p.name);
    const bool same = std::memcmp(&p0[p.offset], &p3[p.offset], p.count * 4) == 0;
    CHECK(same == bool(groups.frozen[i]));
  }
}

}  // namespace

TEST_CASE("frozen tensors keep their bits and the rest train on the full pass's gradients", "[accumulation][freeze][gpu]") {
  const int errors_before = validation_errors_so_far();
  SECTION("a linear probe") { check_frozen_steps(false, 0, {"*", "!head.*"}); }
  SECTION("the stem and the first block, with layer decay") {
    check_frozen_steps(false, 0.75, {"patch_embed.*", "cls_token", "pos_embed", "blocks.0.*"});
  }
  SECTION("biases only, frozen in the middle of every block") { check_frozen_steps(false, 0, {"blocks.*.bias"}); }
  SECTION("attention in every block, its weight gradients skipped") { check_frozen_steps(false, 0, {"blocks.*.attn.*"}); }
  SECTION("amp: MLP weights, their gradients skipped") { check_frozen_steps(true, 0, {"blocks.*.mlp.fc?.weight"}); }
  SECTION("amp: the stem and the first two blocks") {
    check_frozen_steps(true, 0.65, {"patch_embed.*", "cls_token", "pos_embed", "blocks.[01].*"});
  }
  SECTION("amp: a linear probe") { check_frozen_steps(true, 0, {"*", "!head.*"}); }
  CHECK(validation_errors_so_far() == errors_before);
}

TEST_CASE("layer decay gives each tensor's AdamW update its timm scale", "[accumulation][gpu]") {
  const int errors_before = validation_errors_so_far();
  FreezeBench fb;
  auto vit = fb.model(false);
  const std::vector<float> p0 = vit->read_params();
  const train::ParamGroups groups = train::param_groups(vit->layout(), vit->config().depth, 0.65, {});
  train::TrainStep step(ctx(), *vit, fb.B, &groups);
  fb.upload(*vit, step);
  ops::AdamWHyper h;
  h.lr = 1e-2;
  h.weight_decay = 0.05;
  vk::Recorder rec(ctx());
  step.record(rec, fb.B, h, 1, 0.0f, 0.0f);
  rec.submit_and_wait();
  // The reference step from the same gradients, with per-element scales and decay from the layout.
  const uint64_t n = vit->layout().total_floats();
  const std::vector<double> g = to_double(vit->read_grads());
  std::vector<double> rp = to_double(p0), rm(n, 0.0), rv(n, 0.0), scale(n, 1.0);
  std::vector<uint8_t> decay(n, 0);
  for (size_t i = 0; i < vit->params().size(); ++i) {
    const model::ParamInfo& p = vit->params()[i];
    for (uint64_t e = p.offset; e < p.offset + p.count; ++e) scale[e] = groups.lr_scale[i], decay[e] = p.decay;
  }
  ops::ref::adamw_step(rp.data(), rm.data(), rv.data(), g.data(), 1.0, decay.data(), scale.data(), n, h, 1);
  require_close(vit->read_params(), rp, 5e-7, 1e-6, "params after a layer-decayed step");
  // At t = 1 an update is about lr * scale: the head's ~1e-2, cls_token's 0.65^4 of it.
  const auto moved = [&](const std::string& name) {
    const model::ParamInfo& p = vit->layout().at(name);
    const std::vector<float> p1 = vit->read_params();
    double most = 0;
    for (uint64_t e = p.offset; e < p.offset + p.count; ++e) most = std::max(most, std::abs(double(p1[e]) - p0[e]));
    return most;
  };
  CHECK(moved("head.bias") == Approx(1e-2).epsilon(0.01));
  CHECK(moved("cls_token") == Approx(1e-2 * std::pow(0.65, 4)).epsilon(0.01));
  CHECK(validation_errors_so_far() == errors_before);
}

TEST_CASE("train.accum_steps, train.layer_decay and train.freeze read, write back and refuse bad values", "[accumulation][config]") {
  const std::string base = tiny_stripes_config_yaml(1);
  const train::RunConfig c = train::RunConfig::parse(
      base + "  accum_steps: 4\n  layer_decay: 0.65\n  freeze: [\"*\", \"!head.*\"]\n", "c.yaml");
  CHECK(c.train.accum_steps == 4);
  CHECK(c.train.layer_decay == 0.65);
  CHECK(c.train.freeze == std::vector<std::string>{"*", "!head.*"});
  CHECK(train::RunConfig::parse(c.to_yaml(), "again.yaml") == c);
  const train::RunConfig d = train::RunConfig::parse(base, "d.yaml");
  CHECK(d.train.accum_steps == 1);
  CHECK(d.train.layer_decay == 0);
  CHECK(d.train.freeze.empty());
  CHECK(train::RunConfig::parse(d.to_yaml(), "again.yaml") == d);
  CHECK(train::RunConfig::parse(base + "  freeze: head.*\n", "e.yaml").train.freeze == std::vector<std::string>{"head.*"});
  CHECK_THROWS_WITH(train::RunConfig::parse(base + "  accum_steps: 0\n", "x.yaml"), Catch::Contains("train.accum_steps"));
  CHECK_THROWS_WITH(train::RunConfig::parse(base + "  layer_decay: 1.5\n", "x.yaml"), Catch::Contains("train.layer_decay"));
  CHECK_THROWS_WITH(train::RunConfig::parse(base + "  freeze: [\"\"]\n", "x.yaml"), Catch::Contains("non-empty"));
}

TEST_CASE("a freeze pattern that matches nothing stops the run with one line", "[accumulation][train]") {
  Run r("badpattern", 1);
  r.cfg.train.freeze = {"blocks.0.*", "head"};
  const std::string what = error_of([&] { r.run("bad"); });
  CHECK(what.find("train.freeze: pattern 'head' matches no parameter") != std::string::npos);
  CHECK(what.find('\n') == std::string::npos);
}

#ifdef VKVIT_MPIEXEC
TEST_CASE("two ranks accumulating with layer decay and a frozen stem train like one process", "[accumulation][mpi][cli]") {
  TempDir dir("accum-mpi");
  const fs::path data = dir.path / "data", config = dir.path / "tiny.yaml";
  write_stripe_dataset(data, 32, 8, 7, 0);  // 128 train
  write_file(config, tiny_stripes_config_yaml(1));
  auto args = [&](int batch, const fs::path& out) {
    return "train --config " + q(config) + " --data-dir " + q(data) + " -b " + std::to_string(batch) +
           " --accum-steps 2 --layer-decay 0.75 --freeze 'patch_embed.*' cls_token pos_embed --output " + q(out);
  };
  const CliRun single = run_cli(args(16, dir.path / "one"));
  INFO(single.err);
  REQUIRE(single.status == 0);
  CHECK(single.err.find("2 micro-batches of 16 images per optimizer step") != std::string::npos);
  // patch_embed weight and bias, cls_token, pos_embed: the backward pass skips the embedding's.
  CHECK(single.err.find("4 of ") != std::string::npos);
  const CliRun ranks = mpirun("-np 2 " + std::string(VKVIT_BINARY) + " " + args(8, dir.path / "two") + " -q");
  INFO(ranks.err);
  REQUIRE(ranks.status == 0);
  const auto a = read_steps(dir.path / "one"), b = read_steps(dir.path / "two");
  REQUIRE(a.size() == 4);  // 128 / (16 x 2)
  REQUIRE(b.size() == 4);
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].lr == b[i].lr);
    CHECK(std::abs(a[i].loss - b[i].loss) <= 2e-5 * std::abs(a[i].loss) + 1e-6);
    CHECK(std::abs(a[i].grad_norm - b[i].grad_norm) <= 1e-4 * std::abs(a[i].grad_norm) + 1e-6);
  }
  // A linear probe without accumulation (the data-parallel loop of plain steps): the ranks send
  // the head's gradients only.
  auto probe_args = [&](int batch, const fs::path& out) {
    return "train --config " + q(config) + " --data-dir " + q(data) + " -b " + std::to_string(batch) +
           " --linear-probe --output " + q(out);
  };
  const CliRun probe = run_cli(probe_args(16, dir.path / "probe1"));
  INFO(probe.err);
  REQUIRE(probe.status == 0);
  CHECK(probe.err.find("frozen (train.freeze)") != std::string::npos);
  const CliRun probe2 = mpirun("-np 2 " + std::string(VKVIT_BINARY) + " " + probe_args(8, dir.path / "probe2"));
  INFO(probe2.err);
  REQUIRE(probe2.status == 0);
  CHECK(probe2.err.find("0.0 MB per step") != std::string::npos);  // 4 x 32 + 4 floats and the loss
  const auto c = read_steps(dir.path / "probe1"), d = read_steps(dir.path / "probe2");
  REQUIRE(c.size() == 8);
  REQUIRE(d.size() == 8);
  for (size_t i = 0; i < c.size(); ++i) {
    CHECK(c[i].lr == d[i].lr);
    CHECK(std::abs(c[i].loss - d[i].loss) <= 2e-5 * std::abs(c[i].loss) + 1e-6);
    CHECK(std::abs(c[i].grad_norm - d[i].grad_norm) <= 1e-4 * std::abs(c[i].grad_norm) + 1e-6);
  }
}
#endif
