// The train → eval → predict pipeline through the vkvit binary, as users run it: eval's JSON fields
// and its numbers recomputed by hand from predict's logits, predict's CSV/JSON and
// --results-file, recursive sorted folder search, a corrupt image skipped by name with stdout
// still clean, and one-line errors for bad configs and missing folders.
//
// One tiny checkpoint is trained per test process (the static fixture below) with `vkvit train`,
// on 16x16 grayscale stripes whose orientation is the class.
#include <catch2/catch.hpp>

#include "cli_fixture.h"
#include "harness.h"
#include "stripes.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using vkvit::test::lines_of;
using vkvit::test::q;
using vkvit::test::read_file;
using vkvit::test::TempDir;
using vkvit::test::TrainedRun;
using vkvit::test::write_file;

namespace {


std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream ls(line);
  std::string cell;
  while (std::getline(ls, cell, ',')) cells.push_back(cell);
  return cells;
}

using Run = vkvit::test::CliRun;
Run run(const std::string& args) { return vkvit::test::run_cli(args); }

const std::string kTinyConfig = vkvit::test::tiny_stripes_config_yaml(6);

const TrainedRun& trained() {
  static TrainedRun t({"trained", 32, 8, 99, 6, "-q"});
  return t;
}

struct Row {
  std::string file;
  std::vector<std::pair<std::string, double>> topk;  // (label, score)
};

// Parses predict's CSV; checks the header for k (label, score) pairs on the way.
std::vector<Row> parse_predictions(const std::string& csv, int k) {
  const std::vector<std::string> lines = lines_of(csv);
  REQUIRE(!lines.empty());
  std::string header = "file";
  for (int i = 1; i <= k; ++i) header += ",label_" + std::to_string(i) + ",score_" + std::to_string(i);
  CHECK(lines[0] == header);
  std::vector<Row> rows;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::vector<std::string> cells = split_csv(lines[i]);
    INFO("row " << i << ": " << lines[i]);
    REQUIRE(cells.size() == size_t(1 + 2 * k));
    Row r{cells[0], {}};
    for (int j = 0; j < k; ++j) r.topk.push_back({cells[1 + 2 * j], std::stod(cells[2 + 2 * j])});
    rows.push_back(r);
  }
  return rows;
}

}  // namespace

TEST_CASE("vkvit train writes a run folder and names it on stdout", "[cli]") {
  const TrainedRun& t = trained();
  CHECK_THAT(t.train.out, Contains("run folder: " + (t.dir.path / "run").string()));
  CHECK_THAT(t.train.out, Contains("val top1"));
  for (const char* f : {"last.safetensors", "best.safetensors", "config.yaml", "summary.csv", "steps.csv"})
    CHECK(fs::exists(t.dir.path / "run" / f));
  CHECK(lines_of(read_file(t.dir.path / "run" / "summary.csv")).size() == 1 + 6);
}

