// Pictures of a run and of an evaluation, drawn with OpenCV alone so that a run folder can be
// judged at a glance with any image viewer, without Python or a plotting library:
//
//   runs/<run>/curves.png  redrawn after every epoch from the whole summary.csv (so a resumed run
//                          shows its earlier epochs too): train and val loss against the epoch
//                          above, val top-1 (percent) below (with the model EMA's beside them
//                          when train.model_ema kept one); an epoch without evaluation is a gap
//                          in the val lines (isolated evaluations are dots).
//   confusion.png          written by `vkvit eval`: the K x K confusion matrix, each row divided
//                          by its image count, as a coloured grid (white 0 to dark blue 1) with
//                          class names on both axes and the value in each cell where it fits.
//
// Both are written atomically (a temp file renamed over the old picture), like the other run files.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "train/run_dir.h"

namespace vkvit::train {

// summary.csv read back; empty cells (an epoch without evaluation) are NaN. Throws Error naming
// the file when it cannot be read, its header is not RunDir::kSummaryHeader or a row is malformed.
std::vector<SummaryRow> read_summary_csv(const std::string& path);

// curves.png's fixed size: big enough for a few hundred epochs, small enough to open anywhere.
constexpr int kCurvesWidth = 960, kCurvesHeight = 720;

// The training curves of `rows` (any order; the last row of a repeated epoch wins), titled
// `run_name`: a BGR image of kCurvesWidth x kCurvesHeight. No rows, or only non-finite values,
// give empty panels that say so.
cv::Mat draw_curves(const std::vector<SummaryRow>& rows, const std::string& run_name);

// Draws the run folder's summary.csv into its curves.png. Throws Error.
void write_curves(const std::string& run_dir);

// The trainer's call after each summary row: write_curves, with any failure logged as a warning,
// since a picture must never stop a training run.
void update_curves(const RunDir& run);

// The confusion picture's geometry, a function of the class count alone: cells of `cell` pixels
// (clamp(64 K, 320, 800) / K, at least 1) for up to kConfusionMaxGrid classes; past that the grid
// is kConfusionMaxGrid pixels and each pixel averages a block of classes, so 1000 classes (or
// more) never make a picture larger than kConfusionMaxGrid plus the margins. The margins are
// fixed (class names are shortened to fit them).
constexpr int kConfusionMaxGrid = 800;
constexpr int kConfusionLeft = 230, kConfusionRight = 100, kConfusionTop = 60, kConfusionBottom = 230;
struct ConfusionLayout {
  int cell = 0;  // pixels per class; 0 when the grid bins several classes per pixel
  int grid = 0;  // side of the grid in pixels
  cv::Size image;
};
ConfusionLayout confusion_layout(size_t num_classes);

// The row-normalized confusion picture of `counts` ((K, K), row = true class, column = predicted),
// with `classes` (K names) on both axes and `title` above (e.g. the checkpoint and its top-1).
// Names are drawn while a cell is at least 14 pixels; smaller cells get class-index ticks. Cell
// values ("0.93"; with the count below in cells of 72 pixels or more) are drawn where they fit. A
// row without images is grey. Throws Error when the sizes disagree.
cv::Mat draw_confusion(const std::vector<uint64_t>& counts, const std::vector<std::string>& classes,
                       const std::string& title);

// draw_confusion written to `path` as PNG, atomically. Throws Error.
void write_confusion_png(const std::string& path, const std::vector<uint64_t>& counts,
                         const std::vector<std::string>& classes, const std::string& title);

}  // namespace vkvit::train
