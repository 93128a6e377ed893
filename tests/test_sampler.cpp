// data: the epoch orders of data/sampler.h. Repeated augmentation against the arithmetic of DeiT's
// RASampler (tests/fixtures/sampler, written by tests/reference/make_sampler_fixtures.py), the
// repeats of an image on different ranks, an epoch as long as without repeats, and through the
// Loader: each repeat augmented on its own, the shards of a step disjoint and deterministic, a
// resumed epoch reading the same batches, and a training run with it stopped mid-epoch and resumed
// retracing the uninterrupted run; through mpirun, two ranks of batch B with repeated augmentation
// train like one process of batch 2B (a step reads the same images, dealt instead of consecutive).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <opencv2/imgcodecs.hpp>

#include "data/loader.h"
#include "data/sampler.h"
#include "harness.h"
#include "model/safetensors.h"
#include "stripes.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

using namespace vkvit;
using namespace vkvit::data;
namespace fs = std::filesystem;

namespace {

struct RepeatedAugCase {
  uint32_t n = 0, world = 0, repeats = 0;
  std::vector<uint32_t> perm;
  std::vector<std::vector<uint32_t>> ranks;  // what each rank reads in the epoch
};

std::vector<uint32_t> numbers_after(std::istringstream& line) {
  std::vector<uint32_t> out;
  uint32_t v;
  while (line >> v) out.push_back(v);
  return out;
}

std::vector<RepeatedAugCase> read_cases() {
  std::ifstream in(std::string(VKVIT_SOURCE_DIR) + "/tests/fixtures/sampler/repeated_aug.txt");
  REQUIRE(in);
  std::vector<RepeatedAugCase> cases;
  std::string text;
  while (std::getline(in, text)) {
    std::istringstream line(text);
    std::string word;
    line >> word;
    if (word == "case") {
      cases.emplace_back();
      line >> cases.back().n >> cases.back().world >> cases.back().repeats;
    } else if (word == "perm") {
      cases.back().perm = numbers_after(line);
    } else if (word == "rank") {
      uint32_t r;
      line >> r;
      REQUIRE(r == cases.back().ranks.size());
      cases.back().ranks.push_back(numbers_after(line));
    }
  }
  return cases;
}

// The samples rank `rank` of `world` reads in a whole epoch of `order`.
std::vector<uint32_t> rank_samples(const EpochOrder& order, uint32_t rank, uint32_t world) {
  std::vector<uint32_t> out;
  for (uint64_t p : shard_positions(0, order.samples.size(), 4, rank, world, true)) out.push_back(order.samples[p]);
  return out;
}

// root/c<k>/<i>.png, random pixels; removed with the object.
struct Dataset {
  fs::path root;
  std::vector<Sample> samples;
  Dataset(const std::string& tag, int classes, int per_class) {
    root = fs::temp_directory_path() / ("vkvit-sampler-" + tag + "-" + std::to_string(::getpid()));
    fs::remove_all(root);
    cv::RNG rng(uint64_t(classes * 100 + per_class));
    for (int k = 0; k < classes; ++k) {
      fs::create_directories(root / ("c" + std::to_string(k)));
      for (int i = 0; i < per_class; ++i) {
        cv::Mat m(20, 22, CV_8UC3);
        rng.fill(m, cv::RNG::UNIFORM, 0, 256);
        const fs::path path = root / ("c" + std::to_string(k)) / (std::to_string(i) + ".png");
        REQUIRE(cv::imwrite(path.string(), m));
        samples.push_back({path.string(), uint32_t(k)});
      }
    }
  }
  ~Dataset() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

// Random crops and flips, so that two draws of one image differ.
LoaderConfig augmenting(uint32_t batch, bool repeated, uint32_t shard, uint32_t shards) {
  LoaderConfig c;
  c.batch_size = batch;
  c.workers = 1;
  c.seed = 5;
  c.patch_size = 8;
  c.transform.image_size = 16;
  c.repeated_aug = repeated;
  c.num_repeats = 3;
  c.shard_index = shard;
  c.shard_count = shards;
  return c;
}

std::vector<Batch> read_epoch(Loader& loader, uint64_t epoch, uint64_t first = 0) {
  loader.start_epoch(epoch, first);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

}  // namespace

TEST_CASE("repeated augmentation deals the epoch to the ranks as DeiT's RASampler does", "[data][sampler]") {
  const std::vector<RepeatedAugCase> cases = read_cases();
  REQUIRE(cases.size() == 8);  // every case make_sampler_fixtures.py writes
  for (const RepeatedAugCase& c : cases) {
    INFO("n " << c.n << ", world " << c.world << ", repeats " << c.repeats);
    REQUIRE(c.perm.size() == c.n);
    REQUIRE(c.ranks.size() == c.world);
    const uint64_t per_rank = repeated_aug_per_rank(c.n, c.world);
    const EpochOrder order = repeated_order(c.perm, c.repeats, per_rank * c.world);
    for (uint32_t r = 0; r < c.world; ++r) {
      CHECK(c.ranks[r].size() == per_rank);
      CHECK(rank_samples(order, r, c.world) == c.ranks[r]);
    }
  }
}

TEST_CASE("DeiT's images per rank: multiples of 256 shared out and small folders kept whole", "[data][sampler]") {
  CHECK(repeated_aug_per_rank(1281167, 8) == 160128);  // ImageNet-1k on 8 GPUs, as DeiT
  CHECK(repeated_aug_per_rank(300, 1) == 256);
  CHECK(repeated_aug_per_rank(300, 2) == 128);
  CHECK(repeated_aug_per_rank(250, 1) == 250);  // DeiT would keep none
  CHECK(repeated_aug_per_rank(250, 3) == 83);
}

TEST_CASE("the repeats of an image land on different ranks and each image-repeat pair is read once", "[data][sampler]") {
  const uint32_t n = 24, world = 3, repeats = 3;
  const std::vector<uint32_t> perm = shuffled_indices(n, true, 9, 2);
  const EpochOrder order = repeated_order(perm, repeats, uint64_t(world) * repeated_aug_per_rank(n, world));
  REQUIRE(order.samples.size() == n);  // n / world per rank: the epoch is as long as without repeats
  std::map<uint32_t, std::set<uint32_t>> ranks_of;
  std::set<std::pair<uint32_t, uint32_t>> draws;
  for (uint32_t r = 0; r < world; ++r)
    for (uint64_t p : shard_positions(0, n, 4, r, world, true)) {
      ranks_of[order.samples[p]].insert(r);
      CHECK(draws.insert({order.samples[p], order.repeats[p]}).second);
    }
  for (const auto& [sample, ranks] : ranks_of) {
    INFO("sample " << sample);
    uint32_t copies = 0;
    for (uint32_t s : order.samples) copies += s == sample;
    CHECK(ranks.size() == copies);  // never two copies on one rank
  }
  // With one rank the repeats are consecutive.
  const EpochOrder one = repeated_order(perm, repeats, n);
  for (uint64_t p = 0; p < n; ++p) {
    CHECK(one.samples[p] == perm[p / repeats]);
    CHECK(one.repeats[p] == p % repeats);
  }
}

TEST_CASE("shard positions cover a resumed range once in chunks or dealt", "[data][sampler]") {
  for (const bool dealt : {false, true}) {
    INFO((dealt ? "dealt" : "chunks"));
    std::multiset<uint64_t> seen;
    for (uint32_t s = 0; s < 3; ++s) {
      const std::vector<uint64_t> mine = shard_positions(12, 36, 4, s, 3, dealt);
      CHECK(mine.size() == 8);
      CHECK(mine.front() == (dealt ? 12 + s : 12 + 4 * s));
      seen.insert(mine.begin(), mine.end());
    }
    CHECK(seen.size() == 24);
    CHECK(std::set<uint64_t>(seen.begin(), seen.end()).size() == 24);
    CHECK(*seen.begin() == 12);
  }
  CHECK(shard_positions(0, 12, 4, 1, 2, false) == std::vector<uint64_t>{4, 5, 6, 7});
  CHECK(shard_positions(0, 12, 4, 1, 2, true) == std::vector<uint64_t>{1, 3, 5, 7, 9, 11});
}

TEST_CASE("loader with repeated augmentation: same epoch length and each repeat augmented on its own",
          "[data][sampler]") {
  Dataset d("repeats", 2, 9);
  Loader plain(d.samples, augmenting(3, false, 0, 1)), repeated(d.samples, augmenting(3, true, 0, 1));
  CHECK(repeated.batches_per_epoch() == plain.batches_per_epoch());
  CHECK(repeated.epoch_length() == 18);
  const std::vector<Batch> with = read_epoch(repeated, 1), without = read_epoch(plain, 1);
  REQUIRE(with.size() == 6);
  // One rank: the three repeats of an image are one batch of 3; repeat 0 draws what the image draws
  // without repeats, repeats 1 and 2 draw their own crops.
  std::map<std::string, const float*> plain_patches;
  const size_t floats = plain.floats_per_image();
  for (const Batch& b : without)
    for (uint32_t i = 0; i < b.size; ++i) plain_patches[b.paths[i]] = b.patches.data() + i * floats;
  for (const Batch& b : with) {
    REQUIRE(b.size == 3);
    CHECK(b.paths[0] == b.paths[1]);
    CHECK(b.paths[1] == b.paths[2]);
    const std::vector<float> r0(b.patches.begin(), b.patches.begin() + floats),
        r1(b.patches.begin() + floats, b.patches.begin() + 2 * floats), r2(b.patches.begin() + 2 * floats, b.patches.end());
    CHECK(r0 != r1);
    CHECK(r1 != r2);
    CHECK(std::equal(r0.begin(), r0.end(), plain_patches.at(b.paths[0])));
  }
  // Deterministic: another loader, another worker count, the same epoch.
  LoaderConfig more_workers = augmenting(3, true, 0, 1);
  more_workers.workers = 3;
  Loader again(d.samples, more_workers);
  const std::vector<Batch> twice = read_epoch(again, 1);
  REQUIRE(twice.size() == with.size());
  for (size_t i = 0; i < with.size(); ++i) {
    CHECK(twice[i].paths == with[i].paths);
    CHECK(twice[i].patches == with[i].patches);
  }
}

TEST_CASE("loader shards with repeated augmentation: disjoint and one global batch per step and resumable",
          "[data][sampler]") {
  Dataset d("repeat-shards", 3, 10);  // 30 images, 3 ranks of batch 2: 10 per rank, 5 steps
  std::vector<std::unique_ptr<Loader>> ranks;
  for (uint32_t r = 0; r < 3; ++r) ranks.push_back(std::make_unique<Loader>(d.samples, augmenting(2, true, r, 3)));
  CHECK(ranks[0]->batches_per_epoch() == 5);
  std::vector<std::vector<Batch>> epochs;
  for (auto& r : ranks) epochs.push_back(read_epoch(*r, 4));
  const std::vector<uint32_t> perm = shuffled_indices(30, true, 5, 4);
  const EpochOrder order = repeated_order(perm, 3, 30);
  std::multiset<std::pair<uint32_t, uint32_t>> draws;
  for (uint32_t step = 0; step < 5; ++step)
    for (uint32_t r = 0; r < 3; ++r) {
      REQUIRE(epochs[r].size() == 5);
      // Step s reads positions [6s, 6s + 6): rank r the ones congruent to r.
      for (uint32_t i = 0; i < 2; ++i) {
        const uint64_t p = 6 * step + r + 3 * i;
        CHECK(epochs[r][step].paths[i] == d.samples[order.samples[p]].path);
        draws.insert({order.samples[p], order.repeats[p]});
      }
    }
  CHECK(std::set<std::pair<uint32_t, uint32_t>>(draws.begin(), draws.end()).size() == 30);
  // Two steps in, the run stands at position 12; resuming there reads the same last three steps.
  Batch b;
  for (auto& r : ranks) {
    r->start_epoch(4);
    REQUIRE(r->next(b));
    REQUIRE(r->next(b));
  }
  CHECK(std::min({ranks[0]->position(), ranks[1]->position(), ranks[2]->position()}) == 12);
  for (uint32_t r = 0; r < 3; ++r) {
    const std::vector<Batch> rest = read_epoch(*ranks[r], 4, 12);
    REQUIRE(rest.size() == 3);
    for (size_t s = 0; s < 3; ++s) {
      CHECK(rest[s].paths == epochs[r][s + 2].paths);
      CHECK(rest[s].patches == epochs[r][s + 2].patches);
    }
  }
}

TEST_CASE("a run with repeated augmentation resumed mid-epoch retraces the uninterrupted run", "[train][sampler]") {
  test::TempDir out("repeated-aug-run");
  test::write_stripe_dataset(out.path / "data", 16, 4, 77, 0);  // 64 train: 4 steps of 16 per epoch
  train::RunConfig cfg =
      train::RunConfig::parse(test::tiny_stripes_config_yaml(2, (out.path / "data").string()), "tiny_stripes.yaml");
  cfg.apply_overrides({"data.repeated_aug=true", "data.hflip=0.5"});  // flips: the repeats differ
  train::TrainOptions stopped;
  stopped.output = out / "resumed";
  stopped.quiet = true;
  stopped.max_steps = 5;  // one step into epoch 2
  CHECK(train::train(test::ctx(), cfg, stopped).stopped_early);
  CHECK(train::read_checkpoint_meta(out / "resumed/last.safetensors").position == 16);
  train::TrainOptions resumed;
  resumed.resume = out / "resumed/last.safetensors";
  resumed.quiet = true;
  train::train(test::ctx(), cfg, resumed);
  train::TrainOptions whole;
  whole.output = out / "whole";
  whole.quiet = true;
  train::train(test::ctx(), cfg, whole);
  const std::string a = test::read_file(out / "resumed/steps.csv"), b = test::read_file(out / "whole/steps.csv");
  CHECK(std::count(b.begin(), b.end(), '\n') == 1 + 8);  // header + 2 epochs x 4 steps: the epoch kept its length
  CHECK(a == b);
  const model::SafeTensors x = model::read_safetensors(out / "resumed/last.safetensors"),
                           y = model::read_safetensors(out / "whole/last.safetensors");
  for (const model::Tensor& t : x.tensors) {
    INFO(t.name);
    REQUIRE(y.find(t.name) != nullptr);
    CHECK(t.data == y.find(t.name)->data);
  }
}

#ifdef VKVIT_MPIEXEC
namespace {

// steps.csv's loss column (the third).
std::vector<double> step_losses(const fs::path& run) {
  std::vector<double> out;
  const std::vector<std::string> lines = test::lines_of(test::read_file(run / "steps.csv"));
  for (size_t i = 1; i < lines.size(); ++i) {
    std::stringstream ss(lines[i]);
    std::string field;
    for (int k = 0; k < 3; ++k) std::getline(ss, field, ',');
    out.push_back(std::stod(field));
  }
  return out;
}

}  // namespace

TEST_CASE("two ranks with repeated augmentation train like one process with twice the batch", "[mpi][cli][sampler]") {
  test::TempDir dir("repeated-aug-mpi");
  test::write_stripe_dataset(dir.path / "data", 24, 2, 8, 0);  // 96 train images: 3 steps of 32
  test::write_file(dir.path / "tiny.yaml", test::tiny_stripes_config_yaml(1));
  auto args = [&](int batch, const std::string& out) {
    return "train -q --config " + test::q(dir.path / "tiny.yaml") + " --data-dir " + test::q(dir.path / "data") +
           " -b " + std::to_string(batch) + " --output " + test::q(dir.path / out) +
           " --set data.repeated_aug=true --set data.hflip=0.5";
  };
  const test::CliRun one = test::run_cli(args(32, "one"));
  INFO(one.err);
  REQUIRE(one.status == 0);
  const test::CliRun two = test::mpirun("-np 2 " + std::string(VKVIT_BINARY) + " " + args(16, "two"));
  INFO(two.err);
  REQUIRE(two.status == 0);
  const std::vector<double> a = step_losses(dir.path / "one"), b = step_losses(dir.path / "two");
  REQUIRE(a.size() == 3);
  REQUIRE(b.size() == a.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(std::abs(a[i] - b[i]) <= 2e-5 * std::abs(a[i]) + 1e-6);
}
#endif