TEST_CASE("vkvit eval prints timm fields that match a hand computation from predict logits", "[cli]") {
  const TrainedRun& t = trained();
  const fs::path val = t.data / "val";
  TempDir out("eval");
  // Batch sizes that do not divide the 32 images (a partial last batch) and differ between the two
  // commands: neither may change a number.
  const Run e = run("eval -b 5 --checkpoint " + q(t.checkpoint) + " --data-dir " + q(val) + " --results-file " +
                    q(out.path / "eval.json"));
  INFO(e.out << e.err);
  REQUIRE(e.status == 0);
  const nlohmann::json j = nlohmann::json::parse(e.out);
  for (const char* field : {"top1", "top1_err", "top5", "top5_err", "loss", "per_class_top1", "param_count",
                            "img_size", "crop_pct", "images", "skipped_files"})
    CHECK(j.contains(field));
  CHECK(nlohmann::json::parse(read_file(out.path / "eval.json")) == j);
  CHECK(j["images"].get<int>() == 32);
  CHECK(j["skipped_files"].get<int>() == 0);
  CHECK(j["img_size"].get<int>() == 16);
  CHECK(j["crop_pct"].get<double>() == 1.0);
  // timm's count for this shape: patch_embed 16*32+32, cls 32, pos_embed 17*32, one block
  // (norms 2*64, qkv 32*96+96, proj 32*32+32, fc1 32*64+64, fc2 64*32+32), norm 64, head 32*4+4.
  CHECK(j["param_count"].get<int>() == 9860);
  CHECK(j["top1_err"].get<double>() == Approx(100.0 - j["top1"].get<double>()).margin(1e-9));
  CHECK(j["top5"].get<double>() == Approx(100.0));  // 4 classes
  CHECK(j["top5_err"].get<double>() == Approx(0.0).margin(1e-9));

  // The same folder through predict, all K logits per image; top1 and mean cross-entropy by hand.
  const Run p = run("predict -b 7 --checkpoint " + q(t.checkpoint) + " --output-type logit --topk 4 " + q(val));
  INFO(p.err);
  REQUIRE(p.status == 0);
  const std::vector<Row> rows = parse_predictions(p.out, 4);
  REQUIRE(rows.size() == 32);
  double loss = 0;
  int correct = 0;
  std::map<std::string, std::pair<int, int>> per_class;  // label -> (correct, seen)
  for (const Row& r : rows) {
    const std::string truth = fs::path(r.file).parent_path().filename().string();
    std::map<std::string, double> logit;
    for (const auto& [label, score] : r.topk) logit[label] = score;
    REQUIRE(logit.size() == 4);
    REQUIRE(logit.count(truth));
    double mx = -INFINITY, sum = 0;
    for (const auto& kv : logit) mx = std::max(mx, kv.second);
    for (const auto& kv : logit) sum += std::exp(kv.second - mx);
    loss += mx + std::log(sum) - logit[truth];
    const bool ok = r.topk[0].first == truth;
    correct += ok;
    per_class[truth].first += ok;
    per_class[truth].second += 1;
  }
  loss /= double(rows.size());
  const double top1 = 100.0 * correct / double(rows.size());
  CHECK(j["top1"].get<double>() == Approx(top1).margin(1e-3));
  // predict prints 6 significant digits; eval rounds the loss to 5 decimals.
  CHECK(j["loss"].get<double>() == Approx(loss).margin(2e-5));
  REQUIRE(j["per_class_top1"].size() == 4);
  for (const auto& name : vkvit::test::stripe_classes()) {
    INFO("class " << name);
    REQUIRE(j["per_class_top1"].contains(name));
    CHECK(j["per_class_top1"][name].get<double>() ==
          Approx(100.0 * per_class[name].first / per_class[name].second).margin(1e-3));
  }
  // 48 steps on unambiguous stripes leave the model well above chance (25%; 72% on lavapipe).
  CHECK(top1 >= 50.0);
}

TEST_CASE("vkvit predict CSV has one label and score pair per k and probabilities that sum to one", "[cli]") {
  const TrainedRun& t = trained();
  const fs::path val = t.data / "val";
  const Run p = run("predict --checkpoint " + q(t.checkpoint) + " --topk 4 " + q(val));
  INFO(p.err);
  REQUIRE(p.status == 0);
  const std::vector<Row> rows = parse_predictions(p.out, 4);
  REQUIRE(rows.size() == 32);
  for (const Row& r : rows) {
    INFO(r.file);
    double sum = 0;
    std::set<std::string> labels;
    for (size_t i = 0; i < r.topk.size(); ++i) {
      sum += r.topk[i].second;
      labels.insert(r.topk[i].first);
      CHECK(r.topk[i].second >= 0.0);
      if (i) CHECK(r.topk[i].second <= r.topk[i - 1].second);
    }
    CHECK(labels.size() == 4);
    CHECK(sum == Approx(1.0).margin(1e-4));
  }

  // Fewer than K: the first pairs of the same ranking. More than K: clamped to K.
  const Run p2 = run("predict --checkpoint " + q(t.checkpoint) + " --topk 2 " + q(val));
  REQUIRE(p2.status == 0);
  const std::vector<Row> rows2 = parse_predictions(p2.out, 2);
  REQUIRE(rows2.size() == rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    CHECK(rows2[i].file == rows[i].file);
    CHECK(rows2[i].topk[0].first == rows[i].topk[0].first);
    CHECK(rows2[i].topk[1].first == rows[i].topk[1].first);
  }
  const Run p9 = run("predict --checkpoint " + q(t.checkpoint) + " --topk 9 " + q(val / "vertical"));
  REQUIRE(p9.status == 0);
  CHECK(parse_predictions(p9.out, 4).size() == 8);
}

