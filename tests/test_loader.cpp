// data: Loader determinism across worker counts and runs, shuffle per epoch, drop_last vs keep
// last, counted skips of bad files, the consecutive-failure stop, restarting mid-epoch, and the
// shards of data-parallel runs.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include <opencv2/imgcodecs.hpp>

#include "base/error.h"
#include "data/loader.h"

using namespace vkvit;
using namespace vkvit::data;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

// root/c<k>/<i>.png with random pixels of varied sizes; removed with the object.
struct Dataset {
  fs::path root;
  Dataset(const std::string& tag, int classes, int per_class) {
    root = fs::temp_directory_path() / ("vkvit-loader-" + tag + "-" + std::to_string(::getpid()));
    fs::remove_all(root);
    cv::RNG rng(uint64_t(classes * 1000 + per_class));
    for (int k = 0; k < classes; ++k) {
      fs::create_directories(root / ("c" + std::to_string(k)));
      for (int i = 0; i < per_class; ++i) {
        cv::Mat m(20 + i % 5, 24 + k, CV_8UC3);
        rng.fill(m, cv::RNG::UNIFORM, 0, 256);
        cv::imwrite((root / ("c" + std::to_string(k)) / (std::to_string(i) + ".png")).string(), m);
      }
    }
  }
  ~Dataset() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  std::string file(const std::string& name) const { return (root / name).string(); }
};

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

LoaderConfig small_config(bool train, uint32_t workers) {
  LoaderConfig c;
  c.batch_size = 4;
  c.workers = workers;
  c.train = train;
  c.seed = 42;
  c.prefetch_batches = 2;
  c.patch_size = 8;
  c.transform.image_size = 16;
  return c;
}

std::vector<Batch> epoch(Loader& loader, uint64_t e) {
  loader.start_epoch(e);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

bool same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].size != b[i].size || a[i].labels != b[i].labels || a[i].paths != b[i].paths || a[i].patches != b[i].patches)
      return false;
  return true;
}

}  // namespace

TEST_CASE("loader batches are identical across worker counts and runs for a seed and epoch", "[data]") {
  Dataset d("determinism", 3, 7);
  const ImageFolder f = ImageFolder::scan(d.root.string());
  REQUIRE(f.samples.size() == 21);
  Loader l0(f.samples, small_config(true, 0)), l1(f.samples, small_config(true, 1)), l3(f.samples, small_config(true, 3));
  const auto a = epoch(l0, 1), b = epoch(l1, 1), c = epoch(l3, 1), again = epoch(l3, 1);
  REQUIRE(a.size() == 5);
  CHECK(a[0].patches.size() == 4u * 4 * 3 * 8 * 8);  // (B, Np, C P P)
  CHECK(same(a, b));
  CHECK(same(a, c));
  CHECK(same(a, again));

  // Another epoch shuffles differently; a different seed too.
  const auto e2 = epoch(l3, 2);
  CHECK_FALSE(same(a, e2));
  LoaderConfig other = small_config(true, 2);
  other.seed = 43;
  Loader lo(f.samples, other);
  CHECK_FALSE(same(a, epoch(lo, 1)));

  // Labels travel with their paths; no image repeats within an epoch.
  std::set<std::string> seen;
  for (const Batch& batch : e2)
    for (uint32_t i = 0; i < batch.size; ++i) {
      CHECK(seen.insert(batch.paths[i]).second);
      CHECK(fs::path(batch.paths[i]).parent_path().filename().string() == "c" + std::to_string(batch.labels[i]));
    }
  CHECK(seen.size() == 20);
  CHECK(Loader::epoch_order(5, false, 1, 1) == std::vector<uint32_t>{0, 1, 2, 3, 4});
}

TEST_CASE("loader drops the last partial batch when training and keeps it otherwise", "[data]") {
  Dataset d("drop-last", 3, 7);
  const ImageFolder f = ImageFolder::scan(d.root.string());
  Loader train(f.samples, small_config(true, 2)), eval(f.samples, small_config(false, 2));
  CHECK(train.batches_per_epoch() == 5);
  CHECK(eval.batches_per_epoch() == 6);
  const auto t = epoch(train, 0), e = epoch(eval, 0);
  REQUIRE(t.size() == 5);
  REQUIRE(e.size() == 6);
  for (const Batch& b : t) CHECK(b.size == 4);
  CHECK(e.back().size == 1);
  CHECK(e.back().patches.size() == 1u * 4 * 3 * 64);
  // Eval keeps dataset order.
  std::vector<std::string> paths;
  for (const Batch& b : e) paths.insert(paths.end(), b.paths.begin(), b.paths.end());
  std::vector<std::string> want;
  for (const Sample& s : f.samples) want.push_back(s.path);
  CHECK(paths == want);

  LoaderConfig big = small_config(true, 2);
  big.batch_size = 22;
  CHECK_THROWS_WITH(Loader(f.samples, big), Contains("fewer than one batch"));
  CHECK_THROWS_WITH(Loader({}, small_config(false, 2)), Contains("no images"));
  LoaderConfig odd = small_config(false, 2);
  odd.patch_size = 5;
  CHECK_THROWS_WITH(Loader(f.samples, odd), Contains("multiple of patch size"));
}

