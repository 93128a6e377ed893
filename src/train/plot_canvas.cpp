// Text, ticks and PNG output for the run pictures (see plot_canvas.h).
#include "train/plot_canvas.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "base/error.h"
#include "model/safetensors.h"

namespace vkvit::train::plot {

std::string printable(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
      continue;
    }
    out += '?';
    // A UTF-8 lead byte and its continuation bytes are one character: one '?'.
    if (c >= 0xc0)
      while (i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xc0) == 0x80) ++i;
  }
  return out;
}

cv::Size text_size(const std::string& text, double scale, int thickness) {
  int baseline = 0;
  return cv::getTextSize(text, kFont, scale, thickness, &baseline);
}

std::string fit_text(const std::string& text, double scale, int max_width) {
  if (text_size(text, scale).width <= max_width) return text;
  std::string s = text;
  while (!s.empty() && text_size(s + "..", scale).width > max_width) s.pop_back();
  return s.empty() ? std::string() : s + "..";
}

void put_text(cv::Mat& img, const std::string& text, cv::Point at, double scale, const cv::Scalar& color,
              int align_x, int align_y, int thickness) {
  const cv::Size size = text_size(text, scale, thickness);
  const int x = at.x - (align_x + 1) * size.width / 2;
  const int y = at.y + (1 - align_y) * size.height / 2;  // putText's origin is the baseline
  cv::putText(img, text, {x, y}, kFont, scale, color, thickness, cv::LINE_AA);
}

void put_text_up(cv::Mat& img, const std::string& text, cv::Point at, double scale, const cv::Scalar& color,
                 int align_x, int align_y, int thickness) {
  int baseline = 0;
  const cv::Size size = cv::getTextSize(text, kFont, scale, thickness, &baseline);
  // The box as it appears in the image: as wide as the text is tall (descenders included).
  const cv::Size box(size.height + baseline + 2, size.width + 2);
  const cv::Rect want(at.x - (align_x + 1) * box.width / 2, at.y - (align_y + 1) * box.height / 2, box.width,
                      box.height);
  const cv::Rect inside = want & cv::Rect(0, 0, img.cols, img.rows);
  if (inside.empty()) return;
  // Draw on a copy of the background turned clockwise, then turn it back: the text keeps whatever
  // lies beneath it, and OpenCV needs no rotated-text support.
  cv::Mat patch(box, img.type(), cv::Scalar::all(255));
  img(inside).copyTo(patch(inside - want.tl()));
  cv::Mat turned;
  cv::rotate(patch, turned, cv::ROTATE_90_CLOCKWISE);
  cv::putText(turned, text, {1, size.height + 1}, kFont, scale, color, thickness, cv::LINE_AA);
  cv::rotate(turned, patch, cv::ROTATE_90_COUNTERCLOCKWISE);
  patch(inside - want.tl()).copyTo(img(inside));
}

Ticks nice_ticks(double lo, double hi, int target, double min_step) {
  Ticks t;
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) {
    // One value: a range around it, so the axis still has ticks to read it by.
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  const double raw = (hi - lo) / std::max(target, 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  t.step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  if (t.step < min_step) t.step = min_step;
  t.lo = std::floor(lo / t.step + 1e-9) * t.step;
  t.hi = std::ceil(hi / t.step - 1e-9) * t.step;
  if (t.hi <= t.lo) t.hi = t.lo + t.step;
  const int n = static_cast<int>(std::lround((t.hi - t.lo) / t.step));
  for (int i = 0; i <= n; ++i) t.values.push_back(t.lo + i * t.step);
  t.decimals = std::max(0, static_cast<int>(-std::floor(std::log10(t.step) + 1e-9)));
  return t;
}

std::string format_fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  std::string s = buf;
  // A tiny negative value rounds to "-0.00": drop the sign of a zero.
  if (s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}

void write_png(const std::string& path, const cv::Mat& image) {
  std::vector<uchar> bytes;
  try {
    if (!cv::imencode(".png", image, bytes)) throw Error(path + ": cannot encode the picture as PNG");
  } catch (const cv::Exception& e) {
    throw Error(path + ": cannot encode the picture as PNG: " + e.err);
  }
  model::write_file_atomic(path, [&](std::FILE* f) { return std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size(); });
}

}  // namespace vkvit::train::plot