TEST_CASE("vkvit predict searches folders recursively in sorted order and skips hidden files", "[cli]") {
  const TrainedRun& t = trained();
  TempDir tree("tree");
  const fs::path src = t.data / "val" / "horizontal" / "0.png";
  fs::create_directories(tree.path / "a" / "b");
  fs::create_directories(tree.path / ".hidden_dir");
  for (const char* rel : {"b.png", "a/z.png", "a/b/c.png", "a/B.png", ".hidden.png", ".hidden_dir/x.png"})
    fs::copy_file(src, tree.path / rel);
  write_file(tree.path / "a" / "notes.txt", "not an image\n");

  const Run p = run("predict --checkpoint " + q(t.checkpoint) + " --topk 1 " + q(tree.path));
  INFO(p.err);
  REQUIRE(p.status == 0);
  const std::vector<Row> rows = parse_predictions(p.out, 1);
  std::vector<std::string> files;
  for (const Row& r : rows) files.push_back(fs::relative(r.file, tree.path).string());
  // Byte order of the whole path: "a/B.png" < "a/b/c.png" < "a/z.png" < "b.png".
  CHECK(files == std::vector<std::string>{"a/B.png", "a/b/c.png", "a/z.png", "b.png"});
  // The same image everywhere: the same answer everywhere.
  for (const Row& r : rows) CHECK(r.topk[0].first == rows[0].topk[0].first);

  // A file and a folder given together: in the order given.
  const Run p2 = run("predict --checkpoint " + q(t.checkpoint) + " --topk 1 " + q(tree.path / "b.png") + " " +
                     q(tree.path / "a" / "b"));
  REQUIRE(p2.status == 0);
  const std::vector<Row> rows2 = parse_predictions(p2.out, 1);
  REQUIRE(rows2.size() == 2);
  CHECK(fs::path(rows2[0].file).filename() == "b.png");
  CHECK(fs::path(rows2[1].file).filename() == "c.png");
}

TEST_CASE("vkvit predict JSON output and --results-file chosen by extension", "[cli]") {
  const TrainedRun& t = trained();
  const fs::path folder = t.data / "val" / "diag_up";
  TempDir out("results");
  const std::string base = "predict --checkpoint " + q(t.checkpoint) + " --topk 3 ";

  const Run csv = run(base + q(folder));
  REQUIRE(csv.status == 0);
  const std::vector<Row> rows = parse_predictions(csv.out, 3);
  REQUIRE(rows.size() == 8);

  const Run js = run(base + "--format json " + q(folder));
  INFO(js.err);
  REQUIRE(js.status == 0);
  const nlohmann::json j = nlohmann::json::parse(js.out);
  REQUIRE(j.is_array());
  REQUIRE(j.size() == rows.size());
  for (size_t i = 0; i < j.size(); ++i) {
    CHECK(j[i]["file"].get<std::string>() == rows[i].file);
    REQUIRE(j[i]["topk"].is_array());
    REQUIRE(j[i]["topk"].size() == 3);
    for (size_t r = 0; r < 3; ++r) {
      const auto& e = j[i]["topk"][r];
      const int index = e["index"].get<int>();
      REQUIRE(index >= 0);
      REQUIRE(index < 4);
      CHECK(e["label"].get<std::string>() == vkvit::test::stripe_classes()[size_t(index)]);
      CHECK(e["label"].get<std::string>() == rows[i].topk[r].first);
      CHECK(e["score"].get<double>() == Approx(rows[i].topk[r].second).epsilon(1e-5).margin(1e-6));
    }
  }

  // --results-file: the format follows the extension, and stdout stays empty.
  const Run to_json = run(base + "--results-file " + q(out.path / "p.json") + " " + q(folder));
  REQUIRE(to_json.status == 0);
  CHECK(to_json.out.empty());
  CHECK(nlohmann::json::parse(read_file(out.path / "p.json")) == j);
  const Run to_csv = run(base + "--format json --results-file " + q(out.path / "p.csv") + " " + q(folder));
  REQUIRE(to_csv.status == 0);
  CHECK(to_csv.out.empty());
  CHECK(read_file(out.path / "p.csv") == csv.out);

  const Run bad = run(base + "--results-file " + q(out.path / "p.txt") + " " + q(folder));
  INFO(bad.err);
  CHECK(bad.status == 1);
  CHECK(bad.out.empty());
  CHECK(lines_of(bad.err).size() == 1);
  CHECK_THAT(bad.err, Contains("p.txt") && Contains(".csv or .json"));
  CHECK_FALSE(fs::exists(out.path / "p.txt"));
}

