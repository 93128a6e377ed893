// Progress output of train, eval and predict (see progress.h): the formatting, the ETA, and the
// redraw state of the bar.
#include "train/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "base/error.h"
#include "base/log.h"

namespace vkvit::train {

ProgressMode parse_progress_mode(const std::string& value) {
  if (value == "bar") return ProgressMode::bar;
  if (value == "lines") return ProgressMode::lines;
  if (value == "off") return ProgressMode::off;
  throw Error("VKVIT_PROGRESS=" + value + ": use bar, lines or off (or unset it: a bar on a terminal, lines otherwise)");
}

ProgressMode progress_mode(bool quiet) {
  if (quiet) return ProgressMode::off;
  if (const char* v = std::getenv("VKVIT_PROGRESS"); v && *v) return parse_progress_mode(v);
  return isatty(STDERR_FILENO) ? ProgressMode::bar : ProgressMode::lines;
}

int terminal_columns() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  if (const char* v = std::getenv("COLUMNS"); v && *v) {
    const long c = std::strtol(v, nullptr, 10);
    if (c > 0 && c < 10000) return static_cast<int>(c);
  }
  return 80;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--";
  if (seconds >= 1000.0 * 86400) return ">999d";  // also keeps the integer below in range
  const uint64_t t = static_cast<uint64_t>(std::llround(seconds));
  char buf[32];
  if (t < 60) std::snprintf(buf, sizeof buf, "%llus", static_cast<unsigned long long>(t));
  else if (t < 3600) std::snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(t / 60),
                                   static_cast<unsigned long long>(t % 60));
  else if (t < 86400) std::snprintf(buf, sizeof buf, "%lluh%02llum", static_cast<unsigned long long>(t / 3600),
                                    static_cast<unsigned long long>(t % 3600 / 60));
  else std::snprintf(buf, sizeof buf, "%llud%02lluh", static_cast<unsigned long long>(t / 86400),
                     static_cast<unsigned long long>(t % 86400 / 3600));
  return buf;
}

std::string format_bar(double fraction, int width) {
  if (width < 3) return "";
  const double f = std::isnan(fraction) ? 0.0 : std::clamp(fraction, 0.0, 1.0);
  const int cells = width - 2;
  const int filled = static_cast<int>(f * cells);  // a cell is full only once it is reached
  std::string bar = "[" + std::string(filled, '=');
  if (filled < cells) bar += filled > 0 ? ">" : " ";  // the head shows where the work is
  bar.resize(size_t(width) - 1, ' ');
  return bar + "]";
}

std::string fit_progress_line(const std::string& head, double fraction, const std::vector<LinePiece>& pieces,
                              int columns) {
  const int room = columns - 1;
  if (room <= 0) return "";
  std::vector<bool> kept(pieces.size(), true);
  for (;;) {
    std::string tail;
    size_t reserved = 0;
    for (size_t i = 0; i < pieces.size(); ++i)
      if (kept[i]) {
        tail += " " + pieces[i].text;
        reserved += 1 + std::max(pieces[i].text.size(), size_t(std::max(pieces[i].reserve, 0)));
      }
    const int fixed = static_cast<int>(head.size() + 1 + reserved);
    if (fixed + kMinBar <= room) return head + " " + format_bar(fraction, std::min(kMaxBar, room - fixed)) + tail;
    // Drop the piece that matters least, the later one among equals.
    int drop = -1;
    for (size_t i = 0; i < pieces.size(); ++i)
      if (kept[i] && (drop < 0 || pieces[i].keep <= pieces[size_t(drop)].keep)) drop = static_cast<int>(i);
    if (drop < 0) break;
    kept[size_t(drop)] = false;
  }
  return head.size() <= size_t(room) ? head : head.substr(0, size_t(room));
}

