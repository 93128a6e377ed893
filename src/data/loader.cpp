// Loader (see loader.h). Positions p of the epoch order map to slots p % window; workers may claim
// a position only while it is less than cursor + window, so the slots of unconsumed positions are
// never reused, and next() can read a ready slot without holding the lock.
#include "data/loader.h"

#include <time.h>

#include <algorithm>

#include "base/error.h"
#include "base/log.h"
#include "data/patchify.h"
#include "data/rng.h"
#include "data/sampler.h"

namespace vkvit::data {

Loader::Loader(std::vector<Sample> samples, const LoaderConfig& config) : samples_(std::move(samples)), config_(config) {
  validate(config_.transform);
  if (samples_.empty()) throw Error("loader: no images to load");
  if (samples_.size() > UINT32_MAX) throw Error("loader: more than 2^32 images");
  if (config_.batch_size == 0) throw Error("loader: batch size must be > 0");
  if (config_.shard_count == 0 || config_.shard_index >= config_.shard_count)
    throw Error("internal: loader shard " + std::to_string(config_.shard_index) + " of " + std::to_string(config_.shard_count));
  if (config_.train && config_.shard_count > 1 && samples_.size() < uint64_t(config_.batch_size) * config_.shard_count)
    throw Error("loader: the training set has " + std::to_string(samples_.size()) + " images, fewer than one batch of " +
                std::to_string(config_.batch_size) + " for each of " + std::to_string(config_.shard_count) +
                " ranks; lower the batch size or use fewer ranks");
  if (config_.train && samples_.size() < config_.batch_size)
    throw Error("loader: the training set has " + std::to_string(samples_.size()) + " images, fewer than one batch of " +
                std::to_string(config_.batch_size) + " (the last partial batch is dropped when training); lower the batch size");
  if (repeating() && config_.num_repeats == 0) throw Error("loader: repeated augmentation needs num_repeats >= 1");
  if (repeating() && epoch_length() < uint64_t(config_.batch_size) * config_.shard_count)
    throw Error("loader: with repeated augmentation an epoch keeps " + std::to_string(epoch_length()) + " of the " +
                std::to_string(samples_.size()) + " training images, fewer than one batch of " +
                std::to_string(config_.batch_size) + " for each of " + std::to_string(config_.shard_count) +
                " ranks; lower the batch size or turn data.repeated_aug off");
  const int size = config_.transform.image_size, P = config_.patch_size;
  if (P <= 0 || size % P != 0)
    throw Error("loader: image size " + std::to_string(size) + " is not a multiple of patch size " + std::to_string(P));
  grid_ = size / P;
  normalize_ = normalize_table(config_.transform);
  const uint64_t window = uint64_t(std::max<uint32_t>(config_.prefetch_batches, 1)) * config_.batch_size;
  slots_.resize(size_t(std::min<uint64_t>(window, samples_.size())));
}

Loader::~Loader() { stop_workers(); }

std::vector<uint32_t> Loader::epoch_order(uint32_t n, bool train, uint64_t seed, uint64_t epoch) {
  return shuffled_indices(n, train, seed, epoch);
}

uint64_t Loader::epoch_length() const {
  if (!repeating()) return samples_.size();
  return uint64_t(config_.shard_count) * repeated_aug_per_rank(samples_.size(), config_.shard_count);
}

uint64_t Loader::batches_per_epoch() const {
  const uint64_t n = epoch_length(), b = config_.batch_size, shards = config_.shard_count;
  if (config_.train) return n / (b * shards);
  return ((n + b - 1) / b + shards - 1) / shards;
}

uint64_t Loader::draw_key(uint64_t position) const {
  return repeats_.empty() ? order_[position] : order_[position] | uint64_t(repeats_[position]) << 32;
}

uint64_t Loader::position() const {
  if (config_.shard_count == 1) return cursor_;
  return cursor_ < positions_.size() ? positions_[cursor_] : end_position_;
}

void Loader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void Loader::start_epoch(uint64_t epoch, uint64_t first_position) {
  stop_workers();
  epoch_ = epoch;
  order_ = epoch_order(uint32_t(samples_.size()), config_.train, config_.seed, epoch);
  repeats_.clear();
  if (repeating()) {
    EpochOrder repeated = repeated_order(order_, config_.num_repeats, epoch_length());
    order_ = std::move(repeated.samples);
    repeats_ = std::move(repeated.repeats);
  }
  if (first_position > order_.size())
    throw Error("resume position " + std::to_string(first_position) + " is past the end of an epoch of " +
                std::to_string(order_.size()) + " images; was the checkpoint written for another dataset?");
  skipped_ = 0;
  consecutive_failures_ = 0;
  for (Slot& s : slots_) s.ready = s.failed = false;
  next_position_ = cursor_ = first_position;
  if (config_.shard_count > 1) {
    // Chunks (or dealt positions) are counted from first_position, so that a resumed run (maybe
    // with another number of ranks) splits the rest of the epoch the way a fresh start would split a
    // whole one.
    const uint64_t B = config_.batch_size, shards = config_.shard_count, n = order_.size();
    const uint64_t round = B * shards;
    end_position_ = config_.train ? first_position + (n - first_position) / round * round : n;
    positions_ = shard_positions(first_position, end_position_, config_.batch_size, config_.shard_index,
                                 config_.shard_count, repeating());
    std::vector<uint32_t> mine, my_repeats;
    for (uint64_t p : positions_) {
      mine.push_back(order_[p]);
      if (!repeats_.empty()) my_repeats.push_back(repeats_[p]);
    }
    order_ = std::move(mine);
    repeats_ = std::move(my_repeats);
    next_position_ = cursor_ = 0;
  }
  stopping_ = false;
  started_ = true;
  for (uint32_t i = 0; i < config_.workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

namespace {
uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}
}  // namespace

void Loader::lap(Stage stage, uint64_t& clock) const {
  if (!config_.measure_stages) return;
  const uint64_t now = thread_cpu_ns();
  stage_ns_[stage] += now - clock;
  clock = now;
}

LoaderStageTimes Loader::stage_times() const {
  LoaderStageTimes t;
  t.read_ms = double(stage_ns_[kRead]) * 1e-6;
  t.decode_ms = double(stage_ns_[kDecode]) * 1e-6;
  t.transform_ms = double(stage_ns_[kTransform]) * 1e-6;
  t.patchify_ms = double(stage_ns_[kPatchify]) * 1e-6;
  t.batch_ms = double(stage_ns_[kBatch]) * 1e-6;
  t.images = images_prepared_;
  return t;
}

// The transform on 8-bit pixels, then normalisation and patchify in one pass into `out`. Random
// erasing works on normalised values, so with it the float image is made first (same bits).
void Loader::transform_and_patchify(const SourceRegion& src, std::mt19937_64& rng, float* out, uint64_t& clock) const {
  const TransformConfig& t = config_.transform;
  if (config_.train && t.reprob > 0) {
    cv::Mat image = normalize8(transform_train_8bit(src, t, rng), normalize_);
    random_erase_normalized(image, t, rng);
    lap(kTransform, clock);
    patchify(image, config_.patch_size, out);
  } else {
    const cv::Mat image8 = config_.train ? transform_train_8bit(src, t, rng) : transform_eval_8bit(src, t);
    lap(kTransform, clock);
    patchify_8bit(image8, normalize_, config_.patch_size, out);
  }
  lap(kPatchify, clock);
}

// Read + decode + transform + patchify one position into its slot. Never throws: a failure is
// recorded. The crop box is chosen from the image's size before decoding, so that a JPEG is decoded
// only around it; train's generator draws the box first, as transform_train does.
void Loader::prepare(uint64_t position, Slot& slot) const {
  const uint32_t index = order_[position];
  const Sample& sample = samples_[index];
  slot.failed = false;
  slot.error.clear();
  uint64_t clock = config_.measure_stages ? thread_cpu_ns() : 0;
  try {
    const std::vector<uint8_t> bytes = read_image_file(sample.path, config_.limits.max_file_bytes);
    lap(kRead, clock);
    const TransformConfig& t = config_.transform;
    std::mt19937_64 rng(mix_seed(config_.seed, epoch_, draw_key(position)));
    const SourceRegion src = decode_image_region(bytes, sample.path, t.channels, config_.limits, [&](int w, int h) {
      const CropBox box = config_.train ? train_source_box(w, h, t, rng) : eval_source_box(w, h, t);
      return RegionRequest(box, dct_scale_denom(w, h, box, t, config_.train));
    });
    lap(kDecode, clock);
    slot.data.resize(floats_per_image());
    transform_and_patchify(src, rng, slot.data.data(), clock);
  } catch (const std::exception& e) {  // vkvit::Error carries "<path>: <reason>"; others get the path added
    slot.failed = true;
    const std::string what = e.what();
    slot.error = what.compare(0, sample.path.size(), sample.path) == 0 ? what : sample.path + ": " + what;
  }
  ++images_prepared_;
}

void Loader::worker_loop() {
  const uint64_t n = order_.size(), window = slots_.size();
  for (;;) {
    uint64_t p;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [&] { return stopping_ || next_position_ >= n || next_position_ < cursor_ + window; });
      if (stopping_ || next_position_ >= n) return;
      p = next_position_++;
    }
    Slot& slot = slots_[p % window];
    prepare(p, slot);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      slot.ready = true;
    }
    ready_cv_.notify_all();
  }
}