TEST_CASE("vkvit predict skips a corrupt image with a warning naming it and keeps stdout clean CSV", "[cli]") {
  const TrainedRun& t = trained();
  TempDir folder("corrupt");
  for (const char* name : {"a.png", "c.png", "d.png"}) fs::copy_file(t.data / "val" / "vertical" / "1.png", folder.path / name);
  write_file(folder.path / "b_broken.png", "this is text, not a PNG\n");

  const Run p = run("predict --checkpoint " + q(t.checkpoint) + " --topk 2 " + q(folder.path));
  INFO("stderr: " << p.err);
  REQUIRE(p.status == 0);
  CHECK_THAT(p.err, Contains("b_broken.png"));
  CHECK(p.out.find("b_broken") == std::string::npos);
  const std::vector<Row> rows = parse_predictions(p.out, 2);
  REQUIRE(rows.size() == 3);
  CHECK(fs::path(rows[0].file).filename() == "a.png");
  CHECK(fs::path(rows[1].file).filename() == "c.png");
  CHECK(fs::path(rows[2].file).filename() == "d.png");
  CHECK_THAT(p.err, Contains("3 images classified, 1 skipped"));
}

TEST_CASE("vkvit train config errors are one line naming the key and its line", "[cli]") {
  TempDir dir("config-errors");
  const std::string good = kTinyConfig;

  SECTION("an unknown key") {
    std::string text = good;
    const size_t at = text.find("  dim: 32");
    text.replace(at, 9, "  dimm: 32");
    const std::string line = std::to_string(1 + std::count(text.begin(), text.begin() + long(at), '\n'));
    write_file(dir.path / "unknown.yaml", text);
    const Run r = run("train --config " + q(dir.path / "unknown.yaml") + " --data-dir " + q(dir.path));
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    CHECK(lines_of(r.err).size() == 1);
    CHECK_THAT(r.err, Contains("unknown.yaml:" + line + ":") && Contains("model.dimm"));
  }
  SECTION("a wrong type") {
    std::string text = good;
    const size_t at = text.find("  epochs: 6");
    text.replace(at, 11, "  epochs: many");
    const std::string line = std::to_string(1 + std::count(text.begin(), text.begin() + long(at), '\n'));
    write_file(dir.path / "wrongtype.yaml", text);
    const Run r = run("train --config " + q(dir.path / "wrongtype.yaml") + " --data-dir " + q(dir.path));
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    CHECK(lines_of(r.err).size() == 1);
    CHECK_THAT(r.err, Contains("wrongtype.yaml:" + line + ":") && Contains("train.epochs") && Contains("many"));
  }
}

TEST_CASE("a missing data folder is one clear line from train, eval and predict", "[cli]") {
  TempDir dir("missing");
  write_file(dir.path / "tiny.yaml", kTinyConfig);
  const fs::path missing = dir.path / "no-such-dataset";

  const Run tr = run("train --config " + q(dir.path / "tiny.yaml") + " --data-dir " + q(missing) + " --output " +
                     q(dir.path / "run"));
  INFO(tr.err);
  CHECK(tr.status == 1);
  CHECK(tr.out.empty());
  CHECK(lines_of(tr.err).size() == 1);
  CHECK_THAT(tr.err, Contains(missing.string()) && Contains("does not exist"));

  const TrainedRun& t = trained();
  const Run ev = run("eval --checkpoint " + q(t.checkpoint) + " --data-dir " + q(missing));
  INFO(ev.err);
  CHECK(ev.status == 1);
  CHECK(ev.out.empty());
  CHECK(lines_of(ev.err).size() == 1);
  CHECK_THAT(ev.err, Contains(missing.string()) && Contains("does not exist"));

  const Run pr = run("predict --checkpoint " + q(t.checkpoint) + " " + q(missing));
  INFO(pr.err);
  CHECK(pr.status == 1);
  CHECK(pr.out.empty());
  CHECK(lines_of(pr.err).size() == 1);
  CHECK_THAT(pr.err, Contains(missing.string()));
}

