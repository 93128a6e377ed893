// Progress output (src/train/progress.h): the pure formatting (durations, bars, lines fitted to a
// terminal's width, the ETA), then the binary as users meet it: stderr in a file gets plain lines
// without a control byte, VKVIT_PROGRESS=bar gets redraws that the epoch summaries and warnings
// replace cleanly (checked by replaying the bytes as a terminal would), --quiet gets nothing,
// stdout holds only the results in every mode, and a real pseudo-terminal gets the bar unasked.
#include <catch2/catch.hpp>

#include "harness.h"
#include "stripes.h"
#include "train/progress.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
namespace fs = std::filesystem;
using namespace vkvit::train;
using vkvit::test::CliRun;
using vkvit::test::lines_of;
using vkvit::test::lines_with;
using vkvit::test::q;
using vkvit::test::ScopedEnv;
using vkvit::test::TempDir;

namespace {

bool has_control_bytes(const std::string& s) {
  return s.find('\r') != std::string::npos || s.find('\x1b') != std::string::npos;
}

size_t count_of(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) ++n;
  return n;
}

// What a terminal shows after `raw`: '\r' returns to column 0, ESC [ K erases to the end of the
// line, '\n' starts a new line, anything else overwrites the cell under the cursor. Fails on any
// other escape sequence (the bar uses no other).
std::vector<std::string> screen_of(const std::string& raw) {
  std::vector<std::string> lines(1);
  size_t col = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    std::string& line = lines.back();
    if (c == '\r') {
      col = 0;
    } else if (c == '\n') {
      lines.emplace_back();
      col = 0;
    } else if (c == '\x1b') {
      REQUIRE(raw.compare(i, 3, "\x1b[K") == 0);
      if (col < line.size()) line.resize(col);
      i += 2;
    } else {
      if (col < line.size()) line[col] = c;
      else line.push_back(c);
      ++col;
    }
  }
  if (lines.back().empty()) lines.pop_back();
  return lines;
}

// 128 training images (8 steps of 16 per epoch) and 32 val images of the tiny stripes model.
struct Dataset {
  TempDir dir{"progress"};
  fs::path data, config;
  Dataset() {
    data = dir.path / "data";
    vkvit::test::write_stripe_dataset(data, 32, 8, 5, 0);
    config = dir.path / "tiny.yaml";
    vkvit::test::write_file(config, vkvit::test::tiny_stripes_config_yaml(2));
  }
  // `vkvit train` for `epochs` into a fresh run folder, logging every 2 steps.
  std::string train_args(const std::string& run, int epochs = 2) const {
    return "train --config " + q(config) + " --data-dir " + q(data) + " --output " + q(dir.path / run) +
           " --epochs " + std::to_string(epochs) + " --set train.log_every=2";
  }
};

const Dataset& dataset() {
  static Dataset d;
  return d;
}

// A checkpoint for the eval and predict cases, trained once per test process.
const fs::path& checkpoint() {
  static const fs::path path = [] {
    const CliRun r = vkvit::test::run_cli(dataset().train_args("for-eval", 1) + " -q");
    INFO(r.err);
    REQUIRE(r.status == 0);
    return dataset().dir.path / "for-eval" / "last.safetensors";
  }();
  return path;
}

// Runs vkvit as a user at a terminal: stderr on a pseudo-terminal `columns` wide (raw mode, so
// the bytes arrive as written, without "\n" -> "\r\n"), stdout into a file, VKVIT_PROGRESS unset.
CliRun run_on_terminal(const std::string& args, int columns) {
  const int master = posix_openpt(O_RDWR | O_NOCTTY);
  REQUIRE(master >= 0);
  REQUIRE(grantpt(master) == 0);
  REQUIRE(unlockpt(master) == 0);
  const std::string slave_name = ptsname(master);
  // Held open here as well: the master reads EIO once no one holds the slave, and vkvit has not
  // opened it yet when the reader starts.
  const int slave = open(slave_name.c_str(), O_RDWR | O_NOCTTY);
  REQUIRE(slave >= 0);
  termios mode{};
  REQUIRE(tcgetattr(slave, &mode) == 0);
  cfmakeraw(&mode);
  REQUIRE(tcsetattr(slave, TCSANOW, &mode) == 0);
  winsize size{};
  size.ws_row = 24;
  size.ws_col = static_cast<unsigned short>(columns);
  REQUIRE(ioctl(slave, TIOCSWINSZ, &size) == 0);
  std::string raw;
  std::thread reader([&] {
    char buf[4096];
    for (;;) {
      const ssize_t n = read(master, buf, sizeof buf);
      if (n > 0) raw.append(buf, size_t(n));
      else if (n < 0 && errno == EINTR) continue;
      else break;
    }
  });
  TempDir scratch("terminal");
  const std::string cmd = "env -u VKVIT_PROGRESS " + std::string(VKVIT_BINARY) + " " + args + " >" +
                          q(scratch.path / "stdout") + " 2>" + slave_name;
  const int st = std::system(cmd.c_str());
  close(slave);
  reader.join();
  close(master);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, vkvit::test::read_file(scratch.path / "stdout"), raw};
}

