// train: the whole training loop on a dataset a tiny ViT can learn in seconds on lavapipe — the
// loss falls, validation accuracy ends far above chance, the run folder holds what README
// "Using it" promises — and --resume continues a run at its saved epoch and step.
//
// The dataset: 16x16 grayscale stripes in four orientations (horizontal, vertical, two diagonals)
// with a random phase, random contrast and pixel noise. Every 4x4 patch shows the orientation, so
// the class does not depend on where a patch sits and one block learns it within a few epochs.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "harness.h"
#include "model/safetensors.h"
#include "stripes.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/run_dir.h"
#include "train/trainer.h"

using namespace vkvit;
namespace fs = std::filesystem;
using vkvit::test::TempDir;

namespace {

// root/{train,val}/<orientation>/<iii>.png; removed with the object.
struct StripeDataset {
  TempDir dir;
  fs::path root;
  StripeDataset(const std::string& tag, int train_per_class, int val_per_class) : dir("train-" + tag), root(dir.path) {
    test::write_stripe_dataset(root, train_per_class, val_per_class, 1234, 3);
  }
};

struct SummaryCsv {
  std::string header;
  std::vector<std::vector<std::string>> rows;
};

SummaryCsv read_summary(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in);
  SummaryCsv s;
  std::getline(in, s.header);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.push_back("");
    s.rows.push_back(cells);
  }
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Largest |a - b| over every tensor of two safetensors files with the same names and shapes.
double max_abs_diff(const std::string& a_path, const std::string& b_path, std::string* where) {
  const model::SafeTensors a = model::read_safetensors(a_path), b = model::read_safetensors(b_path);
  REQUIRE(a.tensors.size() == b.tensors.size());
  double worst = 0;
  for (const auto& ta : a.tensors) {
    const model::Tensor* tb = b.find(ta.name);
    REQUIRE(tb != nullptr);
    REQUIRE(tb->shape == ta.shape);
    for (size_t i = 0; i < ta.data.size(); ++i) {
      const double d = std::fabs(double(ta.data[i]) - double(tb->data[i]));
      if (!(d <= worst)) {  // also catches NaN
        worst = std::isnan(d) ? INFINITY : d;
        if (where) *where = ta.name + "[" + std::to_string(i) + "]";
      }
    }
  }
  return worst;
}

}  // namespace

TEST_CASE("a tiny ViT learns stripe orientation: loss falls, val top1 far above chance, run folder complete",
          "[train]") {
  StripeDataset data("learn", 32, 16);  // 128 train (8 steps per epoch), 64 val
  const int kEpochs = 25;             // 200 steps
  TempDir out("learn-run");
  train::RunConfig cfg = train::RunConfig::parse(test::tiny_stripes_config_yaml(10, data.root.string()), "tiny_stripes.yaml");
  cfg.train.epochs = kEpochs;
  train::TrainOptions opts;
  opts.output = out / "run";
  opts.quiet = true;

  const int errors_before = test::validation_errors_so_far();
  const auto t0 = std::chrono::steady_clock::now();
  const train::TrainResult r = train::train(test::ctx(), cfg, opts);
  INFO(kEpochs << " epochs x 8 steps of the tiny ViT took " << seconds_since(t0) << " s");
  CHECK(test::validation_errors_so_far() == errors_before);

  CHECK(r.run_dir == opts.output);
  CHECK(r.last_eval.images == 64);
  CHECK(r.last_eval.skipped == 0);
  // Chance is 25%; the stripes are unambiguous, so a working loop gets nearly all of them.
  CHECK(r.last_eval.top1 >= 90.0);  // 100% on lavapipe after these 200 steps
  CHECK(r.last_eval.top5 == Approx(100.0));  // 4 classes: top-5 covers them all
  CHECK(r.best_top1 >= r.last_eval.top1);
  REQUIRE(r.last_eval.per_class.size() == 4);

  for (const char* f : {"last.safetensors", "best.safetensors", "config.yaml", "summary.csv", "steps.csv"})
    CHECK(fs::exists(out / ("run/" + std::string(f))));
  // last carries the optimizer state, best only the model.
  CHECK(model::read_safetensors(out / "run/last.safetensors").find(train::kAdamM) != nullptr);
  CHECK(model::read_safetensors(out / "run/best.safetensors").find(train::kAdamM) == nullptr);

  // config.yaml alone repeats the run: it parses back to the config that ran.
  CHECK(train::RunConfig::load(out / "run/config.yaml") == cfg);

  const SummaryCsv s = read_summary(out / "run/summary.csv");
  CHECK(s.header == train::RunDir::kSummaryHeader);
  REQUIRE(s.rows.size() == size_t(kEpochs));
  for (size_t e = 0; e < s.rows.size(); ++e) {
    REQUIRE(s.rows[e].size() == 8);
    CHECK(s.rows[e][0] == std::to_string(e + 1));
    CHECK_FALSE(s.rows[e][3].empty());  // eval_every 1: every epoch has a val_top1
  }
  const double first_loss = std::stod(s.rows.front()[1]), last_loss = std::stod(s.rows.back()[1]);
  INFO("train loss: first epoch " << first_loss << ", last epoch " << last_loss);
  CHECK(first_loss > 1.0);                 // starts near ln 4 = 1.386
  CHECK(last_loss < 0.25 * first_loss);    // and has clearly been learned (about 0.02 on lavapipe)
  CHECK(std::stod(s.rows.back()[3]) == Approx(r.last_eval.top1).margin(1e-3));

  const train::CheckpointMeta last = train::read_checkpoint_meta(out / "run/last.safetensors");
  CHECK(last.epoch == uint64_t(kEpochs));
  CHECK(last.step == uint64_t(kEpochs) * 8);
  CHECK(last.classes == test::stripe_classes());
  CHECK(last.config == cfg);
  const train::CheckpointMeta best = train::read_checkpoint_meta(out / "run/best.safetensors");
  CHECK(best.best_top1 == Approx(r.best_top1));
  CHECK(best.epoch >= 1);
  CHECK(best.epoch <= uint64_t(kEpochs));
}