TEST_CASE("vkvit bench train-step and infer run the model and end with a RESULT line", "[cli]") {
  TempDir dir("bench-model");
  write_file(dir.path / "tiny.yaml", kTinyConfig);
  for (const char* mode : {"train-step", "infer"}) {
    const Run r = run(std::string("bench ") + mode + " --config " + q(dir.path / "tiny.yaml") + " -b 4 --steps 2 --warmup 1");
    INFO(mode << ": " << r.out << r.err);
    REQUIRE(r.status == 0);
    const std::vector<std::string> lines = lines_of(r.out);
    REQUIRE_FALSE(lines.empty());
    CHECK_THAT(lines.back(), Contains(std::string("RESULT impl=vkvit mode=") + mode));
    CHECK_THAT(lines.back(), Contains("batch=4"));
    CHECK_THAT(lines.back(), Contains("img_per_s="));
  }
  const Run bad = run("bench infer --preset vit_nonexistent");
  CHECK(bad.status != 0);
  CHECK_THAT(bad.err, Contains("vit_nonexistent"));
}

// The recipe options that change the GPU step are part of what train-step times, and the header
// says which; with accumulation a timed step is the whole optimizer step of k batches.
TEST_CASE("vkvit bench train-step times a config's mixup, drop path, EMA and accumulation", "[cli]") {
  TempDir dir("bench-recipe");
  std::string config = kTinyConfig;
  config.replace(config.find("  depth: 1\n"), 11, "  depth: 2\n");
  write_file(dir.path / "plain.yaml", config);
  write_file(dir.path / "recipe.yaml",
             config + "  mixup: 0.8\n  cutmix: 1.0\n  drop_path: 0.1\n  model_ema: true\n  accum_steps: 2\n");
  const Run plain = run("bench train-step --config " + q(dir.path / "plain.yaml") + " -b 4 --steps 2 --warmup 1");
  INFO(plain.out << plain.err);
  REQUIRE(plain.status == 0);
  CHECK_THAT(plain.out, Contains("# recipe in the step: none (plain step)"));
  CHECK_THAT(lines_of(plain.out).back(), Contains("accum=1"));

  const Run recipe = run("bench train-step --config " + q(dir.path / "recipe.yaml") + " -b 4 --steps 2 --warmup 1");
  INFO(recipe.out << recipe.err);
  REQUIRE(recipe.status == 0);
  for (const char* part : {"mixup 0.8 / cutmix 1", "drop path 0.1", "model EMA", "2 micro-batches per step"})
    CHECK_THAT(recipe.out, Contains(part));
  CHECK_THAT(lines_of(recipe.out).back(), Contains("accum=2"));
  CHECK_THAT(recipe.out, !Contains("loss of the last step: nan"));

  // --set changes the config as `vkvit train --set` does, so one file serves every row of a table.
  const Run set = run("bench train-step --config " + q(dir.path / "plain.yaml") +
                      " -b 4 --steps 1 --warmup 0 --set train.drop_path=0.2 --set train.model_ema=true");
  INFO(set.out << set.err);
  REQUIRE(set.status == 0);
  CHECK_THAT(set.out, Contains("# recipe in the step: drop path 0.2, model EMA"));
  const Run bad_key = run("bench train-step --config " + q(dir.path / "plain.yaml") + " --set train.drop_paths=0.2");
  CHECK(bad_key.status != 0);
  CHECK_THAT(bad_key.err, Contains("train.drop_paths"));
  const Run preset = run("bench train-step --preset vit_fmnist_tiny --set train.drop_path=0.2");
  CHECK(preset.status != 0);
  CHECK_THAT(preset.err, Contains("--set needs --config"));
}