TrainStatus sample_status() {
  TrainStatus s;
  s.epoch = 2;
  s.epochs = 8;
  s.step = 120;
  s.steps = 469;
  s.loss = 0.61234;
  s.lr = 0.00098;
  s.images_per_s = 1043.4;
  s.epoch_eta = 340;
  s.run_eta = 2462;
  return s;
}

}  // namespace

TEST_CASE("durations read as seconds, minutes, hours and days", "[progress]") {
  CHECK(format_duration(0) == "0s");
  CHECK(format_duration(42.4) == "42s");
  CHECK(format_duration(59.6) == "1m00s");  // rounded to the second first
  CHECK(format_duration(185) == "3m05s");
  CHECK(format_duration(3599) == "59m59s");
  CHECK(format_duration(3600) == "1h00m");
  CHECK(format_duration(7659) == "2h07m");  // the minutes truncated
  CHECK(format_duration(90000) == "1d01h");
  CHECK(format_duration(1e30) == ">999d");
  CHECK(format_duration(-1) == "--");
  CHECK(format_duration(NAN) == "--");
  CHECK(format_duration(INFINITY) == "--");
}

TEST_CASE("a bar is exactly as wide as asked and filled by its fraction", "[progress]") {
  CHECK(format_bar(0.5, 12) == "[=====>    ]");
  CHECK(format_bar(0.0, 7) == "[     ]");
  CHECK(format_bar(1.0, 7) == "[=====]");
  CHECK(format_bar(0.99, 7) == "[====>]");  // full only when done
  CHECK(format_bar(2.0, 5) == "[===]");
  CHECK(format_bar(-1.0, 5) == "[   ]");
  CHECK(format_bar(NAN, 5) == "[   ]");
  CHECK(format_bar(0.5, 2).empty());
  for (int width = 3; width <= 40; ++width)
    for (double f : {0.0, 0.01, 0.3, 0.5, 0.999, 1.0}) {
      const std::string bar = format_bar(f, width);
      INFO("width " << width << " fraction " << f << ": " << bar);
      REQUIRE(bar.size() == size_t(width));
      CHECK(bar.front() == '[');
      CHECK(bar.back() == ']');
    }
}

