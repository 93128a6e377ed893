// Data-parallel training (`mpirun -np N vkvit train`): what the trainer adds when it runs as one
// of several ranks. Every rank holds the whole model and optimizer; each step, each rank computes
// the gradients of its share of the global batch, the ranks sum them (one bucketed allreduce
// through host-visible memory) and every rank applies the same AdamW update to the same weights.
#pragma once
#include <cstdint>
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
void check_ranks_agree(dist::Comm& comm, const TrainConfig& cfg, const std::vector<std::string>& classes,
                       const std::vector<data::Sample>& train, const std::vector<data::Sample>& val);

// Copies the device buffer range `view` from rank 0 to every rank, through host memory.
void broadcast_device(dist::Comm& comm, vk::Context& ctx, const vk::View& view);

// Sums the gradient buffer over the ranks. The step's command buffer copies the gradients into
// mapped host memory (record_copy_out), the host sums them across ranks in buckets of parameter
// tensors, last layers first (allreduce), and the next command buffer copies the sums back
// (record_copy_back). One extra float rides along: the rank's weighted loss.
class GradientSync {
 public:
  // `grads`: the flat gradient buffer laid out by `layout`; buckets hold whole tensors, about
  // `bucket_bytes` each (a tensor larger than that is a bucket of its own).
  GradientSync(vk::Context& ctx, dist::Comm& comm, const model::ParamLayout& layout, const vk::View& grads,
               uint64_t bucket_bytes = kDefaultBucketBytes);
  static constexpr uint64_t kDefaultBucketBytes = 25ull << 20;  // PyTorch DDP's default bucket_cap_mb

  void record_copy_out(vk::Recorder& rec);
  // The rank's share of the step's loss (its batch's mean loss x its share of the global batch),
  // summed with the gradients; loss() is the global mean after allreduce().
  void set_loss(float weighted_loss) { staging()[floats_] = weighted_loss; }
  // Zero gradients and loss: a rank without a batch this step still takes part in the sum.
  void clear();
  void allreduce();
  void record_copy_back(vk::Recorder& rec);
  float loss() const { return staging()[floats_]; }

  uint64_t bytes_per_step() const { return (floats_ + 1) * 4; }  // what each rank contributes
  size_t buckets() const { return buckets_.size(); }

 private:
  float* staging() const { return static_cast<float*>(staging_->mapped()); }
  struct Range {
    uint64_t first, count;  // floats of the flat layout
  };
  dist::Comm& comm_;
  vk::View grads_;
  uint64_t floats_;
  std::unique_ptr<vk::Buffer> staging_;  // (floats + 1): gradients, then the loss
  std::vector<Range> buckets_;           // in the order the backward pass completes them
};

}  // namespace vkvit::train
