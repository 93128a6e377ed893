// Progress output of `train`, `eval` and `predict` on stderr. vkvit draws a bar only on a
// terminal, plain periodic lines otherwise, and leaves stdout to the results. The text comes from
// pure functions (durations, the bar, a line fitted to the terminal's width, the ETA) that the
// tests call directly; the two classes below hold the timing and redraw state and draw through
// vk/log.h's status line, so that warnings logged while a bar is shown land above it, not in it.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace vkvit::train {

enum class ProgressMode {
  off,    // nothing
  lines,  // training: a plain line every train.log_every steps; eval and predict: nothing
  bar,    // one line redrawn in place ('\r' and an erase-line code)
};

// `off` when quiet; else VKVIT_PROGRESS (bar, lines or off) when it is set and not empty; else a
// bar when stderr is a terminal and lines when it is not. Throws Error for another VKVIT_PROGRESS.
ProgressMode progress_mode(bool quiet);
// One VKVIT_PROGRESS value; throws Error naming the variable and its values for an unknown one.
ProgressMode parse_progress_mode(const std::string& value);

// The width of the terminal on stderr; else $COLUMNS; else 80.
int terminal_columns();

// A time left: "42s", "3m05s", "2h07m", "1d04h" (the smaller unit truncated); "--" for a negative
// or non-finite time, i.e. no estimate yet.
std::string format_duration(double seconds);

// Exactly `width` characters, "[=====>    ]" filled to `fraction` (clamped to [0, 1], NaN as 0);
// "" when `width` is below 3 (no room for a bar).
std::string format_bar(double fraction, int width);

// One piece of a progress line after its bar. When the line is too wide for the terminal, the
// pieces with the lowest `keep` are dropped first (ties: the later piece). `reserve` is the room
// the piece is given even when its text is shorter: the bar's width and the pieces kept then stay
// the same from one redraw to the next while the numbers change ("lr 0.001", "lr 0.000997").
struct LinePiece {
  std::string text;
  int keep = 0;
  int reserve = 0;
};

// "<head> <bar> <pieces...>" in at most `columns - 1` characters: the last column stays empty
// because writing into it makes some terminals wrap, and the next '\r' would then redraw one line
// too low. The bar takes the room left over by the head and the pieces' reserves, kMinBar to
// kMaxBar characters; pieces are dropped until the smallest bar fits; if even that does not, the
// line is the head alone, cut to fit. Everything is ASCII, so characters are columns.
constexpr int kMinBar = 10, kMaxBar = 30;
std::string fit_progress_line(const std::string& head, double fraction, const std::vector<LinePiece>& pieces,
                              int columns);

// Where a training run stands after a step, as shown.
struct TrainStatus {
  uint64_t epoch = 0, epochs = 0;  // 1-based
  uint64_t step = 0, steps = 0;    // the step of the epoch (1-based), steps per epoch
  double loss = 0, lr = 0, images_per_s = 0;
  double epoch_eta = NAN, run_eta = NAN;  // seconds left
};

// The plain line: "epoch 2 step 120/469  loss 0.6123  lr 0.00098  1043 img/s  ETA 5m40s (run 41m02s)".
std::string format_train_line(const TrainStatus& s);
// The bar: "epoch 2/8 step 120/469 [===>   ] 25% loss 0.6123 lr 0.00098 1043 img/s ETA 5m40s (run 41m02s)",
// fitted to `columns` (the percentage, lr, the run's ETA and img/s go first when it is narrow); the
// counts are padded to the totals' widths so that the bar does not move.
std::string format_train_bar(const TrainStatus& s, int columns);
// eval and predict: "eval 1200/10000 [==>     ] 12% 1043 img/s ETA 8s", fitted to `columns`.
std::string format_count_bar(const std::string& label, uint64_t done, uint64_t total, double images_per_s,
                             double eta_seconds, int columns);

struct TrainEta {
  double epoch = NAN, run = NAN;  // seconds
};
// Time left after step `step` (1-based) of epoch `epoch` (1-based) of `epochs`, at
// `seconds_per_step`, plus `seconds_between_epochs` (evaluation and checkpoint; NaN: not measured
// yet, counted as 0) for every epoch end still ahead, the current one included. The run stops
// earlier when `steps_before_stop` (--max-steps) runs out first. NaN without a step time.
TrainEta estimate_train_eta(uint64_t epoch, uint64_t epochs, uint64_t step, uint64_t steps_per_epoch,
                            double seconds_per_step, double seconds_between_epochs, uint64_t steps_before_stop);

// The trainer's progress: one call after every applied step, clear() before other output to
// stderr (the epoch summary replaces the bar). Lines: every `log_every` steps of an epoch. Bar:
// the first step of an epoch, then at most every kRedrawSeconds, and the epoch's last step.
class TrainProgressDisplay {
 public:
  static constexpr double kRedrawSeconds = 0.25;
  TrainProgressDisplay(ProgressMode mode, uint64_t epochs, uint64_t steps_per_epoch, uint64_t log_every, uint64_t max_steps);
  ~TrainProgressDisplay();  // erases a bar still shown: an error line may follow
  TrainProgressDisplay(const TrainProgressDisplay&) = delete;
  TrainProgressDisplay& operator=(const TrainProgressDisplay&) = delete;

  // `epoch` 1-based; `epoch_step` the epoch's step count so far (a resumed run's count included);
  // `run_step` the run's; `epoch_seconds` the epoch's training time so far (its Throughput's seconds()).
  void step(uint64_t epoch, uint64_t epoch_step, uint64_t run_step, double loss, double lr, double images_per_s,
            double epoch_seconds);
  void clear();

 private:
  using clock = std::chrono::steady_clock;
  ProgressMode mode_;
  uint64_t epochs_, steps_per_epoch_, log_every_, max_steps_;
  uint64_t epoch_ = 0, steps_timed_ = 0;  // the epoch seen last and the steps this process timed in it
  bool stepped_ = false, drawn_in_epoch_ = false;
  clock::time_point last_step_, last_draw_;
  double between_sum_ = 0;  // measured gaps between an epoch's last step and the next epoch's start
  uint64_t between_count_ = 0;
};

// The bar of `eval` and `predict` over a folder: drawn in bar mode only (their results go to
// stdout, and a pipe or a file gets no progress at all); images done of all, img/s and ETA. The
// first update draws, then at most every TrainProgressDisplay::kRedrawSeconds, and the last one.
class ImageProgressBar {
 public:
  ImageProgressBar(ProgressMode mode, std::string label);
  ~ImageProgressBar();  // erases the bar
  ImageProgressBar(const ImageProgressBar&) = delete;
  ImageProgressBar& operator=(const ImageProgressBar&) = delete;

  void update(uint64_t done, uint64_t total);
  void clear();  // before the results are printed

 private:
  using clock = std::chrono::steady_clock;
  bool draw_;
  std::string label_;
  bool started_ = false;
  clock::time_point start_, last_draw_;
};

}  // namespace vkvit::train