TEST_CASE("loader skips and counts files that fail and stops after too many in a row", "[data]") {
  Dataset d("skips", 2, 5);
  write_text(d.file("c0/bad-empty.png"), "");
  write_text(d.file("c1/bad-text.jpg"), "not a jpeg");
  const ImageFolder f = ImageFolder::scan(d.root.string());
  REQUIRE(f.samples.size() == 12);
  for (uint32_t workers : {0u, 2u}) {
    INFO("workers " << workers);
    Loader eval(f.samples, small_config(false, workers));
    const auto e = epoch(eval, 0);
    CHECK(eval.skipped_this_epoch() == 2);
    uint32_t n = 0;
    for (const Batch& b : e) {
      n += b.size;
      for (const std::string& p : b.paths) CHECK(p.find("bad-") == std::string::npos);
    }
    CHECK(n == 10);
    REQUIRE(e.size() == 3);  // 4 + 4 + 2: the good files close the gaps
    CHECK(e.back().size == 2);
    epoch(eval, 1);
    CHECK(eval.skipped_this_epoch() == 2);  // counted per epoch
  }

  // Five broken files in a row with a limit of 3.
  for (int i = 0; i < 5; ++i) write_text(d.file("c0/broken" + std::to_string(i) + ".png"), "");
  const ImageFolder g = ImageFolder::scan(d.root.string());
  LoaderConfig c = small_config(false, 2);
  c.max_consecutive_failures = 3;
  Loader l(g.samples, c);
  l.start_epoch(0);
  Batch b;
  CHECK_THROWS_WITH([&] { while (l.next(b)) {} }(), Contains("4 images in a row failed") && Contains("broken"));
  // The loader is usable again after a new start_epoch (same files, same failure).
  c.max_consecutive_failures = 10;
  Loader tolerant(g.samples, c);
  const auto t = epoch(tolerant, 0);
  CHECK(tolerant.skipped_this_epoch() == 7);
}

TEST_CASE("loader shards split each global batch between ranks and cover every image once", "[data][mpi]") {
  Dataset d("shards", 3, 9);
  const ImageFolder f = ImageFolder::scan(d.root.string());
  REQUIRE(f.samples.size() == 27);
  auto sharded = [&](bool train, uint32_t batch, uint32_t index, uint32_t count) {
    LoaderConfig c = small_config(train, 1);
    c.batch_size = batch;
    c.shard_index = index;
    c.shard_count = count;
    return std::make_unique<Loader>(f.samples, c);
  };
  // Training: 2 shards of batch 2 read, step by step, the halves of one loader's batch of 4
  // (rounds of 4 positions: 6 steps, the 3 positions left over are dropped as a batch would be).
  LoaderConfig one_cfg = small_config(true, 1);
  Loader one(f.samples, one_cfg);
  auto s0 = sharded(true, 2, 0, 2), s1 = sharded(true, 2, 1, 2);
  CHECK(s0->batches_per_epoch() == 6);
  const auto whole = epoch(one, 3), a = epoch(*s0, 3), b = epoch(*s1, 3);
  REQUIRE(whole.size() == 6);
  REQUIRE(a.size() == 6);
  REQUIRE(b.size() == 6);
  for (size_t i = 0; i < whole.size(); ++i) {
    std::vector<std::string> halves = a[i].paths;
    halves.insert(halves.end(), b[i].paths.begin(), b[i].paths.end());
    CHECK(halves == whole[i].paths);
  }
  // The run's position is the minimum over the shards' next unread positions.
  s0->start_epoch(3);
  s1->start_epoch(3);
  Batch batch;
  for (int step = 1; step <= 2; ++step) {
    REQUIRE(s0->next(batch));
    REQUIRE(s1->next(batch));
    CHECK(std::min(s0->position(), s1->position()) == uint64_t(4 * step));
  }
  // Resuming at position 8 (maybe with another number of shards) splits the rest the same way.
  one.start_epoch(3, 8);
  s0->start_epoch(3, 8);
  s1->start_epoch(3, 8);
  REQUIRE(one.next(batch));
  Batch h0, h1;
  REQUIRE(s0->next(h0));
  REQUIRE(s1->next(h1));
  h0.paths.insert(h0.paths.end(), h1.paths.begin(), h1.paths.end());
  CHECK(h0.paths == batch.paths);

  // Evaluation: 3 shards of batch 4 keep every image exactly once (chunks 0,3,6 / 1,4 / 2,5).
  std::multiset<std::string> seen;
  uint64_t batches = 0;
  for (uint32_t i = 0; i < 3; ++i) {
    auto e = sharded(false, 4, i, 3);
    const auto got = epoch(*e, 0);
    batches += got.size();
    for (const Batch& g : got) seen.insert(g.paths.begin(), g.paths.end());
  }
  CHECK(batches == 7);
  CHECK(seen.size() == 27);
  CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 27);

  // A shard that meets a broken file runs one batch short at the end of the epoch; the trainer
  // lets it take part in that step with no images.
  REQUIRE(f.samples[0].path == d.file("c0/0.png"));
  write_text(d.file("c0/0.png"), "");
  const std::vector<uint32_t> order = Loader::epoch_order(27, true, 42, 3);
  const uint64_t at = uint64_t(std::find(order.begin(), order.end(), 0u) - order.begin());
  const uint32_t owner = at < 24 ? uint32_t(at / 2 % 2) : 2;  // 2: in the dropped tail, never read
  std::vector<std::unique_ptr<Loader>> t;
  t.push_back(sharded(true, 2, 0, 2));
  t.push_back(sharded(true, 2, 1, 2));
  for (uint32_t i = 0; i < 2; ++i) {
    INFO("shard " << i << ", broken file at position " << at);
    const auto got = epoch(*t[i], 3);
    CHECK(t[i]->skipped_this_epoch() == (i == owner ? 1u : 0u));
    CHECK(got.size() == (i == owner ? 5u : 6u));
  }

  LoaderConfig too_few = small_config(true, 1);
  too_few.batch_size = 14;
  too_few.shard_count = 2;
  CHECK_THROWS_WITH(Loader(f.samples, too_few), Contains("for each of 2 ranks"));
}

