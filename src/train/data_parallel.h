// Data-parallel training (`mpirun -np N vkvit train`): what the trainer adds when it runs as one
// of several ranks. Every rank holds the whole model and optimizer; each step, each rank computes
// the gradients of its share of the global batch, the ranks sum them (one bucketed allreduce
// through host-visible memory) and every rank applies the same AdamW update to the same weights.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/image_folder.h"
#include "dist/comm.h"
#include "model/vit_params.h"
#include "train/config.h"
#include "vk/context.h"
#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::train {

// Refuses a run whose ranks do not see the same thing: every rank hashes its resolved config
// (data.dir aside: machines may mount the dataset at different paths) and its listing of both
// splits (paths below data.dir, labels, classes); a rank that differs from rank 0 throws, naming
// itself and what differs, which stops the run (main() aborts all ranks).
void check_ranks_agree(dist::Comm& comm, const RunConfig& cfg, const std::vector<std::string>& classes,
                       const std::vector<data::Sample>& train, const std::vector<data::Sample>& val);

// Copies the device buffer range `view` from rank 0 to every rank, through host memory.
void broadcast_device(dist::Comm& comm, vk::Context& ctx, const vk::View& view);

// Sums the gradient buffer over the ranks, in buckets of whole parameter tensors taken in the
// order the backward pass finishes them (head, final norm, last block, ..., embeddings). Each
// bucket is copied into mapped host memory by the step's own commands as soon as its gradients
// are final (Vit::backward's grads_ready hook) and summed over the ranks by the host (MPI) while,
// with overlap on, the GPU goes on with the earlier layers; the next command buffer copies the
// sums back. Every rank sums the same buckets in the same order, then one float: the loss.
class GradientSync {
 public:
  // `grads`: the flat gradient buffer laid out by `layout`; a bucket holds whole tensors, about
  // `bucket_bytes` (a larger tensor is a bucket of its own). `overlap`: flush the recorder at
  // every completed bucket so that its sum overlaps the rest of the backward pass.
  // `frozen` (train.freeze, one flag per tensor of layout; empty: none): those tensors' gradients
  // are not sent, nor copied back (the optimizer ignores them).
  GradientSync(vk::Context& ctx, dist::Comm& comm, const model::ParamLayout& layout, const vk::View& grads,
               uint64_t bucket_bytes, bool overlap, const std::vector<bool>& frozen = {});
  static constexpr uint64_t kDefaultBucketBytes = 25ull << 20;  // PyTorch DDP's default bucket_cap_mb
  // With the bucket size and overlap of ctx.tuning(), where VKVIT_ALLREDUCE_BUCKET_MB and
  // VKVIT_ALLREDUCE_OVERLAP=0|1 override the defaults (tuning, tests).
  static std::unique_ptr<GradientSync> with_tuning(vk::Context& ctx, dist::Comm& comm, const model::ParamLayout& layout,
                                                    const vk::View& grads, const std::vector<bool>& frozen = {});

  // Before a step's gradients are recorded.
  void begin_step();
  // Vit::backward's grads_ready hook: records the copies of the buckets that are now complete and,
  // with overlap, submits what is recorded so far (Recorder::flush).
  void grads_ready(vk::Recorder& rec, uint64_t first);
  // After the step is submitted (rec.submit()): sums each bucket once its copy has run, waits for
  // the whole submission, then sums `weighted_loss()` (read after the wait: this rank's share of
  // the step's loss). A rank without a batch passes no recorder and takes part with zeros.
  void allreduce(vk::Recorder* rec, const std::function<float()>& weighted_loss);
  void record_copy_back(vk::Recorder& rec);
  float loss() const { return staging()[floats_]; }  // the global batch's mean loss after allreduce()

  uint64_t bytes_per_step() const { return (sent_floats_ + 1) * 4; }  // what each rank contributes
  size_t buckets() const { return buckets_.size(); }
  bool overlap() const { return overlap_; }

 private:
  float* staging() const { return static_cast<float*>(staging_->mapped()); }
  struct Bucket {
    uint64_t first, count;  // floats of the flat layout
    bool copied;            // this step: its copy is recorded
    int part;               // this step: the flushed part holding that copy (-1: the final submission)
  };
  dist::Comm& comm_;
  vk::View grads_;
  uint64_t floats_;
  bool overlap_;
  std::unique_ptr<vk::Buffer> staging_;  // (floats + 1): gradients, then the loss
  std::vector<Bucket> buckets_;          // in the order the backward pass completes them
  uint64_t sent_floats_ = 0;             // the buckets' floats
  bool partial_ = false;                 // frozen tensors left out: copy back bucket by bucket
};

}  // namespace vkvit::train
