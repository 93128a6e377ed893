// Metrics over host copies of the logits: small (B x K) arrays once per step or eval batch.
#include "train/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "base/error.h"

namespace vkvit::train {

uint32_t label_rank(const float* logits, uint32_t num_classes, uint32_t label) {
  const float x = logits[label];
  if (std::isnan(x)) return num_classes;
  uint32_t rank = 0;
  for (uint32_t c = 0; c < num_classes; ++c)
    if (logits[c] > x || (logits[c] == x && c < label)) ++rank;
  return rank;
}

namespace {
uint32_t checked_label(int32_t label, uint32_t num_classes, uint32_t row) {
  if (label < 0 || uint32_t(label) >= num_classes)
    throw Error("metrics: label " + std::to_string(label) + " of row " + std::to_string(row) + " is outside [0, " +
                std::to_string(num_classes) + ")");
  return uint32_t(label);
}
}  // namespace

uint64_t topk_correct(const float* logits, const int32_t* labels, uint32_t batch, uint32_t num_classes, uint32_t k) {
  k = std::min(k, num_classes);
  uint64_t correct = 0;
  for (uint32_t b = 0; b < batch; ++b) {
    const uint32_t label = checked_label(labels[b], num_classes, b);
    if (label_rank(logits + size_t(b) * num_classes, num_classes, label) < k) ++correct;
  }
  return correct;
}

uint32_t top1_class(const float* logits, uint32_t num_classes) {
  uint32_t best = num_classes;
  for (uint32_t c = 0; c < num_classes; ++c)
    if (!std::isnan(logits[c]) && (best == num_classes || logits[c] > logits[best])) best = c;
  return best;
}

AccuracyMeter::AccuracyMeter(uint32_t num_classes)
    : num_classes_(num_classes), class_total_(num_classes), class_correct_(num_classes) {
  if (num_classes == 0) throw Error("metrics: an accuracy meter needs at least one class");
  if (num_classes <= kMaxConfusionClasses) confusion_.assign(uint64_t(num_classes) * num_classes, 0);
}

void AccuracyMeter::add(const float* logits, const int32_t* labels, uint32_t batch) {
  const uint32_t k5 = std::min<uint32_t>(5, num_classes_);
  for (uint32_t b = 0; b < batch; ++b) {
    const uint32_t label = checked_label(labels[b], num_classes_, b);
    const float* row = logits + size_t(b) * num_classes_;
    const uint32_t rank = label_rank(row, num_classes_, label);
    ++count_;
    ++class_total_[label];
    if (rank < 1) ++top1_, ++class_correct_[label];
    if (rank < k5) ++top5_;
    if (!confusion_.empty()) {
      // rank 0 and top1_class agree (both break ties to the lower index), so the diagonal is the
      // top-1 count; only a row of NaNs, which has no rank-0 class, falls outside the matrix.
      const uint32_t predicted = rank == 0 ? label : top1_class(row, num_classes_);
      if (predicted < num_classes_) ++confusion_[uint64_t(label) * num_classes_ + predicted];
    }
  }
}

double AccuracyMeter::top1() const {
  return count_ ? double(top1_) / double(count_) : std::numeric_limits<double>::quiet_NaN();
}

double AccuracyMeter::top5() const {
  return count_ ? double(top5_) / double(count_) : std::numeric_limits<double>::quiet_NaN();
}

std::vector<double> AccuracyMeter::per_class() const {
  std::vector<double> acc(num_classes_);
  for (uint32_t c = 0; c < num_classes_; ++c)
    acc[c] = class_total_[c] ? double(class_correct_[c]) / double(class_total_[c])
                             : std::numeric_limits<double>::quiet_NaN();
  return acc;
}

void AccuracyMeter::reset() {
  count_ = top1_ = top5_ = 0;
  std::fill(class_total_.begin(), class_total_.end(), 0);
  std::fill(class_correct_.begin(), class_correct_.end(), 0);
  std::fill(confusion_.begin(), confusion_.end(), 0);
}

std::vector<double> softmax(const float* logits, uint32_t num_classes) {
  std::vector<double> p(logits, logits + num_classes);
  const double mx = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (double& v : p) sum += (v = std::exp(v - mx));
  for (double& v : p) v /= sum;
  return p;
}

std::vector<uint32_t> top_classes(const std::vector<double>& scores, uint32_t k) {
  std::vector<uint32_t> order(scores.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t c) { return scores[a] > scores[c]; });
  order.resize(std::min<size_t>(k, order.size()));
  return order;
}

std::vector<uint64_t> AccuracyMeter::counts() const {
  std::vector<uint64_t> c = {count_, top1_, top5_};
  c.insert(c.end(), class_total_.begin(), class_total_.end());
  c.insert(c.end(), class_correct_.begin(), class_correct_.end());
  c.insert(c.end(), confusion_.begin(), confusion_.end());
  return c;
}

void AccuracyMeter::set_counts(const std::vector<uint64_t>& c) {
  const size_t K = num_classes_;
  if (c.size() != 3 + 2 * K + confusion_.size()) throw Error("internal: accuracy meter counts of another size");
  count_ = c[0];
  top1_ = c[1];
  top5_ = c[2];
  std::copy(c.begin() + 3, c.begin() + 3 + K, class_total_.begin());
  std::copy(c.begin() + 3 + K, c.begin() + 3 + 2 * K, class_correct_.begin());
  std::copy(c.begin() + 3 + 2 * K, c.end(), confusion_.begin());
}

void RunningMean::add(double value, double weight) {
  sum_ += value * weight;
  weight_ += weight;
}

double RunningMean::mean() const {
  return weight_ > 0 ? sum_ / weight_ : std::numeric_limits<double>::quiet_NaN();
}

void Throughput::start() {
  if (running_) return;
  running_ = true;
  since_ = clock::now();
}

void Throughput::stop() {
  if (!running_) return;
  seconds_ += std::chrono::duration<double>(clock::now() - since_).count();
  running_ = false;
}

void Throughput::add(uint64_t images, double seconds) {
  images_ += images;
  seconds_ += seconds;
}

double Throughput::seconds() const {
  return seconds_ + (running_ ? std::chrono::duration<double>(clock::now() - since_).count() : 0.0);
}

double Throughput::images_per_s() const {
  const double s = seconds();
  return s > 0 ? double(images_) / s : 0.0;
}

void Throughput::reset() {
  images_ = 0;
  seconds_ = 0;
  running_ = false;
}

}  // namespace vkvit::train
