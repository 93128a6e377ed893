// curves.png: summary.csv read back and drawn as two panels sharing the epoch axis (see plots.h).
// The whole file is redrawn each epoch rather than extended, so a resumed run, a rewound
// summary.csv or a copied run folder always gets a picture of exactly the rows it holds.
#include "train/plots.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <opencv2/imgproc.hpp>

#include "base/error.h"
#include "base/log.h"
#include "train/plot_canvas.h"

namespace vkvit::train {

namespace fs = std::filesystem;
using plot::put_text;
using plot::put_text_up;

namespace {

double parse_cell(const std::string& cell, const std::string& where) {
  if (cell.empty()) return NAN;  // an epoch without evaluation
  char* end = nullptr;
  const double v = std::strtod(cell.c_str(), &end);
  if (end != cell.c_str() + cell.size()) throw Error(where + ": '" + cell + "' is not a number");
  return v;
}

uint64_t parse_count(const std::string& cell, const std::string& where) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(cell.c_str(), &end, 10);
  if (cell.empty() || cell[0] == '-' || end != cell.c_str() + cell.size())
    throw Error(where + ": '" + cell + "' is not a count");
  return v;
}

}  // namespace

std::vector<SummaryRow> read_summary_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open: " + std::strerror(errno));
  std::string line;
  if (!std::getline(in, line) || (line != RunDir::kSummaryHeader && line != RunDir::kSummaryHeaderEma))
    throw Error(path + ": its header is not vkvit's summary.csv header (" + std::string(RunDir::kSummaryHeader) + ")");
  const size_t columns = line == RunDir::kSummaryHeaderEma ? 11 : 8;  // train.model_ema adds three
  std::vector<SummaryRow> rows;
  for (int number = 2; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    const std::string where = path + " line " + std::to_string(number);
    std::vector<std::string> cells;
    std::stringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) cells.push_back(cell);
    if (line.back() == ',') cells.push_back("");  // getline drops a trailing empty cell
    if (cells.size() != columns)
      throw Error(where + ": " + std::to_string(cells.size()) + " cells, the header names " + std::to_string(columns));
    SummaryRow r;
    r.epoch = static_cast<int>(parse_count(cells[0], where));
    r.train_loss = parse_cell(cells[1], where);
    r.val_loss = parse_cell(cells[2], where);
    r.val_top1 = parse_cell(cells[3], where);
    r.val_top5 = parse_cell(cells[4], where);
    r.lr = parse_cell(cells[5], where);
    r.img_per_s = parse_cell(cells[6], where);
    r.skipped_files = parse_count(cells[7], where);
    if (columns == 11) {
      r.has_ema = true;
      r.ema_val_loss = parse_cell(cells[8], where);
      r.ema_val_top1 = parse_cell(cells[9], where);
      r.ema_val_top5 = parse_cell(cells[10], where);
    }
    rows.push_back(r);
  }
  return rows;
}

namespace {

const cv::Scalar kWhite(255, 255, 255), kText(40, 40, 40), kAxis(110, 110, 110), kGrid(228, 228, 228),
    kMuted(150, 150, 150);
// matplotlib's first three colours (blue, orange, green), in BGR: familiar and told apart by most
// colour-blind readers.
const cv::Scalar kTrainLoss(180, 119, 31), kValLoss(14, 127, 255), kValTop1(44, 160, 44);
// The model EMA's evaluation (train.model_ema): purple loss, red top-1, beside the model's.
const cv::Scalar kEmaValLoss(189, 103, 148), kEmaValTop1(40, 39, 214);

constexpr int kLeft = 90, kRight = 30, kTop = 50, kBottom = 60, kGap = 55;
constexpr double kLabelScale = 0.45;

struct Series {
  std::string label;
  cv::Scalar color;
  std::vector<double> y;  // one per row; NaN = no value that epoch
};

// One panel: a plot area with an epoch axis (shared) and its own value axis.
struct Panel {
  cv::Rect area;
  double x0 = 0, x1 = 1;  // epochs at the left and right edges
  plot::Ticks y;

