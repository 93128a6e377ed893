// Host-side training metrics: top-k and per-class accuracy and the confusion matrix from logits, a
// running mean (loss) and an images-per-second timer. Accuracies are fractions in [0, 1]; the run folder's summary.csv
// reports them in percent, as timm does.
#pragma once
#include <chrono>
#include <cstdint>
#include <vector>

namespace vkvit::train {

// Rank of `label` in one row of logits: the number of classes ordered before it by a stable
// descending sort (larger logit first, ties by lower class index, as torch.topk on CPU). A NaN
// label logit ranks last. The label counts as top-k correct when rank < k.
uint32_t label_rank(const float* logits, uint32_t num_classes, uint32_t label);

// Correct predictions among `batch` rows for top-k (k is clamped to num_classes, as timm uses
// topk=(1, min(5, num_classes))). Throws Error for a label >= num_classes.
uint64_t topk_correct(const float* logits,   // (B, K)
                      const int32_t* labels,  // (B)
                      uint32_t batch, uint32_t num_classes, uint32_t k);

// The top-1 prediction of one row of logits: the largest logit, ties to the lower class index (the
// class whose label_rank is 0). NaN logits never win; a row of only NaNs has no prediction and
// gives num_classes.
uint32_t top1_class(const float* logits, uint32_t num_classes);

// Softmax of one row of logits, in double (max subtracted first).
std::vector<double> softmax(const float* logits, uint32_t num_classes);
// The indices of the `k` largest scores, largest first; ties keep the lower class index first, as
// torch.topk on CPU does in practice (predict and explain report the same top k).
std::vector<uint32_t> top_classes(const std::vector<double>& scores, uint32_t k);

// Above this many classes the meter keeps no confusion matrix: K x K counts would take more memory
// (8 K^2 bytes: 32 MiB here, 8 MiB at ImageNet's 1000) than the evaluation is worth spending on it.
constexpr uint32_t kMaxConfusionClasses = 2048;

// Accumulates top-1, top-5, per-class top-1 and the confusion matrix over an evaluation pass.
class AccuracyMeter {
 public:
  explicit AccuracyMeter(uint32_t num_classes);
  void add(const float* logits,   // (B, K)
           const int32_t* labels,  // (B)
           uint32_t batch);
  uint64_t count() const { return count_; }
  double top1() const;  // NaN before any add
  double top5() const;  // top-min(5, K)
  // Top-1 accuracy of each class; NaN for a class with no samples.
  std::vector<double> per_class() const;
  const std::vector<uint64_t>& per_class_total() const { return class_total_; }
  const std::vector<uint64_t>& per_class_correct() const { return class_correct_; }
  // (K, K) row-major counts: row = true class, column = top1_class() of the row's logits, so the
  // diagonal is per_class_correct(). A row of only NaN logits is counted in no column. Empty when
  // num_classes > kMaxConfusionClasses.
  const std::vector<uint64_t>& confusion() const { return confusion_; }
  void reset();
  // All of the meter's counts as one array, and back from one: a data-parallel evaluation sums
  // the arrays of its ranks.
  std::vector<uint64_t> counts() const;
  void set_counts(const std::vector<uint64_t>& counts);

 private:
  uint32_t num_classes_;
  uint64_t count_ = 0, top1_ = 0, top5_ = 0;
  std::vector<uint64_t> class_total_, class_correct_;
  std::vector<uint64_t> confusion_;  // (K, K)
};

// Weighted running mean, e.g. of per-batch mean losses weighted by batch size.
class RunningMean {
 public:
  void add(double value, double weight = 1.0);
  double mean() const;  // NaN before any add
  double weight() const { return weight_; }
  double sum() const { return sum_; }  // of value * weight
  void reset() { sum_ = weight_ = 0; }
  void restore(double sum, double weight) { sum_ = sum, weight_ = weight; }  // what sum() and weight() returned

 private:
  double sum_ = 0, weight_ = 0;
};

// Images per second over the time between start() and stop() calls, excluding pauses (e.g. the
// evaluation between training epochs). add() with explicit seconds feeds measured intervals.
class Throughput {
 public:
  void start();
  void stop();
  void add_images(uint64_t n) { images_ += n; }
  void add(uint64_t images, double seconds);
  double seconds() const;      // including a running interval
  double images_per_s() const;  // 0 before any time has passed
  uint64_t images() const { return images_; }
  void reset();

 private:
  using clock = std::chrono::steady_clock;
  uint64_t images_ = 0;
  double seconds_ = 0;
  bool running_ = false;
  clock::time_point since_;
};

}  // namespace vkvit::train