// Resume reads weights, Adam m/v, epoch and step back, and the data order and per-sample
// randomness are functions of (seed, epoch), so 2 + 2 epochs should retrace 4 uninterrupted
// epochs. The schedule is the one thing that depends on train.epochs: the cosine spans the run's
// epochs, so a first leg configured for 2 epochs anneals differently from a 4-epoch run. Here
// min_lr = lr keeps the rate flat after warmup, so both runs see the same rate at every step and
// the comparison tests resume itself.
TEST_CASE("resume continues at the saved epoch and step and retraces an uninterrupted run", "[train]") {
  StripeDataset data("resume", 16, 8);  // 64 train (4 steps per epoch), 32 val
  TempDir out("resume-run");
  train::RunConfig cfg = train::RunConfig::parse(test::tiny_stripes_config_yaml(10, data.root.string()), "tiny_stripes.yaml");
  cfg.train.min_lr = cfg.train.lr;
  const uint64_t steps_per_epoch = 4;

  const int errors_before = test::validation_errors_so_far();

  // Leg 1: 2 epochs.
  train::RunConfig leg1 = cfg;
  leg1.train.epochs = 2;
  train::TrainOptions o1;
  o1.output = out / "resumed";
  o1.quiet = true;
  train::train(test::ctx(), leg1, o1);
  const train::CheckpointMeta m1 = train::read_checkpoint_meta(out / "resumed/last.safetensors");
  CHECK(m1.epoch == 2);
  CHECK(m1.step == 2 * steps_per_epoch);
  CHECK(read_summary(out / "resumed/summary.csv").rows.size() == 2);
  fs::create_directories(out.path / "leg1");
  fs::copy_file(out.path / "resumed/last.safetensors", out.path / "leg1/last.safetensors");

  // Leg 2: --resume last.safetensors with 4 epochs in all; no --output, so it appends to the same
  // run folder.
  train::RunConfig leg2 = cfg;
  leg2.train.epochs = 4;
  train::TrainOptions o2;
  o2.resume = out / "resumed/last.safetensors";
  o2.quiet = true;
  const train::TrainResult r2 = train::train(test::ctx(), leg2, o2);
  CHECK(fs::path(r2.run_dir) == fs::path(out / "resumed"));
  const train::CheckpointMeta m2 = train::read_checkpoint_meta(out / "resumed/last.safetensors");
  CHECK(m2.epoch == 4);
  CHECK(m2.step == m1.step + 2 * steps_per_epoch);
  const SummaryCsv s = read_summary(out / "resumed/summary.csv");
  CHECK(s.header == train::RunDir::kSummaryHeader);
  REQUIRE(s.rows.size() == 4);
  for (size_t e = 0; e < 4; ++e) CHECK(s.rows[e][0] == std::to_string(e + 1));

  // The same 4 epochs without a break.
  train::RunConfig whole = cfg;
  whole.train.epochs = 4;
  train::TrainOptions ow;
  ow.output = out / "whole";
  ow.quiet = true;
  const train::TrainResult rw = train::train(test::ctx(), whole, ow);
  CHECK(test::validation_errors_so_far() == errors_before);
  const train::CheckpointMeta mw = train::read_checkpoint_meta(out / "whole/last.safetensors");
  CHECK(mw.step == m2.step);
  CHECK(mw.epoch == m2.epoch);

  // Per-epoch train losses and the final weights and Adam state of the two runs.
  const SummaryCsv sw = read_summary(out / "whole/summary.csv");
  REQUIRE(sw.rows.size() == 4);
  for (size_t e = 0; e < 4; ++e) {
    INFO("epoch " << e + 1 << ": resumed loss " << s.rows[e][1] << ", uninterrupted " << sw.rows[e][1]);
    CHECK(s.rows[e][1] == sw.rows[e][1]);
  }
  std::string where;
  const double dw = max_abs_diff(out / "resumed/last.safetensors", out / "whole/last.safetensors", &where);
  INFO("resumed vs uninterrupted: max |weight or Adam state diff| " << dw << " at " << where);
  // Observed on lavapipe: bit-identical weights and Adam state. Every GPU reduction sums in a fixed
  // order (no float atomics) and the host side is deterministic, so the same device gives the same
  // bits; a device that broke this would break reproducible runs, which is worth failing on.
  CHECK(dw == 0.0);
  CHECK(r2.last_eval.top1 == Approx(rw.last_eval.top1).margin(1e-9));

  // Resuming into a new folder (--output): config.yaml is written there and summary.csv starts at
  // the first resumed epoch; the weights are those of the same-folder resume.
  train::TrainOptions ob;
  ob.resume = out / "leg1/last.safetensors";
  ob.output = out / "branch";
  ob.quiet = true;
  train::train(test::ctx(), leg2, ob);
  CHECK(fs::exists(out / "branch/config.yaml"));
  const SummaryCsv sb = read_summary(out / "branch/summary.csv");
  REQUIRE(sb.rows.size() == 2);
  CHECK(sb.rows[0][0] == "3");
  CHECK(sb.rows[1][0] == "4");
  CHECK(train::read_checkpoint_meta(out / "branch/last.safetensors").step == m2.step);
  CHECK(max_abs_diff(out / "branch/last.safetensors", out / "resumed/last.safetensors", nullptr) == 0.0);
  CHECK(test::validation_errors_so_far() == errors_before);
}

