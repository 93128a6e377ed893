// confusion.png: the row-normalized confusion matrix as a coloured grid (see plots.h). The grid is
// built at one pixel per class (or per block of classes) and scaled up with nearest-neighbour
// resizing, so 800 classes cost one small image operation rather than 640,000 rectangles.
#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "base/error.h"
#include "train/plot_canvas.h"
#include "train/plots.h"

namespace vkvit::train {

using plot::put_text;
using plot::put_text_up;

namespace {

const cv::Scalar kWhite(255, 255, 255), kText(40, 40, 40), kAxis(110, 110, 110), kCellLine(205, 205, 205),
    kNoImages(222, 222, 222);
constexpr int kNameCell = 14;  // smallest cell that still holds a readable class name

// matplotlib's "Blues" at five stops, BGR: light where rare, dark where frequent, and still
// ordered when printed in grey.
cv::Vec3b blues(double v) {
  static const double stops[5][3] = {
      {255, 251, 247}, {239, 219, 198}, {214, 174, 107}, {181, 113, 33}, {107, 48, 8}};
  v = std::clamp(v, 0.0, 1.0) * 4.0;
  const int i = std::min(3, static_cast<int>(v));
  const double t = v - i;
  cv::Vec3b c;
  for (int k = 0; k < 3; ++k) c[k] = static_cast<uchar>(std::lround(stops[i][k] + t * (stops[i + 1][k] - stops[i][k])));
  return c;
}

// Fractions of each true class's images per predicted class; NaN for a class without images.
std::vector<double> row_fractions(const std::vector<uint64_t>& counts, size_t K) {
  std::vector<double> f(K * K, NAN);
  for (size_t i = 0; i < K; ++i) {
    uint64_t total = 0;
    for (size_t j = 0; j < K; ++j) total += counts[i * K + j];
    if (total)
      for (size_t j = 0; j < K; ++j) f[i * K + j] = double(counts[i * K + j]) / double(total);
  }
  return f;
}

// P x P colours, P = min(K, kConfusionMaxGrid): pixel (r, c) averages the fractions of the classes
// that fall into it, leaving out rows without images (grey when all of them have none).
cv::Mat small_grid(const std::vector<double>& f, size_t K) {
  const size_t P = std::min<size_t>(K, kConfusionMaxGrid);
  std::vector<double> sum(P * P, 0.0);
  std::vector<uint32_t> n(P * P, 0);
  for (size_t i = 0; i < K; ++i) {
    const size_t r = i * P / K;
    for (size_t j = 0; j < K; ++j) {
      const double v = f[i * K + j];
      if (std::isnan(v)) continue;
      sum[r * P + j * P / K] += v;
      ++n[r * P + j * P / K];
    }
  }
  cv::Mat img(static_cast<int>(P), static_cast<int>(P), CV_8UC3);
  for (size_t r = 0; r < P; ++r)
    for (size_t c = 0; c < P; ++c) {
      const size_t k = r * P + c;
      img.at<cv::Vec3b>(int(r), int(c)) =
          n[k] ? blues(sum[k] / n[k]) : cv::Vec3b(uchar(kNoImages[0]), uchar(kNoImages[1]), uchar(kNoImages[2]));
    }
  return img;
}

// The value (and, in large cells, the count) centred in each cell, where the text fits.
void draw_cell_values(cv::Mat& img, const std::vector<uint64_t>& counts, const std::vector<double>& f, size_t K,
                      int cell) {
  const double scale = cell >= 60 ? 0.5 : cell >= 40 ? 0.42 : 0.35;
  const bool with_count = cell >= 72;
  for (size_t i = 0; i < K; ++i)
    for (size_t j = 0; j < K; ++j) {
      const double v = f[i * K + j];
      if (std::isnan(v)) continue;  // a class without images: its grey row says so
      const std::string value = counts[i * K + j] == 0 ? "0" : plot::format_fixed(v, 2);
      const cv::Size size = plot::text_size(value, scale);
      if (size.width > cell - 4 || size.height > cell - 4) return;  // the same for every cell
      const cv::Scalar color = v > 0.55 ? kWhite : kText;
      const cv::Point centre(kConfusionLeft + int(j) * cell + cell / 2, kConfusionTop + int(i) * cell + cell / 2);
      if (with_count) {
        put_text(img, value, {centre.x, centre.y - 9}, scale, color, 0, 0);
        const std::string n = "(" + std::to_string(counts[i * K + j]) + ")";
        if (plot::text_size(n, 0.38).width <= cell - 4) put_text(img, n, {centre.x, centre.y + 12}, 0.38, color, 0, 0);
      } else {
        put_text(img, value, centre, scale, color, 0, 0);
      }
    }
}

// Class names beside the rows and under the columns (read upwards), shortened to the margins.
void draw_names(cv::Mat& img, const std::vector<std::string>& classes, int cell) {
  const double scale = cell >= 40 ? 0.45 : 0.38;
  const int grid_end_y = kConfusionTop + int(classes.size()) * cell;
  for (size_t k = 0; k < classes.size(); ++k) {
    const std::string name = plot::printable(classes[k]);
    const int mid = int(k) * cell + cell / 2;
    put_text(img, plot::fit_text(name, scale, kConfusionLeft - 48), {kConfusionLeft - 8, kConfusionTop + mid}, scale,
             kText, 1, 0);
    put_text_up(img, plot::fit_text(name, scale, kConfusionBottom - 48), {kConfusionLeft + mid, grid_end_y + 6}, scale,
                kText, 0, -1);
  }
}

// Class-index ticks for grids too fine for names (the names are in eval's JSON, by index).
void draw_index_ticks(cv::Mat& img, size_t K, int grid) {
  const plot::Ticks t = plot::nice_ticks(0, double(K - 1), std::max(2, grid / 70), 1);
  for (double v : t.values) {
    if (v > double(K - 1)) continue;
    const int at = static_cast<int>(std::lround((v + 0.5) * grid / double(K)));
    const std::string label = plot::format_fixed(v, 0);
    cv::line(img, {kConfusionLeft - 5, kConfusionTop + at}, {kConfusionLeft, kConfusionTop + at}, kAxis, 1);
    put_text(img, label, {kConfusionLeft - 8, kConfusionTop + at}, 0.4, kText, 1, 0);
    cv::line(img, {kConfusionLeft + at, kConfusionTop + grid}, {kConfusionLeft + at, kConfusionTop + grid + 5}, kAxis, 1);
    put_text(img, label, {kConfusionLeft + at, kConfusionTop + grid + 9}, 0.4, kText, 0, -1);
  }
}

// The colour scale to the right of the grid: 0 at the bottom, 1 at the top.
void draw_colorbar(cv::Mat& img, int grid) {
  const int x = kConfusionLeft + grid + 20, w = 16;
  for (int y = 0; y < grid; ++y) {
    const cv::Vec3b c = blues(1.0 - (y + 0.5) / grid);
    cv::line(img, {x, kConfusionTop + y}, {x + w - 1, kConfusionTop + y}, cv::Scalar(c[0], c[1], c[2]), 1);
  }
  cv::rectangle(img, cv::Rect(x, kConfusionTop, w, grid), kAxis, 1);
  for (double v : {0.0, 0.5, 1.0}) {
    const int y = kConfusionTop + static_cast<int>(std::lround((1.0 - v) * (grid - 1)));
    cv::line(img, {x + w, y}, {x + w + 4, y}, kAxis, 1);
    put_text(img, plot::format_fixed(v, 1), {x + w + 7, y}, 0.4, kText, -1, 0);
  }
}

}  // namespace

ConfusionLayout confusion_layout(size_t num_classes) {
  ConfusionLayout l;
  const size_t K = std::max<size_t>(num_classes, 1);
  if (K <= size_t(kConfusionMaxGrid)) {
    const size_t target = std::clamp<size_t>(64 * K, 320, kConfusionMaxGrid);
    l.cell = static_cast<int>(std::max<size_t>(1, target / K));
    l.grid = l.cell * static_cast<int>(K);
  } else {
    l.grid = kConfusionMaxGrid;
  }
  l.image = cv::Size(kConfusionLeft + l.grid + kConfusionRight, kConfusionTop + l.grid + kConfusionBottom);
  return l;
}

cv::Mat draw_confusion(const std::vector<uint64_t>& counts, const std::vector<std::string>& classes,
                       const std::string& title) {
  const size_t K = classes.size();
  if (K == 0) throw Error("confusion picture: no classes");
  if (counts.size() != K * K)
    throw Error("confusion picture: " + std::to_string(counts.size()) + " counts for " + std::to_string(K) +
                " classes (expected " + std::to_string(K * K) + ")");
  const ConfusionLayout l = confusion_layout(K);
  cv::Mat img(l.image, CV_8UC3, kWhite);
  const std::vector<double> f = row_fractions(counts, K);

  cv::Mat grid;
  cv::resize(small_grid(f, K), grid, {l.grid, l.grid}, 0, 0, cv::INTER_NEAREST);
  grid.copyTo(img(cv::Rect(kConfusionLeft, kConfusionTop, l.grid, l.grid)));
  if (l.cell >= 8)
    for (size_t k = 1; k < K; ++k) {
      const int at = int(k) * l.cell;
      cv::line(img, {kConfusionLeft + at, kConfusionTop}, {kConfusionLeft + at, kConfusionTop + l.grid - 1}, kCellLine, 1);
      cv::line(img, {kConfusionLeft, kConfusionTop + at}, {kConfusionLeft + l.grid - 1, kConfusionTop + at}, kCellLine, 1);
    }
  cv::rectangle(img, cv::Rect(kConfusionLeft - 1, kConfusionTop - 1, l.grid + 2, l.grid + 2), kAxis, 1);
  if (l.cell > 0) draw_cell_values(img, counts, f, K, l.cell);

  const bool names = l.cell >= kNameCell;
  if (names) draw_names(img, classes, l.cell);
  else draw_index_ticks(img, K, l.grid);
  draw_colorbar(img, l.grid);

  put_text(img, plot::fit_text(plot::printable(title), 0.6, l.image.width - 20), {l.image.width / 2, 28}, 0.6, kText,
           0, 0, 1);
  put_text_up(img, names ? "true class (rows sum to 1)" : "true class index (rows sum to 1)",
              {16, kConfusionTop + l.grid / 2}, 0.5, kText, 0, 0);
  put_text(img, names ? "predicted class" : "predicted class index",
           {kConfusionLeft + l.grid / 2, l.image.height - 14}, 0.5, kText, 0, 1);
  return img;
}

void write_confusion_png(const std::string& path, const std::vector<uint64_t>& counts,
                         const std::vector<std::string>& classes, const std::string& title) {
  plot::write_png(path, draw_confusion(counts, classes, title));
}

}  // namespace vkvit::train