namespace {

std::string percent(double fraction) {
  const double f = std::isnan(fraction) ? 0.0 : std::clamp(fraction, 0.0, 1.0);
  return std::to_string(static_cast<int>(f * 100)) + "%";  // 100% only when done
}

std::string printf_string(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// `n` right-aligned to the width of `total`: "  7/469".
std::string count_of(uint64_t n, uint64_t total) {
  const std::string text = std::to_string(n), all = std::to_string(total);
  return std::string(all.size() > text.size() ? all.size() - text.size() : 0, ' ') + text + "/" + all;
}

std::string eta_text(const TrainStatus& s) {
  return "ETA " + format_duration(s.epoch_eta) + " (run " + format_duration(s.run_eta) + ")";
}

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

std::string format_train_line(const TrainStatus& s) {
  char buf[192];
  std::snprintf(buf, sizeof buf, "epoch %llu step %llu/%llu  loss %.4f  lr %.3g  %.0f img/s  ",
                static_cast<unsigned long long>(s.epoch), static_cast<unsigned long long>(s.step),
                static_cast<unsigned long long>(s.steps), s.loss, s.lr, s.images_per_s);
  return buf + eta_text(s);
}

std::string format_train_bar(const TrainStatus& s, int columns) {
  const std::string head = "epoch " + count_of(s.epoch, s.epochs) + " step " + count_of(s.step, s.steps);
  const double fraction = s.steps ? double(s.step) / double(s.steps) : 0.0;
  // Reserves: "100%", a loss below 10, "lr 0.000997", "99999 img/s", "59m59s".
  return fit_progress_line(head, fraction,
                           {{percent(fraction), 1, 4},
                            {printf_string("loss %.4f", s.loss), 5, 11},
                            {printf_string("lr %.3g", s.lr), 2, 11},
                            {printf_string("%.0f img/s", s.images_per_s), 4, 11},
                            {"ETA " + format_duration(s.epoch_eta), 6, 10},
                            {"(run " + format_duration(s.run_eta) + ")", 3, 12}},
                           columns);
}

std::string format_count_bar(const std::string& label, uint64_t done, uint64_t total, double images_per_s,
                             double eta_seconds, int columns) {
  const std::string head = label + " " + count_of(done, total);
  const double fraction = total ? double(done) / double(total) : 0.0;
  return fit_progress_line(head, fraction,
                           {{percent(fraction), 1, 4},
                            {printf_string("%.0f img/s", images_per_s), 2, 11},
                            {"ETA " + format_duration(eta_seconds), 3, 10}},
                           columns);
}

TrainEta estimate_train_eta(uint64_t epoch, uint64_t epochs, uint64_t step, uint64_t steps_per_epoch,
                            double seconds_per_step, double seconds_between_epochs, uint64_t steps_before_stop) {
  TrainEta eta;
  if (!(seconds_per_step > 0) || !std::isfinite(seconds_per_step)) return eta;
  const double between = std::isfinite(seconds_between_epochs) && seconds_between_epochs > 0 ? seconds_between_epochs : 0;
  uint64_t in_epoch = steps_per_epoch > step ? steps_per_epoch - step : 0;
  const uint64_t later_epochs = epochs > epoch ? epochs - epoch : 0;
  uint64_t in_run = in_epoch + later_epochs * steps_per_epoch;
  uint64_t epoch_ends = later_epochs + 1;
  if (steps_before_stop < in_run) {  // --max-steps stops the run first
    in_run = steps_before_stop;
    epoch_ends = in_epoch <= in_run && steps_per_epoch ? 1 + (in_run - in_epoch) / steps_per_epoch : 0;
    in_epoch = std::min(in_epoch, in_run);
  }
  eta.epoch = double(in_epoch) * seconds_per_step;
  eta.run = double(in_run) * seconds_per_step + double(epoch_ends) * between;
  return eta;
}

TrainProgressDisplay::TrainProgressDisplay(ProgressMode mode, uint64_t epochs, uint64_t steps_per_epoch, uint64_t log_every,
                             uint64_t max_steps)
    : mode_(mode), epochs_(epochs), steps_per_epoch_(steps_per_epoch), log_every_(log_every), max_steps_(max_steps) {}

TrainProgressDisplay::~TrainProgressDisplay() { clear(); }

void TrainProgressDisplay::clear() {
  if (mode_ == ProgressMode::bar) clear_status_line();
}

void TrainProgressDisplay::step(uint64_t epoch, uint64_t epoch_step, uint64_t run_step, double loss, double lr,
                         double images_per_s, double epoch_seconds) {
  const clock::time_point now = clock::now();
  if (epoch != epoch_) {
    // The time from the previous epoch's last step to this epoch's start went to the evaluation
    // and the checkpoint: it is part of the run's ETA.
    if (stepped_) {
      const double gap = seconds_between(last_step_, now) - epoch_seconds;
      between_sum_ += std::max(gap, 0.0);
      ++between_count_;
    }
    epoch_ = epoch;
    steps_timed_ = 0;
    drawn_in_epoch_ = false;
  }
  ++steps_timed_;
  stepped_ = true;
  last_step_ = now;
  if (mode_ == ProgressMode::off) return;
  const bool last = epoch_step >= steps_per_epoch_;
  if (mode_ == ProgressMode::lines && !(log_every_ > 0 && epoch_step % log_every_ == 0)) return;
  if (mode_ == ProgressMode::bar && drawn_in_epoch_ && !last && seconds_between(last_draw_, now) < kRedrawSeconds)
    return;

  TrainStatus s;
  s.epoch = epoch;
  s.epochs = epochs_;
  s.step = epoch_step;
  s.steps = steps_per_epoch_;
  s.loss = loss;
  s.lr = lr;
  s.images_per_s = images_per_s;
  const uint64_t before_stop = max_steps_ == 0 ? std::numeric_limits<uint64_t>::max()
                                               : (max_steps_ > run_step ? max_steps_ - run_step : 0);
  const TrainEta eta = estimate_train_eta(epoch, epochs_, epoch_step, steps_per_epoch_, epoch_seconds / double(steps_timed_),
                                          between_count_ ? between_sum_ / double(between_count_) : NAN, before_stop);
  s.epoch_eta = eta.epoch;
  s.run_eta = eta.run;
  if (mode_ == ProgressMode::lines) {
    std::fprintf(stderr, "%s\n", format_train_line(s).c_str());
    return;
  }
  show_status_line(format_train_bar(s, terminal_columns()));
  drawn_in_epoch_ = true;
  last_draw_ = now;
}

ImageProgressBar::ImageProgressBar(ProgressMode mode, std::string label)
    : draw_(mode == ProgressMode::bar), label_(std::move(label)) {}

ImageProgressBar::~ImageProgressBar() { clear(); }

void ImageProgressBar::clear() {
  if (draw_) clear_status_line();
}

void ImageProgressBar::update(uint64_t done, uint64_t total) {
  if (!draw_) return;
  const clock::time_point now = clock::now();
  if (!started_) {
    started_ = true;
    start_ = now;
  } else if (done < total && seconds_between(last_draw_, now) < TrainProgressDisplay::kRedrawSeconds) {
    return;
  }
  const double seconds = seconds_between(start_, now);
  const double rate = seconds > 0 ? double(done) / seconds : 0.0;
  const double eta = rate > 0 ? double(total > done ? total - done : 0) / rate : NAN;
  show_status_line(format_count_bar(label_, done, total, rate, eta, terminal_columns()));
  last_draw_ = now;
}

}  // namespace vkvit::train
