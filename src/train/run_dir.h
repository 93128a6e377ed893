// The run folder (README "Using it"): runs/<YYYYmmdd-HHMMSS>-<config name>/ holding
// config.yaml (the fully resolved config), summary.csv (one row per epoch), steps.csv (one row per
// optimizer step) and the checkpoints
// (last.safetensors, best.safetensors, written by the trainer through path()).
#pragma once
#include <cstdint>
#include <ctime>
#include <string>

#include "train/config.h"

namespace vkvit::train {

// One summary.csv row. NaN values (e.g. val_* in an epoch without evaluation) are empty cells.
struct SummaryRow {
  int epoch = 0;           // 1-based, the epoch just finished
  double train_loss = 0;   // mean over the epoch's images
  double val_loss = 0;
  double val_top1 = 0;     // percent, as timm's summary.csv
  double val_top5 = 0;     // percent
  double lr = 0;           // the rate of the epoch's last step
  double img_per_s = 0;    // training throughput
  uint64_t skipped_files = 0;  // unreadable images skipped so far (counted skips, README "How it works")
  // train.model_ema: the EMA weights' evaluation beside the model's, three more columns
  // (kSummaryHeaderEma); a run without EMA keeps the eight.
  bool has_ema = false;
  double ema_val_loss = 0;
  double ema_val_top1 = 0;
  double ema_val_top5 = 0;
};

// One steps.csv row: every applied optimizer step, so loss curves need no log parsing and a
// resumed run can be compared with an uninterrupted one value for value.
struct StepRow {
  uint64_t step = 0;   // 1-based count of applied updates
  uint64_t epoch = 0;  // 1-based
  double loss = 0;     // the batch's mean loss (with label smoothing), as the GPU computed it
  double lr = 0;
  double grad_norm = 0;
};

class RunDir {
 public:
  // The header line of summary.csv (without the newline).
  static const char* const kSummaryHeader;
  // The same with the model EMA's columns after it (a run with train.model_ema).
  static const char* const kSummaryHeaderEma;

  // A new run folder. With `explicit_dir` empty: <cfg.output.dir>/<YYYYmmdd-HHMMSS>-<cfg.name>,
  // local time `now` (default: the current time), with "-2", "-3", ... appended when that name is
  // taken (two runs started in the same second). With `explicit_dir` (--output) that folder is the
  // run folder; it may exist only if empty. Parents are created. Writes config.yaml.
  static RunDir create(const RunConfig& cfg, const std::string& explicit_dir = "", std::time_t now = 0);
  // An existing run folder, e.g. to resume: nothing is written; summary rows are appended.
  static RunDir open(const std::string& dir);

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const;  // path()/name

  // Rewrites config.yaml (atomically).
  void write_config(const RunConfig& cfg) const;
  // Appends one row to summary.csv, writing the header first when the file is new (with the EMA
  // columns when row.has_ema), and syncs it so the row survives a crash. Throws Error when an
  // existing file has a different header.
  void append_summary(const SummaryRow& row) const;
  // Appends one row to steps.csv (header first when new); not synced per row (a crash may lose
  // the rows since the last checkpoint, which a resume writes again).
  void append_step(const StepRow& row) const;
  // Before a resume from a checkpoint saved after `step` updates and `epochs_done` epochs: drops
  // the steps.csv rows past that step and the summary.csv rows past that epoch, which a run that
  // stopped later (killed, device lost) wrote and the resumed run writes again. Each file is
  // rewritten atomically, and only when it has such rows.
  void rewind(uint64_t step, uint64_t epochs_done) const;

 private:
  explicit RunDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace vkvit::train
