// Run pictures and the confusion matrix: the meter's counts on a hand-worked case, summary.csv read
// back, curves.png after a short CLI run (with epochs left unevaluated, and redrawn from every row
// after --resume), the confusion picture's size for 1, 10 and 1000 classes, and what `vkvit eval`
// writes: the counts in its JSON and <stem>_confusion.png beside --results-file.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "harness.h"
#include "stripes.h"
#include "train/config.h"
#include "train/metrics.h"
#include "train/plots.h"
#include "train/run_dir.h"

using namespace vkvit;
using Catch::Matchers::Contains;
using test::q;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

// Pixels that differ from the white background.
int ink(const cv::Mat& bgr) {
  cv::Mat grey;
  cv::Mat diff;
  cv::absdiff(bgr, cv::Scalar(255, 255, 255), diff);
  cv::cvtColor(diff, grey, cv::COLOR_BGR2GRAY);
  return cv::countNonZero(grey);
}

// Pixels within a small distance of one colour (BGR): the pixels of one curve.
int pixels_of(const cv::Mat& bgr, const cv::Scalar& color) {
  cv::Mat mask;
  cv::inRange(bgr, color - cv::Scalar::all(6), color + cv::Scalar::all(6), mask);
  return cv::countNonZero(mask);
}

const cv::Scalar kOrange(14, 127, 255);  // val loss (plots.cpp)
const cv::Scalar kEmaRed(40, 39, 214);  // the EMA's val top-1 (plots.cpp)

train::SummaryRow row(int epoch, double train_loss, double val_loss, double top1) {
  train::SummaryRow r;
  r.epoch = epoch;
  r.train_loss = train_loss;
  r.val_loss = val_loss;
  r.val_top1 = top1;
  r.val_top5 = std::isnan(top1) ? NAN : 100.0;
  r.lr = 1e-3;
  r.img_per_s = 100;
  return r;
}

// One tiny run through the CLI, trained in two legs: 3 epochs evaluating every second one (so
// epoch 1 has no val numbers; the last epoch always has), then --resume to 6 epochs (epoch 5 has
// none). The curves after each leg are kept.
struct ResumedRun {
  TempDir dir{"plots-run"};
  fs::path data, run, checkpoint;
  cv::Mat first_leg_curves;
  int first_leg_rows = 0;

  ResumedRun() {
    data = dir.path / "data";
    test::write_stripe_dataset(data, 32, 8, 5, 0);
    const fs::path config = dir.path / "tiny.yaml";
    test::write_file(config, test::tiny_stripes_config_yaml(3));
    run = dir.path / "run";
    test::CliRun r = test::run_cli("train -q --config " + q(config) + " --data-dir " + q(data) + " --output " + q(run) +
                                   " --set train.eval_every=2");
    INFO(r.err);
    REQUIRE(r.status == 0);
    REQUIRE(fs::exists(run / "curves.png"));
    first_leg_curves = cv::imread((run / "curves.png").string(), cv::IMREAD_COLOR);
    first_leg_rows = static_cast<int>(train::read_summary_csv((run / "summary.csv").string()).size());
    r = test::run_cli("train -q --config " + q(run / "config.yaml") + " --data-dir " + q(data) + " --resume " +
                      q(run / "last.safetensors") + " --epochs 6");
    INFO(r.err);
    REQUIRE(r.status == 0);
    checkpoint = run / "last.safetensors";
  }
};

const ResumedRun& resumed_run() {
  static ResumedRun r;
  return r;
}

}  // namespace

