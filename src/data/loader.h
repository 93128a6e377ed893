// Loader: batches of patchified images, prepared ahead by worker threads.
//
// Workers take positions of the epoch's order from a shared counter, decode + transform + patchify
// into a bounded window of slots, and next() assembles batches from the slots strictly in order.
// Every random choice comes from a per-sample generator seeded from (seed, epoch, sample index, and
// with repeated augmentation the repeat) and the order from (seed, epoch) (data/sampler.h), so a
// batch's contents never depend on worker count or timing.
// A file that fails is skipped (warned once by name, counted); the next good file takes its place
// in the batch, so with failures the batch boundaries shift, still deterministically.
#pragma once
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "data/decode.h"
#include "data/image_folder.h"
#include "data/transform.h"

namespace vkvit::data {

struct LoaderConfig {
  uint32_t batch_size = 64;
  uint32_t workers = 2;  // 0: decode on the calling thread inside next()
  bool train = true;     // shuffle + drop_last + random transforms; otherwise dataset order, eval transform, keep last
  uint64_t seed = 0;
  uint32_t prefetch_batches = 4;  // samples prepared ahead: prefetch_batches * batch_size
  int patch_size = 16;
  TransformConfig transform;
  DecodeLimits limits;
  uint32_t max_consecutive_failures = 20;  // more failures than this in a row: the dataset is broken, throw
  // Data-parallel runs: this loader reads shard `shard_index` of `shard_count`. The epoch order is
  // cut into chunks of batch_size positions and chunk c goes to shard c % shard_count, so with
  // N shards of batch B step s covers exactly the positions a single loader of batch N*B would
  // read at step s. Training keeps only whole rounds of N chunks (drop_last for the global
  // batch); evaluation keeps everything.
  uint32_t shard_index = 0, shard_count = 1;
  // Training only: repeated augmentation (data/sampler.h). The epoch order repeats every shuffled
  // sample num_repeats times and is dealt position by position to the shards instead of in
  // chunks; each shard reads repeated_aug_per_rank(n, shard_count) positions per epoch.
  bool repeated_aug = false;
  uint32_t num_repeats = 3;
  bool measure_stages = false;  // sum each stage's thread CPU time (stage_times(); `vkvit bench loader`)
};

// CPU time spent per stage over the images prepared (and batches assembled) so far, with
// LoaderConfig::measure_stages: read the file, decode it, transform (crop, resize, flip, augment),
// normalise + patchify into the image's slot, copy the slots into the batch.
struct LoaderStageTimes {
  double read_ms = 0, decode_ms = 0, transform_ms = 0, patchify_ms = 0, batch_ms = 0;
  uint64_t images = 0;  // images prepared, failures included
};

struct Batch {
  uint32_t size = 0;
  std::vector<float> patches;  // (size, Np, C*P*P); empty when next() wrote them elsewhere
  std::vector<uint32_t> labels;
  std::vector<std::string> paths;
};

class Loader {
 public:
  // samples: from ImageFolder, or a list of files (label 0) for predict. Throws vkvit::Error for an
  // empty list, batch_size 0, a training set smaller than one batch, or an invalid transform.
  Loader(std::vector<Sample> samples, const LoaderConfig& config);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts (or restarts) an epoch; the shuffle order is a pure function of (seed, epoch) when train.
  // `first_position` skips that many positions of the epoch's order (resuming mid-epoch: pass
  // what position() returned when the checkpoint was written).
  void start_epoch(uint64_t epoch, uint64_t first_position = 0);
  // Positions of the epoch's order consumed so far (images delivered plus files skipped). For a
  // shard: the position of its next unread image (the end of its range when done); the minimum
  // over the shards is where the whole run stands.
  uint64_t position() const;
  // Fills `out` with the next batch; false at the end of the epoch. The last partial batch is
  // dropped when train and kept otherwise. Throws vkvit::Error after more than
  // max_consecutive_failures failed files in a row.
  // With `patches_out` (room for batch_size * floats_per_image() floats, e.g. mapped host memory
  // that the GPU copies from), the patches are assembled there and out.patches stays empty.
  bool next(Batch& out, float* patches_out = nullptr);
  uint64_t skipped_this_epoch() const { return skipped_; }
  // Called at the start of every next(), on its caller's thread, with the positions consumed so
  // far this epoch (images delivered plus files skipped) and all the positions this loader reads
  // in the epoch: a progress bar's numbers (train/progress.h). The caller is done with the
  // previous batch by then, so the last call, from the next() that ends the epoch, says all done.
  void set_progress_callback(std::function<void(uint64_t consumed, uint64_t total)> fn) { progress_ = std::move(fn); }
  uint32_t batch_size() const { return config_.batch_size; }
  // Batches in an epoch when no file fails (an upper bound otherwise).
  uint64_t batches_per_epoch() const;
  // Positions in an epoch's order, every shard's together: the sample count, or with repeated
  // augmentation shard_count * repeated_aug_per_rank(...).
  uint64_t epoch_length() const;