TEST_CASE("progress lines are never wider than the terminal and drop the least useful pieces first", "[progress]") {
  TrainStatus huge = sample_status();
  huge.epoch = 12345;
  huge.epochs = 99999;
  huge.step = 1234567;
  huge.steps = 9999999;
  huge.loss = NAN;
  huge.lr = 1.2345e-7;
  huge.images_per_s = 1e9;
  huge.epoch_eta = 1e12;
  huge.run_eta = NAN;
  for (int columns = 0; columns <= 220; ++columns) {
    const size_t room = columns > 1 ? size_t(columns - 1) : 0;
    for (const std::string& line : {format_train_bar(sample_status(), columns), format_train_bar(huge, columns),
                                    format_count_bar("eval", 1200, 10000, 1043, 8.4, columns),
                                    format_count_bar("predict", 0, 0, 0, NAN, columns)}) {
      INFO(columns << " columns: " << line);
      CHECK(line.size() <= room);
      CHECK_FALSE(has_control_bytes(line));
    }
  }
  // Wide: everything, with the widest bar.
  const std::string wide = format_train_bar(sample_status(), 200);
  CHECK(wide == "epoch 2/8 step 120/469 " + format_bar(120.0 / 469, kMaxBar) +
                    " 25% loss 0.6123 lr 0.00098 1043 img/s ETA 5m40s (run 41m02s)");
  // 80 columns: the percentage, the lr and the run's ETA go; the epoch's ETA, the loss and img/s stay.
  const std::string narrow = format_train_bar(sample_status(), 80);
  CHECK(narrow.size() <= 79);
  CHECK_THAT(narrow, StartsWith("epoch 2/8 step 120/469 [") && Contains("loss 0.6123") && Contains("ETA 5m40s") &&
                         Contains("1043 img/s"));
  CHECK(narrow.find("lr ") == std::string::npos);
  CHECK(narrow.find('%') == std::string::npos);
  CHECK(narrow.find("(run") == std::string::npos);
  // Redraws keep the bar in place while the numbers change width.
  TrainStatus early = sample_status();
  early.step = 7;
  early.lr = 0.001;
  early.images_per_s = 47;
  early.epoch_eta = 9;
  for (int columns : {60, 80, 100, 120}) {
    const std::string a = format_train_bar(sample_status(), columns), b = format_train_bar(early, columns);
    INFO(a << "\n" << b);
    CHECK(a.find(']') == b.find(']'));
    for (const char* piece : {"%", "loss ", "lr ", "img/s", "ETA ", "(run "})  // the same pieces kept
      CHECK((a.find(piece) == std::string::npos) == (b.find(piece) == std::string::npos));
  }
  CHECK_THAT(format_train_bar(early, 120), StartsWith("epoch 2/8 step   7/469 ["));
  // Too narrow for any bar: the head alone, cut.
  CHECK(format_train_bar(sample_status(), 20) == "epoch 2/8 step 120/");
  CHECK(format_count_bar("eval", 1200, 10000, 1043, 8.4, 100) ==
        "eval  1200/10000 " + format_bar(0.12, kMaxBar) + " 12% 1043 img/s ETA 8s");
  CHECK(fit_progress_line("head", 0.5, {{"a", 1}, {"b", 1}}, 19) == "head " + format_bar(0.5, 11) + " a");  // ties: the later goes
}

TEST_CASE("the plain line is the step line with the epoch and run ETA", "[progress]") {
  CHECK(format_train_line(sample_status()) ==
        "epoch 2 step 120/469  loss 0.6123  lr 0.00098  1043 img/s  ETA 5m40s (run 41m02s)");
  TrainStatus unknown = sample_status();
  unknown.epoch_eta = unknown.run_eta = NAN;
  CHECK_THAT(format_train_line(unknown), Contains("ETA -- (run --)"));
}

TEST_CASE("the ETA counts the steps left, the later epochs, their gaps and --max-steps", "[progress]") {
  const uint64_t no_stop = UINT64_MAX;
  TrainEta e = estimate_train_eta(2, 3, 100, 400, 0.5, 10, no_stop);
  CHECK(e.epoch == Approx(150));
  CHECK(e.run == Approx((300 + 400) * 0.5 + 2 * 10));  // this epoch's end and the last one's
  e = estimate_train_eta(3, 3, 400, 400, 0.5, NAN, no_stop);  // the last step, no gap measured yet
  CHECK(e.epoch == 0);
  CHECK(e.run == 0);
  e = estimate_train_eta(2, 3, 100, 400, 0.5, 10, 350);  // stops 50 steps into epoch 3
  CHECK(e.epoch == Approx(150));
  CHECK(e.run == Approx(350 * 0.5 + 10));
  e = estimate_train_eta(2, 3, 100, 400, 0.5, 10, 100);  // stops inside this epoch
  CHECK(e.epoch == Approx(50));
  CHECK(e.run == Approx(50));
  e = estimate_train_eta(1, 3, 1, 400, NAN, 10, no_stop);
  CHECK(std::isnan(e.epoch));
  CHECK(std::isnan(e.run));
}

TEST_CASE("VKVIT_PROGRESS overrides the terminal check and --quiet overrides both", "[progress]") {
  CHECK(parse_progress_mode("bar") == ProgressMode::bar);
  CHECK(parse_progress_mode("lines") == ProgressMode::lines);
  CHECK(parse_progress_mode("off") == ProgressMode::off);
  CHECK_THAT(vkvit::test::error_of([] { parse_progress_mode("fancy"); }),
             Contains("VKVIT_PROGRESS=fancy") && Contains("bar, lines or off"));
  {
    ScopedEnv env("VKVIT_PROGRESS", "lines");
    CHECK(progress_mode(false) == ProgressMode::lines);
    CHECK(progress_mode(true) == ProgressMode::off);
  }
  {
    ScopedEnv env("VKVIT_PROGRESS", "bar");
    CHECK(progress_mode(true) == ProgressMode::off);
  }
  ScopedEnv env("VKVIT_PROGRESS", "");  // empty: as if unset
  CHECK(progress_mode(false) == (isatty(STDERR_FILENO) ? ProgressMode::bar : ProgressMode::lines));
}