TEST_CASE("the confusion matrix counts a hand-worked case", "[plots][metrics]") {
  // Row by row (label: logits -> predicted top-1):
  //   0: {3, 1, 2} -> 0        0: {1, 2, 0} -> 1        1: {0, 5, 5} -> 1 (tie: lower index)
  //   2: {4, 4, 4} -> 0 (tie)  2: {NaN, 0, 1} -> 2 (a NaN never wins)
  //   1: {NaN, NaN, NaN} -> no prediction, in no column
  //   2: {1, NaN, 0.5} -> 0    0: {NaN, 1, 2} -> 2 (the label's own logit is NaN)
  const float n = std::nanf("");
  const float logits[] = {3, 1, 2, 1, 2, 0, 0, 5, 5, 4, 4, 4, n, 0, 1, n, n, n, 1, n, 0.5f, n, 1, 2};
  const int32_t labels[] = {0, 0, 1, 2, 2, 1, 2, 0};
  CHECK(train::top1_class(logits + 6, 3) == 1);
  CHECK(train::top1_class(logits + 15, 3) == 3);  // only NaNs: none
  train::AccuracyMeter m(3);
  m.add(logits, labels, 5);  // in two batches: the counts accumulate
  m.add(logits + 15, labels + 5, 3);
  const std::vector<uint64_t> expected = {1, 1, 1,  //
                                          0, 1, 0,  //
                                          2, 0, 1};
  CHECK(m.confusion() == expected);
  // The diagonal is the top-1 count, class by class.
  for (int k = 0; k < 3; ++k) CHECK(m.confusion()[size_t(k) * 3 + k] == m.per_class_correct()[size_t(k)]);
  CHECK(m.top1() == Approx(3.0 / 8.0));
  m.reset();
  CHECK(m.confusion() == std::vector<uint64_t>(9, 0));
  // Too many classes for a K x K matrix: none is kept, the accuracies still are.
  train::AccuracyMeter big(train::kMaxConfusionClasses + 1);
  CHECK(big.confusion().empty());
}

TEST_CASE("summary.csv reads back with empty cells as NaN", "[plots]") {
  TempDir dir("plots-summary");
  const train::RunDir run = train::RunDir::create(train::RunConfig{}, dir / "run");
  run.append_summary(row(1, 2.5, NAN, NAN));
  run.append_summary(row(2, 2.0, 1.9, 41.5));
  const std::vector<train::SummaryRow> rows = train::read_summary_csv(run.file("summary.csv"));
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].epoch == 1);
  CHECK(rows[0].train_loss == 2.5);
  CHECK(std::isnan(rows[0].val_loss));
  CHECK(std::isnan(rows[0].val_top1));
  CHECK(rows[1].val_top1 == 41.5);
  test::write_file(dir / "bad.csv", "epoch,loss\n1,2\n");
  CHECK_THAT(test::error_of([&] { train::read_summary_csv(dir / "bad.csv"); }), Contains("bad.csv") && Contains("header"));
}

TEST_CASE("curves are drawn at their fixed size, with gaps where val is missing", "[plots]") {
  // Val at epochs 2 and 4 only: two dots, no line between them.
  const std::vector<train::SummaryRow> gaps = {row(1, 2.0, NAN, NAN), row(2, 1.5, 1.6, 40), row(3, 1.2, NAN, NAN),
                                               row(4, 1.0, 1.1, 60)};
  std::vector<train::SummaryRow> full = gaps;
  full[2].val_loss = 1.3;
  full[2].val_top1 = 50;
  const cv::Mat with_gaps = train::draw_curves(gaps, "gaps");
  const cv::Mat joined = train::draw_curves(full, "joined");
  CHECK(with_gaps.cols == train::kCurvesWidth);
  CHECK(with_gaps.rows == train::kCurvesHeight);
  CHECK(with_gaps.type() == CV_8UC3);
  CHECK(ink(with_gaps) > 5000);
  // The orange of val loss: dots (and the legend swatch) with gaps, a line through three points
  // without; a 2-pixel line between points 200 pixels apart outweighs a dot by far.
  const int dots = pixels_of(with_gaps, kOrange), line = pixels_of(joined, kOrange);
  INFO("orange pixels: " << dots << " with gaps, " << line << " joined");
  CHECK(dots > 20);
  CHECK(line > dots + 400);
  // Degenerate inputs still give a picture of the same size.
  for (const auto& rows : {std::vector<train::SummaryRow>{}, std::vector<train::SummaryRow>{row(1, NAN, NAN, NAN)},
                           std::vector<train::SummaryRow>{row(7, 1.0, 1.0, 100.0)}}) {
    const cv::Mat img = train::draw_curves(rows, "edge");
    CHECK(img.size() == cv::Size(train::kCurvesWidth, train::kCurvesHeight));
    CHECK(ink(img) > 1000);  // frames, ticks and the note that there is nothing to draw
  }
}

