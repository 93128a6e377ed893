// Data-parallel training through mpirun on this machine (ranks over loopback, all sharing one
// Vulkan device): 2 ranks x batch B train like one process with batch 2B, a resume may change
// the number of ranks, and a rank that fails stops every rank with a line naming it.
// Built only where CMake found MPI and its launcher (VKVIT_MPIEXEC).
#ifdef VKVIT_MPIEXEC
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "harness.h"
#include "stripes.h"

namespace fs = std::filesystem;
using vkvit::test::CliRun;
using vkvit::test::mpirun;
using vkvit::test::q;
using vkvit::test::TempDir;

namespace {

const std::string kVkvit = VKVIT_BINARY;

struct StepRow {
  uint64_t step;
  double loss, lr, grad_norm;
};

std::vector<StepRow> read_steps(const fs::path& run) {
  std::vector<StepRow> rows;
  const auto lines = vkvit::test::lines_of(vkvit::test::read_file(run / "steps.csv"));
  for (size_t i = 1; i < lines.size(); ++i) {
    std::stringstream ss(lines[i]);
    std::string field;
    std::vector<std::string> f;
    while (std::getline(ss, field, ',')) f.push_back(field);
    REQUIRE(f.size() == 5);
    rows.push_back({std::stoull(f[0]), std::stod(f[2]), std::stod(f[3]), std::stod(f[4])});
  }
  return rows;
}

// Losses and gradient norms agree to what float sums in another order allow; the learning rate
// (a function of the step) exactly.
void require_same_steps(const std::vector<StepRow>& a, const std::vector<StepRow>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("step " << a[i].step);
    CHECK(a[i].step == b[i].step);
    CHECK(a[i].lr == b[i].lr);
    CHECK(std::abs(a[i].loss - b[i].loss) <= 2e-5 * std::abs(a[i].loss) + 1e-6);
    CHECK(std::abs(a[i].grad_norm - b[i].grad_norm) <= 1e-4 * std::abs(a[i].grad_norm) + 1e-6);
  }
}

struct Setup {
  TempDir dir{"data-parallel"};
  fs::path data = dir.path / "data", config = dir.path / "tiny.yaml";
  Setup() {
    vkvit::test::write_stripe_dataset(data, 32, 8, 7, 0);  // 128 train, 32 val images
    vkvit::test::write_file(config, vkvit::test::tiny_stripes_config_yaml(2));
  }
  std::string train_args(int batch, const fs::path& out) const {
    return "train --config " + q(config) + " --data-dir " + q(data) + " -b " + std::to_string(batch) + " --output " +
           q(out) + " -q";
  }
};

}  // namespace