bool Loader::next(Batch& out, float* patches_out) {
  if (!started_) throw Error("internal: Loader::next() before start_epoch()");
  const uint64_t n = order_.size(), window = slots_.size(), per_image = floats_per_image();
  const uint32_t B = config_.batch_size;
  if (progress_) progress_(cursor_, n);
  out.size = 0;
  if (patches_out) {
    out.patches.clear();
  } else {
    out.patches.resize(size_t(B) * per_image);
    patches_out = out.patches.data();
  }
  out.labels.clear();
  out.paths.clear();
  while (out.size < B && cursor_ < n) {
    const uint64_t p = cursor_;
    Slot& slot = slots_[p % window];
    if (threads_.empty()) {
      prepare(p, slot);
    } else {
      std::unique_lock<std::mutex> lock(mutex_);
      ready_cv_.wait(lock, [&] { return slot.ready; });
    }
    // The slot is ours until cursor_ moves past it.
    const Sample& sample = samples_[order_[p]];
    if (slot.failed) {
      ++skipped_;
      ++consecutive_failures_;
      if (warned_.insert(sample.path).second) log_warn("skipping " + slot.error);
      if (consecutive_failures_ > config_.max_consecutive_failures) {
        const std::string last = slot.error;
        stop_workers();
        started_ = false;
        throw Error(std::to_string(consecutive_failures_) + " images in a row failed to load (last: " + last +
                    "); check the dataset folder");
      }
    } else {
      consecutive_failures_ = 0;
      uint64_t clock = config_.measure_stages ? thread_cpu_ns() : 0;
      std::copy(slot.data.begin(), slot.data.end(), patches_out + size_t(out.size) * per_image);
      lap(kBatch, clock);
      out.labels.push_back(sample.label);
      out.paths.push_back(sample.path);
      ++out.size;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      slot.ready = false;
      ++cursor_;
    }
    work_cv_.notify_all();
  }
  if (out.size == 0 || (config_.train && out.size < B)) {
    out.size = 0;
    out.patches.clear();
    out.labels.clear();
    out.paths.clear();
    return false;
  }
  if (!out.patches.empty()) out.patches.resize(size_t(out.size) * per_image);
  return true;
}

}  // namespace vkvit::data
