// Small drawing helpers shared by the run pictures (train/plots.h): text that OpenCV's Hershey
// fonts can show, text anchored by a corner or rotated, "nice" axis ticks, and PNG files written
// atomically. Internal to the plots; the pictures themselves are declared in train/plots.h.
#pragma once
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

namespace vkvit::train::plot {

// Hershey fonts draw printable ASCII only: every other byte sequence (a UTF-8 character, a stray
// byte of a non-UTF-8 file name, a control code) becomes one '?', so a label never draws garbage.
std::string printable(const std::string& text);

// `text` shortened with a trailing ".." until it is at most `max_width` pixels wide at `scale`.
std::string fit_text(const std::string& text, double scale, int max_width);

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

cv::Size text_size(const std::string& text, double scale, int thickness = 1);

// Draws `text` (already printable) with its box placed at `at` by `align_x` (-1 left edge, 0
// centre, +1 right edge) and `align_y` (-1 top, 0 middle, +1 bottom of the capitals).
void put_text(cv::Mat& img, const std::string& text, cv::Point at, double scale, const cv::Scalar& color,
              int align_x, int align_y, int thickness = 1);

// The same, read bottom to top (rotated 90 degrees counter-clockwise); `at` and the alignment refer
// to the rotated box as it appears in the image. Clipped to the image.
void put_text_up(cv::Mat& img, const std::string& text, cv::Point at, double scale, const cv::Scalar& color,
                 int align_x, int align_y, int thickness = 1);

// Axis ticks: multiples of 1, 2 or 5 x 10^k covering [lo, hi] with about `target` intervals and a
// step of at least `min_step` (1 for whole epochs or class indices).
struct Ticks {
  double lo = 0, hi = 1, step = 1;  // the axis range, widened to whole steps
  std::vector<double> values;
  int decimals = 0;                 // digits after the point that tell the ticks apart
};
Ticks nice_ticks(double lo, double hi, int target, double min_step = 0);

std::string format_fixed(double value, int decimals);

// Encodes `image` as PNG and writes it through a temp file and a rename (model::write_file_atomic),
// so a reader never sees half a picture. Throws vkvit::Error naming the path.
void write_png(const std::string& path, const cv::Mat& image);

}  // namespace vkvit::train::plot
