// Data-parallel pieces of the trainer; see data_parallel.h.
#include "train/data_parallel.h"

#include <algorithm>
#include <cstring>
#include <tuple>

#include "base/error.h"

namespace vkvit::train {

namespace {

// FNV-1a, 64 bits: a fingerprint to compare across ranks, not a defence against anything.
struct Fingerprint {
  uint64_t h = 1469598103934665603ull;
  void add(const void* data, size_t bytes) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  void add(const std::string& s) {
    add(s.data(), s.size());
    add("\0", 1);
  }
  void add(uint64_t v) { add(&v, sizeof v); }
};

// Paths count from the dataset folder, which may be mounted elsewhere on another machine.
uint64_t listing_fingerprint(const std::vector<data::Sample>& samples, const std::string& root) {
  Fingerprint f;
  f.add(uint64_t(samples.size()));
  for (const data::Sample& s : samples) {
    f.add(s.path.compare(0, root.size(), root) == 0 ? s.path.substr(root.size()) : s.path);
    f.add(uint64_t(s.label));
  }
  return f.h;
}

}  // namespace

void check_ranks_agree(dist::Comm& comm, const RunConfig& cfg, const std::vector<std::string>& classes,
                       const std::vector<data::Sample>& train, const std::vector<data::Sample>& val) {
  if (!comm.distributed()) return;
  RunConfig same = cfg;
  same.data.dir.clear();  // the dataset's own listing is compared below
  Fingerprint config;
  config.add(same.to_yaml());
  Fingerprint class_list;
  for (const std::string& c : classes) class_list.add(c);
  // Every rank's six values in one exchange; a rank compares itself with rank 0.
  enum { kConfig, kClasses, kTrain, kVal, kTrainCount, kValCount, kValues };
  const std::vector<uint64_t> all =
      comm.allgather({config.h, class_list.h, listing_fingerprint(train, cfg.data.dir),
                      listing_fingerprint(val, cfg.data.dir), train.size(), val.size()});
  const size_t me = size_t(comm.rank());
  auto mine = [&](int what) { return all[me * kValues + size_t(what)]; };
  auto root = [&](int what) { return all[size_t(what)]; };
  if (mine(kConfig) != root(kConfig))
    throw Error("its run config differs from rank 0's (" + cfg.source +
                "): every rank must be started with the same --config and overrides (only data.dir may differ)");
  const std::string where = " in " + cfg.data.dir;
  if (mine(kClasses) != root(kClasses))
    throw Error("its class folders" + where + " differ from rank 0's: every rank must see the same dataset");
  for (const auto& [split, list, count] : {std::tuple<const char*, int, int>{"training", kTrain, kTrainCount},
                                           {"validation", kVal, kValCount}})
    if (mine(list) != root(list))
      throw Error(std::string("its ") + split + " split" + where + " lists " + std::to_string(mine(count)) +
                  " images, rank 0's " + std::to_string(root(count)) +
                  (mine(count) == root(count) ? " with other names" : "") +
                  ": every rank must see the same dataset at the same path");
}

void broadcast_device(dist::Comm& comm, vk::Context& ctx, const vk::View& view) {
  if (!comm.distributed()) return;
  std::vector<char> host(view.size);
  if (comm.is_root()) ctx.download(view, host.data(), view.size);
  comm.broadcast(host.data(), view.size);
  if (!comm.is_root()) ctx.upload(view, host.data(), view.size);
}

GradientSync::GradientSync(vk::Context& ctx, dist::Comm& comm, const model::ParamLayout& layout,
                           const vk::View& grads, uint64_t bucket_bytes, bool overlap, const std::vector<bool>& frozen)
    : comm_(comm), grads_(grads), floats_(layout.total_floats()), overlap_(overlap) {
  staging_ = std::make_unique<vk::Buffer>(ctx, (floats_ + 1) * 4, vk::MemoryKind::host_readback, "gradient staging");
  // A tensor's range runs to the next tensor's offset, so the buckets tile the whole buffer,
  // alignment padding included; walked from the end, as the backward pass finishes them. Frozen
  // tensors (train.freeze) are left out: a bucket ends at one, and nothing of theirs is sent.
  const auto& params = layout.params();
  const uint64_t bucket_floats = std::max<uint64_t>(bucket_bytes / 4, 1);
  uint64_t bucket_end = floats_;
  bool open = false;  // a bucket ends at bucket_end and has not been pushed yet
  for (size_t i = params.size(); i-- > 0;) {
    const uint64_t first = i == 0 ? 0 : params[i].offset;
    const uint64_t end = i + 1 < params.size() ? params[i + 1].offset : floats_;
    if (!frozen.empty() && frozen[i]) {
      if (open) buckets_.push_back({end, bucket_end - end, false, -1});
      open = false;
      continue;
    }
    if (!open) bucket_end = end;
    open = true;
    if (bucket_end - first >= bucket_floats || i == 0) {
      buckets_.push_back({first, bucket_end - first, false, -1});
      bucket_end = first;
      open = false;
    }
  }
  partial_ = std::find(frozen.begin(), frozen.end(), true) != frozen.end();
  for (const Bucket& b : buckets_) sent_floats_ += b.count;
}

std::unique_ptr<GradientSync> GradientSync::with_tuning(vk::Context& ctx, dist::Comm& comm,
                                                     const model::ParamLayout& layout, const vk::View& grads,
                                                     const std::vector<bool>& frozen) {
  const vk::Tuning& tuning = ctx.tuning();
  return std::make_unique<GradientSync>(ctx, comm, layout, grads,
                                        tuning.allreduce_bucket_bytes.value_or(kDefaultBucketBytes),
                                        tuning.allreduce_overlap, frozen);
}

void GradientSync::begin_step() {
  for (Bucket& b : buckets_) {
    b.copied = false;
    b.part = -1;
  }
}

void GradientSync::grads_ready(vk::Recorder& rec, uint64_t first) {
  std::vector<Bucket*> done;
  for (Bucket& b : buckets_)
    if (!b.copied && b.first >= first) {
      rec.copy(grads_.slice(b.first, b.count), staging_->view().slice(b.first, b.count));
      b.copied = true;
      done.push_back(&b);
    }
  if (done.empty() || !overlap_ || first == 0) return;  // first == 0: the end of the step's recording
  const int part = rec.flush();
  for (Bucket* b : done) b->part = part;
}

void GradientSync::allreduce(vk::Recorder* rec, const std::function<float()>& weighted_loss) {
  float* s = staging();
  bool waited = rec == nullptr;
  if (!rec) std::memset(s, 0, floats_ * 4);  // no batch on this rank: zeros in every sum
  for (const Bucket& b : buckets_) {
    if (rec && b.part >= 0) {
      rec->wait_flushed(b.part);
    } else if (!waited) {
      rec->wait();
      waited = true;
    }
    comm_.allreduce_sum(s + b.first, b.count);
  }
  if (!waited) rec->wait();
  s[floats_] = rec ? weighted_loss() : 0.0f;
  comm_.allreduce_sum(s + floats_, 1);
}

void GradientSync::record_copy_back(vk::Recorder& rec) {
  if (!partial_) {
    rec.copy(staging_->view().slice(0, floats_), grads_.slice(0, floats_));
    return;
  }
  for (const Bucket& b : buckets_) rec.copy(staging_->view().slice(b.first, b.count), grads_.slice(b.first, b.count));
}

}  // namespace vkvit::train