  cv::Point at(double x, double v) const {
    const double fx = (x - x0) / (x1 - x0), fy = (v - y.lo) / (y.hi - y.lo);
    return {area.x + static_cast<int>(std::lround(fx * area.width)),
            area.y + area.height - static_cast<int>(std::lround(fy * area.height))};
  }
};

bool any_finite(const std::vector<double>& v) {
  return std::any_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

// Range of the finite values of every series, padded by 5% so no line runs along the frame.
std::pair<double, double> value_range(const std::vector<Series>& series) {
  double lo = INFINITY, hi = -INFINITY;
  for (const Series& s : series)
    for (double v : s.y)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  const double pad = 0.05 * (hi - lo);
  return {lo - pad, hi + pad};
}

void draw_frame(cv::Mat& img, const Panel& p, const plot::Ticks& xt, const std::string& y_title, bool with_values) {
  for (double e : xt.values) {
    const int x = p.at(e, 0).x;
    if (x < p.area.x || x > p.area.x + p.area.width) continue;
    cv::line(img, {x, p.area.y}, {x, p.area.y + p.area.height}, kGrid, 1);
    cv::line(img, {x, p.area.y + p.area.height}, {x, p.area.y + p.area.height + 4}, kAxis, 1);
    put_text(img, plot::format_fixed(e, 0), {x, p.area.y + p.area.height + 9}, kLabelScale, kText, 0, -1);
  }
  if (with_values)
    for (double v : p.y.values) {
      const int y = p.at(p.x0, v).y;
      cv::line(img, {p.area.x, y}, {p.area.x + p.area.width, y}, kGrid, 1);
      cv::line(img, {p.area.x - 4, y}, {p.area.x, y}, kAxis, 1);
      put_text(img, plot::format_fixed(v, p.y.decimals), {p.area.x - 8, y}, kLabelScale, kText, 1, 0);
    }
  cv::rectangle(img, p.area, kAxis, 1);
  put_text_up(img, y_title, {18, p.area.y + p.area.height / 2}, 0.5, kText, 0, 0);
}

void draw_series(cv::Mat& img, const Panel& p, const std::vector<int>& epochs, const Series& s) {
  const size_t n = epochs.size();
  // Markers on every point while they stay apart; past that only on points with no line through
  // them (an evaluation between epochs without one), which would otherwise not show at all.
  const bool all_markers = n <= 60;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(s.y[i])) continue;
    const bool joined_left = i > 0 && std::isfinite(s.y[i - 1]) && epochs[i - 1] + 1 == epochs[i];
    const bool joined_right = i + 1 < n && std::isfinite(s.y[i + 1]) && epochs[i] + 1 == epochs[i + 1];
    const cv::Point here = p.at(epochs[i], s.y[i]);
    if (joined_left) cv::line(img, p.at(epochs[i - 1], s.y[i - 1]), here, s.color, 2, cv::LINE_AA);
    if (all_markers || (!joined_left && !joined_right)) cv::circle(img, here, 3, s.color, cv::FILLED, cv::LINE_AA);
  }
}

// A legend box in a corner of the panel (`bottom`: the lower right corner, else the upper right).
void draw_legend(cv::Mat& img, const Panel& p, const std::vector<Series>& series, bool bottom) {
  constexpr int kRow = 20, kSwatch = 24, kPad = 8;
  int width = 0;
  for (const Series& s : series) width = std::max(width, plot::text_size(s.label, kLabelScale).width);
  const cv::Size box(kPad * 3 + kSwatch + width, kPad * 2 + kRow * static_cast<int>(series.size()) - 6);
  const int x = p.area.x + p.area.width - box.width - 10;
  const int y = bottom ? p.area.y + p.area.height - box.height - 10 : p.area.y + 10;
  cv::rectangle(img, cv::Rect({x, y}, box), kWhite, cv::FILLED);
  cv::rectangle(img, cv::Rect({x, y}, box), kMuted, 1);
  for (size_t i = 0; i < series.size(); ++i) {
    const int cy = y + kPad + 7 + static_cast<int>(i) * kRow;
    cv::line(img, {x + kPad, cy}, {x + kPad + kSwatch, cy}, series[i].color, 2, cv::LINE_AA);
    cv::circle(img, {x + kPad + kSwatch / 2, cy}, 3, series[i].color, cv::FILLED, cv::LINE_AA);
    put_text(img, series[i].label, {x + 2 * kPad + kSwatch, cy}, kLabelScale, kText, -1, 0);
  }
}

void draw_panel(cv::Mat& img, Panel p, const plot::Ticks& xt, const std::vector<int>& epochs,
                std::vector<Series> series, const std::string& y_title, double floor, double ceiling,
                bool legend_bottom, const std::string& empty_note) {
  for (Series& s : series)
    if (!any_finite(s.y)) s.label += " (none)";
  const bool has_values = std::any_of(series.begin(), series.end(), [](const Series& s) { return any_finite(s.y); });
  if (has_values) {
    auto [lo, hi] = value_range(series);
    p.y = plot::nice_ticks(std::max(lo, floor), std::min(hi, ceiling), 5);
  }
  draw_frame(img, p, xt, y_title, has_values);
  if (!has_values) {
    put_text(img, empty_note, {p.area.x + p.area.width / 2, p.area.y + p.area.height / 2}, 0.55, kMuted, 0, 0);
    return;
  }
  for (const Series& s : series) draw_series(img, p, epochs, s);
  draw_legend(img, p, series, legend_bottom);
}