std::vector<std::string> read_lines(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// --max-steps stops in the middle of an epoch; --resume must then continue with the very next
// batch (same loader position, schedule step, Adam state and per-sample randomness), so every
// step's loss, rate and gradient norm equals the uninterrupted run's, bit for bit (steps.csv
// prints floats with 9 digits, enough to round-trip them). The cosine schedule runs as configured:
// both legs have the same train.epochs, so they agree on the rate at every step.
TEST_CASE("resume after --max-steps mid-epoch retraces the uninterrupted run step for step", "[train]") {
  StripeDataset data("resume-mid", 16, 8);  // 64 train (4 steps per epoch), 32 val
  TempDir out("resume-mid-run");
  train::RunConfig cfg = train::RunConfig::parse(test::tiny_stripes_config_yaml(3, data.root.string()), "tiny_stripes.yaml");
  const int errors_before = test::validation_errors_so_far();

  train::TrainOptions o1;
  o1.output = out / "resumed";
  o1.quiet = true;
  o1.max_steps = 6;  // two steps into epoch 2
  const train::TrainResult r1 = train::train(test::ctx(), cfg, o1);
  CHECK(r1.stopped_early);
  CHECK(r1.train_images_per_s > 0);  // the stopped epoch's measured rate
  const train::CheckpointMeta m1 = train::read_checkpoint_meta(out / "resumed/last.safetensors");
  CHECK(m1.step == 6);
  CHECK(m1.epoch == 1);  // one epoch completed
  CHECK(m1.position == 32);
  CHECK(m1.epoch_images == 32);
  CHECK(read_summary(out / "resumed/summary.csv").rows.size() == 1);

  train::TrainOptions o2;
  o2.resume = out / "resumed/last.safetensors";
  o2.quiet = true;
  const train::TrainResult r2 = train::train(test::ctx(), cfg, o2);
  CHECK_FALSE(r2.stopped_early);

  train::TrainOptions ow;
  ow.output = out / "whole";
  ow.quiet = true;
  const train::TrainResult rw = train::train(test::ctx(), cfg, ow);
  CHECK(test::validation_errors_so_far() == errors_before);

  const std::vector<std::string> resumed = read_lines(out / "resumed/steps.csv"), whole = read_lines(out / "whole/steps.csv");
  REQUIRE(whole.size() == 1 + 12);  // header + 3 epochs x 4 steps
  REQUIRE(resumed.size() == whole.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    INFO("steps.csv line " << i + 1);
    CHECK(resumed[i] == whole[i]);
  }
  const SummaryCsv s = read_summary(out / "resumed/summary.csv"), sw = read_summary(out / "whole/summary.csv");
  REQUIRE(s.rows.size() == 3);
  REQUIRE(sw.rows.size() == 3);
  for (size_t e = 0; e < 3; ++e) CHECK(s.rows[e][1] == sw.rows[e][1]);  // epoch 2's mean spans the break
  CHECK(max_abs_diff(out / "resumed/last.safetensors", out / "whole/last.safetensors", nullptr) == 0.0);
  CHECK(r2.last_eval.top1 == Approx(rw.last_eval.top1).margin(1e-9));

  // best.safetensors holds the model only: resuming from it is refused with the reason.
  train::TrainOptions from_best;
  from_best.resume = out / "whole/best.safetensors";
  from_best.output = out / "from-best";
  from_best.quiet = true;
  CHECK_THROWS_WITH(train::train(test::ctx(), cfg, from_best), Catch::Contains("has no optimizer state"));

  // A config whose model disagrees with the checkpoint is refused with what differs.
  train::RunConfig other = cfg;
  other.model.mlp_dim += 4;
  other.model.pool = other.model.pool == "cls" ? "mean" : "cls";
  train::TrainOptions bad;
  bad.resume = out / "whole/last.safetensors";
  bad.output = out / "bad";
  bad.quiet = true;
  CHECK_THROWS_WITH(train::train(test::ctx(), other, bad),
                    Catch::Contains("its model differs from the config's model section (checkpoint vs config: mlp_dim " +
                                    std::to_string(cfg.model.mlp_dim) + " vs " + std::to_string(other.model.mlp_dim) +
                                    ", pool " + cfg.model.pool + " vs " + other.model.pool + ")"));
}

// The training loop submits step k + 1's gradients before it waits for step k (and evaluation
// submits batch k + 1 before reading batch k's logits). That must change when work runs, never
// what it computes: with VKVIT_STEP_OVERLAP=0 (each submission after the wait for the one before)
// every step's loss, rate and norm, the evaluation and the final weights are the same bits, also
// under amp (whose next step is recorded after the wait: the loss scale may change). Poisoned
// batches, whose retry is submitted ahead: test_guards.cpp.
TEST_CASE("submitting the next step before the wait changes no result", "[train]") {
  StripeDataset data("overlap", 16, 5);  // 64 train (4 steps per epoch), 20 val (batches of 16 and 4)
  TempDir out("overlap-run");
  train::RunConfig cfg = train::RunConfig::parse(test::tiny_stripes_config_yaml(2, data.root.string()), "tiny_stripes.yaml");
  for (const bool amp : {false, true}) {
    cfg.train.amp = amp;
    const std::string name = amp ? "amp" : "fp32";
    train::TrainResult results[2];
    for (int overlap = 0; overlap < 2; ++overlap) {
      test::ScopedTuning steps([&](vk::Tuning& k) { k.step_overlap = overlap != 0; });
      train::TrainOptions o;
      o.output = out / (name + (overlap ? "-overlap" : "-serial"));
      o.quiet = true;
      results[overlap] = train::train(test::ctx(), cfg, o);
    }
    INFO(name);
    const fs::path serial = out / (name + "-serial"), overlap = out / (name + "-overlap");
    const std::vector<std::string> a = read_lines(serial / "steps.csv"), b = read_lines(overlap / "steps.csv");
    CHECK(a.size() == 1 + 8);
    CHECK(a == b);
    SummaryCsv sa = read_summary(serial / "summary.csv"), sb = read_summary(overlap / "summary.csv");
    REQUIRE(sa.rows.size() == 2);
    REQUIRE(sb.rows.size() == 2);
    for (size_t e = 0; e < 2; ++e) {
      sa.rows[e][6] = sb.rows[e][6] = "";  // img_per_s: timing
      CHECK(sa.rows[e] == sb.rows[e]);
    }
    CHECK(results[0].last_eval.images == 20);
    CHECK(results[0].last_eval.loss == results[1].last_eval.loss);
    CHECK(results[0].last_eval.confusion == results[1].last_eval.confusion);
    CHECK(max_abs_diff(serial / "last.safetensors", overlap / "last.safetensors", nullptr) == 0.0);
  }
}