TEST_CASE("curves show the model EMA's evaluation beside the model's when summary.csv has it", "[plots]") {
  std::vector<train::SummaryRow> rows = {row(1, 2.0, 1.9, 40), row(2, 1.5, 1.6, 50), row(3, 1.2, 1.3, 55)};
  const cv::Mat plain = train::draw_curves(rows, "no ema");
  for (auto& r : rows) {
    r.has_ema = true;
    r.ema_val_loss = r.val_loss - 0.1;
    r.ema_val_top1 = r.val_top1 + 3;
    r.ema_val_top5 = 100;
  }
  const cv::Mat with_ema = train::draw_curves(rows, "ema");
  // The EMA's red top-1 line (plus its legend swatch) appears only when the rows carry it.
  const int none = pixels_of(plain, kEmaRed), line = pixels_of(with_ema, kEmaRed);
  INFO("EMA red pixels: " << none << " without, " << line << " with");
  CHECK(none == 0);
  CHECK(line > 400);
}

TEST_CASE("a CLI run writes curves.png each epoch and redraws every row after a resume", "[plots][cli]") {
  const ResumedRun& r = resumed_run();
  // First leg: 3 rows, epoch 1 without val numbers.
  CHECK(r.first_leg_rows == 3);
  REQUIRE(!r.first_leg_curves.empty());
  CHECK(r.first_leg_curves.size() == cv::Size(train::kCurvesWidth, train::kCurvesHeight));
  CHECK(ink(r.first_leg_curves) > 5000);

  const std::vector<train::SummaryRow> rows = train::read_summary_csv((r.run / "summary.csv").string());
  REQUIRE(rows.size() == 6);
  for (int e = 1; e <= 6; ++e) {
    INFO("epoch " << e);
    CHECK(rows[size_t(e - 1)].epoch == e);
    // eval_every 2, and the last epoch of each leg (3 and 6).
    CHECK(std::isfinite(rows[size_t(e - 1)].val_top1) == (e % 2 == 0 || e == 3 || e == 6));
  }
  // After the resume the picture is exactly the one drawn from all six rows, not the first three.
  const cv::Mat after = cv::imread((r.run / "curves.png").string(), cv::IMREAD_COLOR);
  REQUIRE(after.size() == cv::Size(train::kCurvesWidth, train::kCurvesHeight));
  CHECK(cv::norm(after, train::draw_curves(rows, "run"), cv::NORM_INF) == 0);
  CHECK(cv::norm(after, r.first_leg_curves, cv::NORM_INF) > 0);
  // No temp files left behind by the atomic writes.
  for (const auto& e : fs::directory_iterator(r.run)) CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
}

