// `vkvit bench loader`: the data path alone, no GPU work. The real Loader (worker threads, the
// config's transforms, patchify into staging memory as train and eval use it) over one epoch of an
// ImageFolder split, timed by wall clock and by CPU time, with each stage's thread CPU time per
// image (read, decode, transform, patchify, batch) and the peak resident memory. A loader costing
// c CPU-ms per image feeds at most 1000 / c images per second per free core: the numbers that
// size a machine for a GPU (README, "How fast the loader is"). Built into vkvit only (vkvit-bench
// carries no OpenCV).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "cli/bench_common.h"
#include "cli/commands.h"
#include "data/image_folder.h"
#include "data/loader.h"
#include "train/config.h"
#include "train/loader_config.h"

namespace vkvit::cli {
namespace {

struct LoaderBenchOptions {
  std::string data_dir, split = "train", config;
  uint32_t workers = 1, images = 2000, batch = 64;
  double jpeg_dct_scaling = -1;  // < 0: the config's
  std::vector<std::string> overrides;  // --set key=value over --config
};

// `images` samples spread evenly over the folder (every class appears); training keeps whole
// batches, so that every image prepared is also delivered and the CPU time divides exactly.
std::vector<data::Sample> pick_samples(const std::vector<data::Sample>& all, uint64_t images, uint32_t batch, bool train) {
  uint64_t n = std::min<uint64_t>(images, all.size());
  if (train) n = n / batch * batch;
  if (n == 0) throw Error("bench loader: the folder has " + std::to_string(all.size()) + " images, fewer than one batch of " +
                          std::to_string(batch) + "; lower --batch-size");
  std::vector<data::Sample> picked;
  for (uint64_t i = 0; i < n; ++i) picked.push_back(all[size_t(i * all.size() / n)]);
  return picked;
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

void print_report(const LoaderBenchOptions& o, const data::LoaderConfig& lc, uint64_t images, double wall_s,
                  double cpu_ms, const data::LoaderStageTimes& st) {
  const double per = 1.0 / double(std::max<uint64_t>(st.images, 1));
  const double staged = st.read_ms + st.decode_ms + st.transform_ms + st.patchify_ms + st.batch_ms;
  std::printf("bench loader: %s/%s, %s transform, %d px, patch %d, %s; %llu images, %u worker(s), batch %u\n",
              o.data_dir.c_str(), o.split.c_str(), lc.train ? "train" : "eval", lc.transform.image_size, lc.patch_size,
              lc.transform.interpolation.c_str(), static_cast<unsigned long long>(images), lc.workers, lc.batch_size);
  std::printf("  images/s            %9.1f  (wall %.2f s)\n", double(images) / wall_s, wall_s);
  std::printf("  images per CPU-s    %9.1f  (%.3f CPU-ms per image, all threads)\n", double(images) / (cpu_ms * 1e-3),
              cpu_ms / double(images));
  std::printf("  CPU-ms per image    read %.3f  decode %.3f  transform %.3f  patchify %.3f  batch %.3f  other %.3f\n",
              st.read_ms * per, st.decode_ms * per, st.transform_ms * per, st.patchify_ms * per, st.batch_ms * per,
              std::max(0.0, cpu_ms - staged) / double(images));
  std::printf("  peak RSS            %9.1f MiB\n", peak_rss_mib());
  std::printf("RESULT impl=vkvit mode=loader split=%s workers=%u images=%llu img_per_s=%.2f img_per_cpu_s=%.2f "
              "cpu_ms_per_img=%.4f read_ms=%.4f decode_ms=%.4f transform_ms=%.4f patchify_ms=%.4f batch_ms=%.4f "
              "peak_rss_mib=%.1f\n",
              o.split.c_str(), lc.workers, static_cast<unsigned long long>(images), double(images) / wall_s,
              double(images) / (cpu_ms * 1e-3), cpu_ms / double(images), st.read_ms * per, st.decode_ms * per,
              st.transform_ms * per, st.patchify_ms * per, st.batch_ms * per, peak_rss_mib());
}

void run_loader_bench(const LoaderBenchOptions& o) {
  const bool train = o.split == "train";
  data::LoaderConfig lc;  // without --config: timm's ImageNet defaults (224, bicubic, patch 16)
  if (!o.overrides.empty() && o.config.empty()) throw Error("bench loader: --set needs --config FILE");
  if (!o.config.empty()) {
    train::RunConfig cfg = train::RunConfig::load(o.config);
    if (!o.overrides.empty()) cfg.apply_overrides(o.overrides);
    lc = train::loader_config(cfg, train);
  }
  lc.train = train;
  if (o.jpeg_dct_scaling >= 0) lc.transform.jpeg_dct_scaling = o.jpeg_dct_scaling;
  lc.workers = o.workers;
  lc.batch_size = o.batch;
  lc.measure_stages = true;
  const data::ImageFolder folder = data::ImageFolder::scan(o.data_dir + "/" + o.split);
  data::Loader loader(pick_samples(folder.samples, o.images, o.batch, train), lc);
  // Staging memory as train and eval hand it to next() (mapped host memory there).
  std::vector<float> staging(size_t(lc.batch_size) * loader.floats_per_image());
  data::Batch batch;
  uint64_t images = 0;
  const double cpu0 = process_cpu_ms();
  const auto t0 = std::chrono::steady_clock::now();
  loader.start_epoch(0);
  while (loader.next(batch, staging.data())) images += batch.size;
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu_ms = process_cpu_ms() - cpu0;
  if (images == 0) throw Error("bench loader: no image of " + o.data_dir + "/" + o.split + " could be loaded");
  if (loader.skipped_this_epoch() > 0)
    std::printf("bench loader: %llu file(s) failed and were skipped\n",
                static_cast<unsigned long long>(loader.skipped_this_epoch()));
  print_report(o, lc, images, wall_s, cpu_ms, loader.stage_times());
}

}  // namespace

void add_loader_bench_command(CLI::App* bench) {
  auto o = std::make_shared<LoaderBenchOptions>();
  auto* cmd = bench->add_subcommand("loader", "The data loader alone (read, decode, transform, patchify), no GPU work");
  cmd->add_option("--data-dir", o->data_dir, "ImageFolder root with <split>/<class>/<image> (datasets/make_jpeg_folder.py)")
      ->required();
  cmd->add_option("--split", o->split, "train (train transform, shuffled) or val (eval transform)")
      ->check(CLI::IsMember({"train", "val"}));
  cmd->add_option("--workers", o->workers, "Loader worker threads (0: on the calling thread)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--images", o->images, "Images to load, spread over the folder (one epoch of them)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("-b,--batch-size", o->batch, "Batch size")->check(CLI::PositiveNumber);
  cmd->add_option("--config", o->config, "Run config whose data transforms and model size to use (default: timm's ImageNet ones)");
  cmd->add_option("--set", o->overrides,
                  "Override a config key as `vkvit train --set`, e.g. --set data.reprob=0.25 (repeatable)");
  cmd->add_option("--jpeg-dct-scaling", o->jpeg_dct_scaling,
                  "data.jpeg_dct_scaling for this run: 0 = off, g >= 1 = decode JPEGs reduced where the crop keeps g x "
                  "the output size")
      ->check(CLI::Range(0.0, 64.0));
  cmd->footer("Examples:\n"
              "  /usr/bin/python3 datasets/make_jpeg_folder.py --out /tmp/jpegs\n"
              "  vkvit bench loader --data-dir /tmp/jpegs --workers 1\n"
              "  vkvit bench loader --data-dir /tmp/jpegs --split val --workers 4 --images 4000\n"
              "  vkvit bench loader --data-dir /tmp/large --split val --jpeg-dct-scaling 2");
  cmd->callback([o] { run_loader_bench(*o); });
}

}  // namespace vkvit::cli