TEST_CASE("loader restarts an epoch midway without waiting for the old one", "[data]") {
  Dataset d("restart", 2, 10);
  const ImageFolder f = ImageFolder::scan(d.root.string());
  LoaderConfig c = small_config(true, 2);
  Loader l(f.samples, c);
  const auto full = epoch(l, 3);
  l.start_epoch(3);
  Batch b;
  REQUIRE(l.next(b));
  CHECK(b.paths == full[0].paths);
  const auto again = epoch(l, 3);  // restart while workers are ahead
  CHECK(same(full, again));
}

// Throughput on a prepared ImageFolder (datasets/prepare_fashion_mnist.sh); hidden, run by hand:
//   VKVIT_BENCH_DATA=datasets/fashion-mnist/train build/tests/vkvit_tests "[.data-bench]"
TEST_CASE("loader throughput on an image folder", "[.data-bench]") {
  const char* dir = std::getenv("VKVIT_BENCH_DATA");
  if (!dir) {
    WARN("set VKVIT_BENCH_DATA to an ImageFolder root");
    return;
  }
  const ImageFolder f = ImageFolder::scan(dir);
  for (int size : {28, 224}) {
    for (uint32_t workers : {1u, 2u}) {
      LoaderConfig c;
      c.batch_size = 256;
      c.workers = workers;
      c.transform.image_size = size;
      c.transform.channels = 1;
      c.transform.mean = {0.286f};
      c.transform.std = {0.353f};
      c.patch_size = size == 28 ? 7 : 16;
      std::vector<Sample> s(f.samples.begin(), f.samples.begin() + std::min<size_t>(f.samples.size(), size == 28 ? 20000 : 3000));
      Loader l(s, c);
      const auto t0 = std::chrono::steady_clock::now();
      l.start_epoch(0);
      Batch b;
      uint64_t n = 0;
      while (l.next(b)) n += b.size;
      const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      WARN("size " << size << ", " << workers << " worker(s): " << n << " images in " << sec << " s = " << n / sec << " img/s");
    }
  }
}

TEST_CASE("prepare_fashion_mnist builds a label-ordered image folder and is idempotent", "[data]") {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")) {
    WARN("skipped: Debian's dataset-fashion-mnist is not installed");
    return;
  }
  const fs::path out = fs::temp_directory_path() / ("vkvit-fmnist-" + std::to_string(::getpid()));
  fs::remove_all(out);
  const std::string cmd = std::string(VKVIT_SOURCE_DIR) + "/datasets/prepare_fashion_mnist.sh --limit-train 30 --limit-val 10 --jobs 1 --out " +
                          out.string() + " > /dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  const auto stamp = fs::last_write_time(out / "train");
  REQUIRE(std::system(cmd.c_str()) == 0);  // second run: nothing rewritten
  CHECK(fs::last_write_time(out / "train") == stamp);

  const ImageFolder train = ImageFolder::scan((out / "train").string()), val = ImageFolder::scan((out / "val").string());
  CHECK(train.classes == std::vector<std::string>{"0_T-shirt_top", "1_Trouser", "2_Pullover", "3_Dress", "4_Coat",
                                                  "5_Sandal", "6_Shirt", "7_Sneaker", "8_Bag", "9_Ankle_boot"});
  CHECK(val.classes == train.classes);
  CHECK(train.samples.size() == 30);
  CHECK(val.samples.size() == 10);
  // The first training image of Fashion-MNIST is an ankle boot (label 9).
  CHECK(fs::exists(out / "train/9_Ankle_boot/00000.png"));
  const cv::Mat m = decode_image((out / "train/9_Ankle_boot/00000.png").string(), 1);
  CHECK(m.size() == cv::Size(28, 28));
  double lo, hi;
  cv::minMaxLoc(m, &lo, &hi);
  CHECK(lo == 0);
  CHECK(hi > 200);
  fs::remove_all(out);
}