TEST_CASE("two ranks with batch B train like one process with batch 2B", "[mpi][cli]") {
  Setup s;
  const fs::path one = s.dir.path / "one", two = s.dir.path / "two";
  const CliRun single = vkvit::test::run_cli(s.train_args(16, one));
  INFO(single.err);
  REQUIRE(single.status == 0);
  const CliRun ranks = mpirun("-np 2 " + kVkvit + " " + s.train_args(8, two));
  INFO(ranks.err);
  REQUIRE(ranks.status == 0);
  // Rank 0 alone reports and writes the run folder.
  CHECK(vkvit::test::lines_with(ranks.out, "run folder:").size() == 1);
  const auto a = read_steps(one), b = read_steps(two);
  CHECK(a.size() == 16);  // 2 epochs of 128 / 16
  require_same_steps(a, b);
  // The sharded evaluation, summed over the ranks, scores the whole val split as one process does.
  const auto sa = vkvit::test::lines_of(vkvit::test::read_file(one / "summary.csv"));
  const auto sb = vkvit::test::lines_of(vkvit::test::read_file(two / "summary.csv"));
  REQUIRE(sa.size() == 3);
  REQUIRE(sb.size() == 3);
  auto field = [](const std::string& line, int i) {
    std::stringstream ss(line);
    std::string f;
    for (int k = 0; k <= i; ++k) std::getline(ss, f, ',');
    return f;
  };
  const auto header = vkvit::test::lines_of(vkvit::test::read_file(one / "summary.csv"))[0];
  int val_loss = -1, val_top1 = -1;
  for (int i = 0; i < 12; ++i) {
    if (field(header, i) == "val_loss") val_loss = i;
    if (field(header, i) == "val_top1") val_top1 = i;
  }
  REQUIRE(val_loss >= 0);
  REQUIRE(val_top1 >= 0);
  for (int row = 1; row <= 2; ++row) {
    CHECK(std::abs(std::stod(field(sa[row], val_loss)) - std::stod(field(sb[row], val_loss))) < 1e-4);
    CHECK(std::abs(std::stod(field(sa[row], val_top1)) - std::stod(field(sb[row], val_top1))) <= 100.0 / 32 + 1e-9);
  }
  CHECK(fs::exists(two / "last.safetensors"));

  // `vkvit eval` on 3 ranks (chunks of 4 images: shards of 12, 12 and 8) reports what one process does.
  const std::string eval = "eval --checkpoint " + q(one / "last.safetensors") + " --data-dir " + q(s.data / "val") + " -b 4";
  const CliRun e1 = vkvit::test::run_cli(eval);
  const CliRun e3 = mpirun("-np 3 " + kVkvit + " " + eval);
  INFO(e3.err);
  REQUIRE(e1.status == 0);
  REQUIRE(e3.status == 0);
  const auto j1 = nlohmann::json::parse(e1.out), j3 = nlohmann::json::parse(e3.out);  // one JSON: rank 0's
  CHECK(j3["images"] == 32);
  CHECK(j3["top1"] == j1["top1"]);
  CHECK(j3["confusion"] == j1["confusion"]);
  CHECK(std::abs(j3["loss"].get<double>() - j1["loss"].get<double>()) < 1e-4);
}

TEST_CASE("a data-parallel run resumes with another number of ranks", "[mpi][cli]") {
  Setup s;
  const fs::path whole = s.dir.path / "whole", down = s.dir.path / "down", up = s.dir.path / "up";
  REQUIRE(vkvit::test::run_cli(s.train_args(16, whole)).status == 0);
  const auto reference = read_steps(whole);

  // 2 ranks x 8 for 5 steps, then one process x 16: the global batch stays 16, so the rest of
  // the run is the uninterrupted one-process run. Buckets of ~5 KB here: the tiny model's 9 tensor
  // groups go in several buckets, each sent from its own flushed part of the backward pass.
  CliRun r = mpirun("-np 2 -x VKVIT_ALLREDUCE_BUCKET_MB=0.005 " + kVkvit + " " + s.train_args(8, down) +
                    " --max-steps 5");
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(r.err.empty());  // -q: rank 0 says nothing, and the other ranks never do
  std::string args = s.train_args(8, s.dir.path / "talk");
  args.resize(args.size() - 3);  // without -q: rank 0 describes the run
  r = mpirun("-np 2 -x VKVIT_ALLREDUCE_BUCKET_MB=0.005 " + kVkvit + " " + args + " --max-steps 1");
  REQUIRE(r.status == 0);
  const auto plan = vkvit::test::lines_with(r.err, "2 ranks x batch 8 = global batch 16");
  REQUIRE(plan.size() == 1);
  CHECK(plan[0].find("buckets overlapping the backward pass") != std::string::npos);
  CHECK(plan[0].find("in 1 bucket") == std::string::npos);
  r = vkvit::test::run_cli("train --config " + q(down / "config.yaml") + " -b 16 --resume " +
                           q(down / "last.safetensors") + " -q");
  REQUIRE(r.status == 0);
  require_same_steps(reference, read_steps(down));

  // And the other way: one process for 5 steps, then 2 ranks.
  r = vkvit::test::run_cli(s.train_args(16, up) + " --max-steps 5");
  REQUIRE(r.status == 0);
  r = mpirun("-np 2 " + kVkvit + " train --config " + q(up / "config.yaml") + " -b 8 --resume " +
             q(up / "last.safetensors") + " -q");
  REQUIRE(r.status == 0);
  require_same_steps(reference, read_steps(up));
}