TEST_CASE("training with stderr in a file logs plain lines with the ETA and no control bytes", "[progress][cli]") {
  ScopedEnv env("VKVIT_PROGRESS", "");
  const CliRun r = vkvit::test::run_cli(dataset().train_args("lines"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK_FALSE(has_control_bytes(r.err));
  CHECK_FALSE(has_control_bytes(r.out));
  const std::vector<std::string> steps = lines_with(r.err, " step ");
  REQUIRE(steps.size() == 8);  // steps 2, 4, 6, 8 of 2 epochs
  CHECK_THAT(steps[0], StartsWith("epoch 1 step 2/8  loss ") && Contains(" img/s  ETA ") && Contains(" (run "));
  CHECK_THAT(steps[3], StartsWith("epoch 1 step 8/8  loss ") && Contains("  ETA 0s (run "));
  CHECK_THAT(steps[7], StartsWith("epoch 2 step 8/8  loss ") && Contains("  ETA 0s (run "));
  CHECK(lines_with(r.err, "/2: train loss ").size() == 2);
}

TEST_CASE("VKVIT_PROGRESS=bar redraws one line in place that each epoch summary replaces", "[progress][cli]") {
  ScopedEnv env("VKVIT_PROGRESS", "bar");
  ScopedEnv columns("COLUMNS", "90");  // stderr is a file: the width comes from COLUMNS
  const CliRun r = vkvit::test::run_cli(dataset().train_args("bar"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK_FALSE(has_control_bytes(r.out));
  // The bar is drawn at each epoch's first and last step at least.
  CHECK(count_of(r.err, "\repoch 1/2 step ") >= 2);
  CHECK(count_of(r.err, "\repoch 2/2 step ") >= 2);
  CHECK_THAT(r.err, Contains("\repoch 2/2 step 8/8 ["));
  CHECK(r.err.find("epoch 1 step 2/8  loss") == std::string::npos);  // no plain lines
  CHECK(count_of(r.err, "\reval ") >= 2);  // each epoch's evaluation draws its own bar
  // Every drawing fits the 90 columns.
  for (size_t at = r.err.find('\r'); at != std::string::npos; at = r.err.find('\r', at + 1)) {
    const size_t end = r.err.find_first_of("\x1b\n", at + 1);
    CHECK(end - at - 1 <= 89);
  }
  // Each summary is written whole on a line the bar left empty.
  for (const char* summary : {"epoch 1/2: train loss ", "epoch 2/2: train loss "}) {
    const size_t at = r.err.find(std::string("\r\x1b[K") + summary);
    REQUIRE(at != std::string::npos);
    const std::string line = r.err.substr(at + 4, r.err.find('\n', at) - at - 4);
    CHECK_FALSE(has_control_bytes(line));
    CHECK_THAT(line, Contains("files skipped"));
  }
  // What stays on the screen: the header and the summaries, nothing of the bar.
  const std::vector<std::string> screen = screen_of(r.err);
  REQUIRE(screen.size() == 3);
  CHECK_THAT(screen[0], StartsWith("vkvit: training "));
  CHECK_THAT(screen[1], StartsWith("epoch 1/2: train loss ") && Contains("; val loss"));
  CHECK_THAT(screen[2], StartsWith("epoch 2/2: train loss ") && Contains("; val loss"));
}

TEST_CASE("a warning logged while the bar is shown is printed whole above it", "[progress][cli]") {
  TempDir dir("progress-warn");
  const fs::path data = dir.path / "data";
  vkvit::test::write_stripe_dataset(data, 32, 8, 6, 0);
  // Unreadable files spread over the shuffled epoch: most are met after the bar is first drawn.
  for (const std::string& cls : vkvit::test::stripe_classes())
    for (const char* name : {"x_broken.png", "y_broken.png"})
      vkvit::test::write_file(data / "train" / cls / (cls + "_" + name), "not a PNG\n");
  ScopedEnv env("VKVIT_PROGRESS", "bar");
  const CliRun r = vkvit::test::run_cli("train --config " + q(dataset().config) + " --data-dir " + q(data) +
                                        " --output " + q(dir.path / "run") + " --epochs 1");
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.err, Contains("\r\x1b[Kvkvit: warning: skipping "));  // the bar erased first
  const std::vector<std::string> screen = screen_of(r.err);
  size_t warnings = 0;
  for (const std::string& line : screen) {
    if (line.find("broken") == std::string::npos) continue;
    ++warnings;
    CHECK_THAT(line, StartsWith("vkvit: warning: skipping ") && Contains("_broken.png"));
    CHECK(line.find(" step ") == std::string::npos);
  }
  CHECK(warnings == 8);
  CHECK_THAT(screen.back(), StartsWith("epoch 1/1: train loss ") && Contains("8 files skipped"));
}

TEST_CASE("a quiet run prints no progress, VKVIT_PROGRESS=off only the summaries, a bad value is refused", "[progress][cli]") {
  {
    ScopedEnv env("VKVIT_PROGRESS", "bar");
    const CliRun r = vkvit::test::run_cli(dataset().train_args("quiet", 1) + " --quiet");
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK_FALSE(has_control_bytes(r.err));
    CHECK(r.err.find("epoch") == std::string::npos);
  }
  {
    ScopedEnv env("VKVIT_PROGRESS", "off");
    const CliRun r = vkvit::test::run_cli(dataset().train_args("off", 1));
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK_FALSE(has_control_bytes(r.err));
    CHECK(lines_with(r.err, " step ").empty());
    CHECK(lines_with(r.err, "epoch 1/1: train loss ").size() == 1);
  }
  ScopedEnv env("VKVIT_PROGRESS", "fancy");
  const CliRun r = vkvit::test::run_cli(dataset().train_args("fancy", 1));
  CHECK(r.status == 1);
  REQUIRE(lines_of(r.err).size() == 1);
  CHECK_THAT(r.err, Contains("VKVIT_PROGRESS=fancy") && Contains("bar, lines or off"));
}

TEST_CASE("eval and predict keep stdout to the results in every progress mode", "[progress][cli]") {
  const std::string eval = "eval --checkpoint " + q(checkpoint()) + " --data-dir " + q(dataset().data / "val");
  const std::string predict = "predict --checkpoint " + q(checkpoint()) + " " + q(dataset().data / "val");
  for (const char* mode : {"", "lines", "off", "bar"}) {
    ScopedEnv env("VKVIT_PROGRESS", mode);
    INFO("VKVIT_PROGRESS=" << mode);
    const CliRun e = vkvit::test::run_cli(eval);
    INFO(e.err);
    REQUIRE(e.status == 0);
    CHECK_FALSE(has_control_bytes(e.out));
    const nlohmann::json j = nlohmann::json::parse(e.out);  // the whole of stdout is the JSON
    CHECK(j["images"] == 32);
    const CliRun p = vkvit::test::run_cli(predict);
    REQUIRE(p.status == 0);
    CHECK_FALSE(has_control_bytes(p.out));
    CHECK(lines_of(p.out).size() == 33);  // the CSV header and one row per image
    if (std::string(mode) == "bar") {
      CHECK_THAT(e.err, Contains("\reval  0/32 [") && Contains("\reval 32/32 [") && Contains("\r\x1b[K"));
      CHECK_THAT(p.err, Contains("\rpredict 32/32 ["));
      CHECK(screen_of(e.err).empty());  // erased before the process ended
    } else {
      CHECK_FALSE(has_control_bytes(e.err));  // nothing at all outside a terminal
      CHECK_FALSE(has_control_bytes(p.err));
    }
  }
}

TEST_CASE("on a terminal the bar is drawn unasked and fits its width", "[progress][cli]") {
  const CliRun t = run_on_terminal(dataset().train_args("terminal", 1), 72);
  INFO(t.err);
  REQUIRE(t.status == 0);
  CHECK_FALSE(has_control_bytes(t.out));
  CHECK_THAT(t.err, Contains("\repoch 1/1 step 8/8 ["));
  for (size_t at = t.err.find('\r'); at != std::string::npos; at = t.err.find('\r', at + 1))
    CHECK(t.err.find_first_of("\x1b\n", at + 1) - at - 1 <= 71);
  const std::vector<std::string> screen = screen_of(t.err);
  REQUIRE(screen.size() == 2);
  CHECK_THAT(screen[1], StartsWith("epoch 1/1: train loss "));

  const CliRun e = run_on_terminal("eval --checkpoint " + q(checkpoint()) + " --data-dir " + q(dataset().data / "val"), 72);
  INFO(e.err);
  REQUIRE(e.status == 0);
  CHECK_THAT(e.err, Contains("\reval 32/32 ["));
  CHECK(nlohmann::json::parse(e.out)["images"] == 32);
}