// Appends " (best 91.20% at epoch 7)" to the series' label: its highest value and that epoch.
void label_best(Series& s, const std::vector<int>& epochs) {
  int best = -1;
  for (size_t i = 0; i < s.y.size(); ++i)
    if (std::isfinite(s.y[i]) && (best < 0 || s.y[i] > s.y[size_t(best)])) best = static_cast<int>(i);
  if (best >= 0)
    s.label += " (best " + plot::format_fixed(s.y[size_t(best)], 2) + "% at epoch " + std::to_string(epochs[size_t(best)]) + ")";
}

}  // namespace

cv::Mat draw_curves(const std::vector<SummaryRow>& input, const std::string& run_name) {
  // One row per epoch, in order; a repeated epoch (rows a crashed run wrote twice) keeps its last.
  std::map<int, SummaryRow> by_epoch;
  for (const SummaryRow& r : input) by_epoch[r.epoch] = r;
  std::vector<int> epochs;
  Series train_loss{"train loss", kTrainLoss, {}}, val_loss{"val loss", kValLoss, {}}, top1{"val top-1", kValTop1, {}};
  Series ema_loss{"EMA val loss", kEmaValLoss, {}}, ema_top1{"EMA val top-1", kEmaValTop1, {}};
  bool has_ema = false;
  for (const auto& [epoch, r] : by_epoch) {
    epochs.push_back(epoch);
    train_loss.y.push_back(std::isfinite(r.train_loss) ? r.train_loss : NAN);
    val_loss.y.push_back(std::isfinite(r.val_loss) ? r.val_loss : NAN);
    top1.y.push_back(std::isfinite(r.val_top1) ? r.val_top1 : NAN);
    has_ema = has_ema || r.has_ema;
    ema_loss.y.push_back(r.has_ema && std::isfinite(r.ema_val_loss) ? r.ema_val_loss : NAN);
    ema_top1.y.push_back(r.has_ema && std::isfinite(r.ema_val_top1) ? r.ema_val_top1 : NAN);
  }
  // The best val top-1 and its epoch, named in the legend: the epoch of best.safetensors, which
  // is chosen by the EMA's top-1 when the run keeps an EMA.
  label_best(has_ema ? ema_top1 : top1, epochs);
  std::vector<Series> losses = {train_loss, val_loss}, accuracies = {top1};
  if (has_ema) {
    losses.push_back(ema_loss);
    accuracies.push_back(ema_top1);
  }

  cv::Mat img(kCurvesHeight, kCurvesWidth, CV_8UC3, kWhite);
  const std::string title = plot::fit_text(plot::printable(run_name.empty() ? "training curves" : run_name), 0.7,
                                           kCurvesWidth - 40);
  put_text(img, title, {kCurvesWidth / 2, 24}, 0.7, kText, 0, 0, 2);

  const plot::Ticks xt = epochs.empty() ? plot::nice_ticks(1, 1, 8, 1)
                                        : plot::nice_ticks(epochs.front(), epochs.back(), 8, 1);
  // A little room left and right so the first and last points are not cut by the frame.
  const double span = std::max(1.0, double(epochs.empty() ? 1 : epochs.back() - epochs.front()));
  Panel p;
  p.x0 = (epochs.empty() ? 0.0 : std::min<double>(xt.lo, epochs.front())) - 0.03 * span;
  p.x1 = (epochs.empty() ? 2.0 : std::max<double>(xt.hi, epochs.back())) + 0.03 * span;
  const int ph = (kCurvesHeight - kTop - kBottom - kGap) / 2;
  p.area = cv::Rect(kLeft, kTop, kCurvesWidth - kLeft - kRight, ph);
  // Losses are never negative and accuracies lie in [0, 100]: the padding stops at those bounds.
  draw_panel(img, p, xt, epochs, losses, "loss", 0, INFINITY, false, "no epochs yet");
  p.area.y += ph + kGap;
  draw_panel(img, p, xt, epochs, accuracies, "val top-1 (%)", 0, 100, true,
             epochs.empty() ? "no epochs yet" : "not evaluated yet (train.eval_every, or no val split)");
  put_text(img, "epoch", {p.area.x + p.area.width / 2, kCurvesHeight - 12}, 0.5, kText, 0, 1);
  return img;
}

void write_curves(const std::string& run_dir) {
  const fs::path dir(run_dir);
  const std::vector<SummaryRow> rows = read_summary_csv((dir / "summary.csv").string());
  // The run's name is its folder's (<timestamp>-<config>, or what --output named it).
  fs::path norm = fs::absolute(dir).lexically_normal();
  if (norm.filename().empty()) norm = norm.parent_path();  // "runs/x/" names x too
  plot::write_png((dir / "curves.png").string(), draw_curves(rows, norm.filename().string()));
}

void update_curves(const RunDir& run) {
  try {
    write_curves(run.path());
  } catch (const std::exception& e) {
    log_warn(std::string("curves.png not updated: ") + e.what());
  }
}

}  // namespace vkvit::train