TEST_CASE("a rank whose shard runs short after a broken file takes part in the last step with no images", "[mpi][cli]") {
  Setup s;
  vkvit::test::write_file(s.data / "train" / "vertical" / "broken.png", "not a png");  // 129 files
  const fs::path out = s.dir.path / "run";
  const CliRun r = mpirun("-np 2 " + kVkvit + " " + s.train_args(8, out) + " --epochs 1");
  INFO(r.err);
  REQUIRE(r.status == 0);
  // 8 global steps of 16 (the 129th position is dropped with its round); the rank that skipped
  // the file, if it was read, had 7 batches and joined step 8 with zeros.
  const auto steps = read_steps(out);
  CHECK(steps.size() == 8);
  for (const StepRow& row : steps) CHECK(std::isfinite(row.loss));
  const auto summary = vkvit::test::lines_of(vkvit::test::read_file(out / "summary.csv"));
  REQUIRE(summary.size() == 2);
  const std::string skipped = summary[1].substr(summary[1].rfind(',') + 1);
  CHECK((skipped == "0" || skipped == "1"));
  if (skipped == "1") CHECK(vkvit::test::lines_with(r.err, "broken.png").size() == 1);  // warned once, by its rank
}

TEST_CASE("a failing rank stops every rank with a line naming it", "[mpi][cli]") {
  Setup s;
  const std::string rank0 = "-np 1 " + kVkvit + " " + s.train_args(8, s.dir.path / "run");
  SECTION("a rank without a Vulkan device") {
    const CliRun r = mpirun(rank0 + " : -np 1 env VK_ICD_FILENAMES=/nonexistent/icd.json " + kVkvit + " " +
                            s.train_args(8, s.dir.path / "run"));
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(vkvit::test::lines_with(r.err, "vkvit: error: rank 1 of 2").size() == 1);
    CHECK(r.err.find("Vulkan driver") != std::string::npos);
  }
  SECTION("a rank that sees other data") {
    const fs::path other = s.dir.path / "other";
    fs::copy(s.data, other, fs::copy_options::recursive);
    fs::remove(other / "train" / "vertical" / "3.png");
    const CliRun r = mpirun(rank0 + " : -np 1 " + kVkvit + " train --config " + q(s.config) + " --data-dir " +
                            q(other) + " -b 8 --output " + q(s.dir.path / "run") + " -q");
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(vkvit::test::lines_with(r.err, "vkvit: error: rank 1 of 2").size() == 1);
    CHECK(r.err.find("lists 127 images, rank 0's 128") != std::string::npos);
  }
  SECTION("diverged training: every rank sees it, rank 0 says it once") {
    const CliRun r = mpirun("-np 2 -x VKVIT_FAULT_NAN_AT_STEP=2 " + kVkvit + " " + s.train_args(8, s.dir.path / "run") +
                            " --set train.max_nonfinite_steps=0");
    INFO(r.err);
    CHECK(r.status == 3);
    CHECK(vkvit::test::lines_with(r.err, "training diverged").size() == 1);
    CHECK(vkvit::test::lines_with(r.err, "vkvit: error: rank 0 of 2").size() == 1);
  }
  SECTION("a rank whose GPU is lost mid-run") {
    const CliRun r = mpirun(rank0 + " : -np 1 env VKVIT_FAULT_DEVICE_LOST_AT_STEP=3 " + kVkvit + " " +
                            s.train_args(8, s.dir.path / "run"));
    INFO(r.err);
    CHECK(r.status == 5);  // the failing rank's exit code is the run's
    CHECK(r.err.find("vkvit: error: rank 1 of 2") != std::string::npos);
    CHECK(r.err.find("during step 3") != std::string::npos);
  }
}

TEST_CASE("commands that are not data-parallel refuse to run as several ranks", "[mpi][cli]") {
  Setup s;
  const CliRun r = mpirun("-np 2 " + kVkvit + " predict --checkpoint " + q(s.dir.path / "none.safetensors") + " " +
                          q(s.data / "val"));
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(r.err.find("runs in one process") != std::string::npos);
}
#endif