TEST_CASE("the confusion picture has its documented size for 1, 10 and 1000 classes", "[plots]") {
  struct Case {
    size_t classes;
    cv::Size size;
  };
  // 1 class: a 320-pixel cell; 10: 64-pixel cells (640); 1000: an 800-pixel grid of class blocks.
  for (const Case& c : {Case{1, {650, 610}}, Case{10, {970, 930}}, Case{1000, {1130, 1090}}}) {
    INFO(c.classes << " classes");
    const size_t K = c.classes;
    std::vector<std::string> names;
    for (size_t k = 0; k < K; ++k) names.push_back(k == 1 ? "a class name far too long to fit in any margin at all" : "c" + std::to_string(k));
    std::vector<uint64_t> counts(K * K, 0);
    for (size_t i = 0; i < K; ++i) {
      counts[i * K + i] = 7;
      counts[i * K + (i + 1) % K] += 3;
    }
    if (K > 2) std::fill(counts.begin() + 2 * K, counts.begin() + 3 * K, 0);  // a class without images
    CHECK(train::confusion_layout(K).image == c.size);
    const cv::Mat img = train::draw_confusion(counts, names, "top-1 70.00%");
    CHECK(img.size() == c.size);
    CHECK(ink(img) > 10000);
    TempDir dir("plots-confusion");
    train::write_confusion_png(dir / "c.png", counts, names, "title");
    CHECK(cv::imread(dir / "c.png").size() == c.size);
  }
  CHECK_THROWS_AS(train::draw_confusion({1, 2, 3}, {"a", "b"}, "t"), Error);
  CHECK_THROWS_AS(train::draw_confusion({}, {}, "t"), Error);
}

TEST_CASE("vkvit eval puts the confusion counts in its JSON and the picture beside --results-file", "[plots][cli]") {
  const ResumedRun& r = resumed_run();
  TempDir out("plots-eval");
  const fs::path val = r.data / "val";
  test::CliRun e = test::run_cli("eval --checkpoint " + q(r.checkpoint) + " --data-dir " + q(val) + " --results-file " +
                                 q(out / "scores.json"));
  INFO(e.err);
  REQUIRE(e.status == 0);
  const nlohmann::json j = nlohmann::json::parse(e.out);
  CHECK(nlohmann::json::parse(test::read_file(out / "scores.json")) == j);
  REQUIRE(j["classes"].get<std::vector<std::string>>() == test::stripe_classes());
  const auto confusion = j["confusion"].get<std::vector<std::vector<uint64_t>>>();
  REQUIRE(confusion.size() == 4);
  uint64_t diagonal = 0;
  for (size_t i = 0; i < 4; ++i) {
    REQUIRE(confusion[i].size() == 4);
    CHECK(std::accumulate(confusion[i].begin(), confusion[i].end(), uint64_t(0)) == 8);  // 8 val images per class
    diagonal += confusion[i][i];
    const double per_class = 100.0 * double(confusion[i][i]) / 8.0;
    CHECK(j["per_class_top1"][test::stripe_classes()[i]].get<double>() == Approx(per_class).margin(1e-3));
  }
  CHECK(j["top1"].get<double>() == Approx(100.0 * double(diagonal) / 32.0).margin(1e-3));
  // One matrix row per line, not one count per line.
  CHECK(test::lines_of(e.out).size() < 60);

  const cv::Mat picture = cv::imread(out / "scores_confusion.png", cv::IMREAD_COLOR);
  REQUIRE(!picture.empty());
  CHECK(picture.size() == train::confusion_layout(4).image);

  // --confusion chooses the path; without it and without --results-file no picture is written.
  e = test::run_cli("eval --checkpoint " + q(r.checkpoint) + " --data-dir " + q(val) + " --confusion " +
                    q(out / "mine.png"));
  CHECK(e.status == 0);
  CHECK(fs::exists(out / "mine.png"));
  auto pictures_here = [] {
    int n = 0;
    for (const auto& f : fs::directory_iterator(fs::current_path()))
      n += f.path().extension() == ".png" && f.path().filename().string().find("confusion") != std::string::npos;
    return n;
  };
  const int before = pictures_here();
  e = test::run_cli("eval --checkpoint " + q(r.checkpoint) + " --data-dir " + q(val));
  CHECK(e.status == 0);
  CHECK(pictures_here() == before);
  e = test::run_cli("eval --checkpoint " + q(r.checkpoint) + " --data-dir " + q(val) + " --confusion " + q(out / "m.jpg"));
  CHECK(e.status == 1);
  CHECK(test::lines_of(e.err).size() == 1);
  CHECK_THAT(e.err, Contains("m.jpg") && Contains(".png"));
}