  uint64_t patches_per_image() const { return uint64_t(grid_) * grid_; }
  uint64_t floats_per_patch() const { return uint64_t(config_.transform.channels) * config_.patch_size * config_.patch_size; }
  uint64_t floats_per_image() const { return patches_per_image() * floats_per_patch(); }
  const std::vector<Sample>& samples() const { return samples_; }
  LoaderStageTimes stage_times() const;

  // The order of sample indices for an epoch without repeated augmentation: identity when !train,
  // else a Fisher-Yates shuffle driven by (seed, epoch) (data::shuffled_indices).
  static std::vector<uint32_t> epoch_order(uint32_t n, bool train, uint64_t seed, uint64_t epoch);

 private:
  struct Slot {
    std::vector<float> data;  // (Np, C*P*P)
    bool ready = false;
    bool failed = false;
    std::string error;
  };
  void stop_workers();
  void worker_loop();
  void prepare(uint64_t position, Slot& slot) const;
  bool repeating() const { return config_.train && config_.repeated_aug; }
  // What seeds the augmentation of order_[position]: its sample index, with its repeat number in
  // the high 32 bits (0 for the first repeat, so it draws what the sample draws without repeats).
  uint64_t draw_key(uint64_t position) const;
  void transform_and_patchify(const SourceRegion& src, std::mt19937_64& rng, float* out, uint64_t& clock) const;

  enum Stage { kRead, kDecode, kTransform, kPatchify, kBatch, kStages };
  // Adds the thread CPU time since `clock` to `stage` and moves `clock` on (measure_stages only).
  void lap(Stage stage, uint64_t& clock) const;

  std::vector<Sample> samples_;
  LoaderConfig config_;
  int grid_ = 0;  // patches per side
  NormalizeTable normalize_;
  mutable std::array<std::atomic<uint64_t>, kStages> stage_ns_{};
  mutable std::atomic<uint64_t> images_prepared_{0};

  std::vector<uint32_t> order_;      // sample indices this loader reads this epoch, in order
  std::vector<uint32_t> repeats_;    // repeated augmentation only: the repeat of each order_ entry
  std::vector<uint64_t> positions_;  // shards only: the epoch-order position of each order_ entry
  uint64_t end_position_ = 0;        // shards only: the end of the range read this epoch
  uint64_t epoch_ = 0;
  bool started_ = false;
  uint64_t skipped_ = 0;
  uint32_t consecutive_failures_ = 0;
  std::set<std::string> warned_;  // each failing file is warned about once per Loader
  std::function<void(uint64_t, uint64_t)> progress_;

  // Shared with the workers, guarded by mutex_.
  std::mutex mutex_;
  std::condition_variable work_cv_, ready_cv_;
  std::vector<Slot> slots_;  // position p lives in slots_[p % slots_.size()]
  uint64_t next_position_ = 0;  // next position a worker claims
  uint64_t cursor_ = 0;         // next position next() consumes
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace vkvit::data
