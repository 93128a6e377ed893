// Bad inputs (README "How it works") through the vkvit binary, as users meet them: `vkvit predict` over a
// folder mixing every kind of broken image with unusual but valid ones (each broken file skipped
// by name with its reason, counted, the rest classified), symlink loops and non-UTF-8 names in
// CSV and JSON, empty class folders and roots without classes, truncated and foreign checkpoints,
// malformed configs, and output redirected to files carrying no terminal control codes.
//
// One tiny checkpoint is trained per test process (one epoch of one step on 16x16 stripes).
#include <catch2/catch.hpp>

#include "bad_files.h"
#include "cli_fixture.h"
#include "harness.h"
#include "stripes.h"

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using namespace vkvit::test::bad;
using vkvit::test::CliRun;
using vkvit::test::lines_of;
using vkvit::test::lines_with;
using vkvit::test::q;
using vkvit::test::TempDir;
using vkvit::test::TrainedRun;

namespace {

// Output meant for a file or a pipe: plain lines, no carriage-return progress bars, no ANSI codes.
void check_no_control_codes(const std::string& text, const std::string& what) {
  INFO(what << ":\n" << text);
  CHECK(text.find('\r') == std::string::npos);
  CHECK(text.find('\x1b') == std::string::npos);
  CHECK(text.find('\b') == std::string::npos);
}

// A failed command: the given status, nothing on stdout, one line on stderr.
void check_one_line_failure(const CliRun& r, int status = 1) {
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.status == status);
  CHECK(r.out.empty());
  CHECK(lines_of(r.err).size() == 1);
  CHECK_THAT(r.err, Catch::StartsWith("vkvit: error: "));
}

// 16 train images: one epoch of one batch, one step. Not quiet, logging every step: the output to
// check for control codes.
const TrainedRun& trained() {
  static TrainedRun t({"bad-trained", 4, 1, 17, 1, "--set train.log_every=1"});
  return t;
}

cv::Mat stripes(int k) {
  cv::RNG rng(uint64_t(100 + k));
  return vkvit::test::stripe_image(k, rng);
}

// File names in predict's CSV (first column), in order.
std::vector<std::string> csv_files(const std::string& csv) {
  std::vector<std::string> files;
  const std::vector<std::string> lines = lines_of(csv);
  for (size_t i = 1; i < lines.size(); ++i) files.push_back(fs::path(lines[i].substr(0, lines[i].find(','))).filename().string());
  return files;
}

}  // namespace

TEST_CASE("output redirected to files holds plain lines without carriage returns or escape codes", "[bad-inputs]") {
  const TrainedRun& t = trained();
  // train: stdout names the run folder; stderr has the plain per-step and per-epoch lines.
  check_no_control_codes(t.train.out, "train stdout");
  check_no_control_codes(t.train.err, "train stderr");
  REQUIRE_FALSE(t.train.out.empty());
  CHECK_THAT(t.train.out, Catch::StartsWith("run folder: "));
  CHECK(lines_with(t.train.err, "step").size() >= 1);

  TempDir d("bad-redirect");
  REQUIRE(cv::imwrite(d.file("a.png"), stripes(0)));
  const CliRun p = vkvit::test::run_cli("predict --checkpoint " + q(t.checkpoint) + " " + q(d.path));
  REQUIRE(p.status == 0);
  check_no_control_codes(p.out, "predict stdout");
  check_no_control_codes(p.err, "predict stderr");
  const CliRun e = vkvit::test::run_cli("eval --checkpoint " + q(t.checkpoint) + " --data-dir " + q(t.data / "val"));
  REQUIRE(e.status == 0);
  check_no_control_codes(e.out, "eval stdout");
  check_no_control_codes(e.err, "eval stderr");
}

TEST_CASE("vkvit predict skips each broken image by name with its reason and classifies the unusual ones",
          "[bad-inputs]") {
  const TrainedRun& t = trained();
  TempDir d("bad-predict");
  const fs::path in = d.path / "in";
  fs::create_directories(in);
  const cv::Mat gray = stripes(1);
  cv::Mat bgr;
  cv::cvtColor(gray, bgr, cv::COLOR_GRAY2BGR);

  // Valid files of every unusual kind: each must be classified.
  const Bytes jpg = encode(".jpg", bgr, {cv::IMWRITE_JPEG_QUALITY, 95});
  REQUIRE(!jpg.empty());
  write_bytes(in / "good.png", encode(".png", gray));
  write_bytes(in / "png-named.jpg", encode(".png", bgr));
  write_bytes(in / "progressive.jpg", encode(".jpg", bgr, {cv::IMWRITE_JPEG_PROGRESSIVE, 1}));
  const uint8_t ink[4] = {30, 200, 90, 230};
  write_bytes(in / "cmyk.jpg", cmyk_jpeg(ink, true));
  write_bytes(in / "exif6.jpg", with_exif_orientation(jpg, 6));
  cv::Mat g16;
  gray.convertTo(g16, CV_16U, 257);
  REQUIRE(cv::imwrite((in / "gray16.png").string(), g16));
  write_bytes(in / "palette.png",
              png_file({ihdr(2, 2, 8, 3), {"PLTE", {0, 0, 0, 255, 255, 255}}, {"tRNS", {255, 0}},
                        {"IDAT", zlib_stored(filtered_rows({{0, 1}, {1, 0}}))}, {"IEND", {}}}));
  cv::Mat bgra(16, 16, CV_8UC4, cv::Scalar(0, 0, 0, 255));
  bgra(cv::Rect(0, 0, 8, 16)).setTo(cv::Scalar(0, 0, 0, 0));
  REQUIRE(cv::imwrite((in / "rgba.png").string(), bgra));
  REQUIRE(cv::imwrite((in / "one.png").string(), cv::Mat(1, 1, CV_8UC1, cv::Scalar(77))));
  REQUIRE(cv::imwrite((in / "wide.png").string(), cv::Mat(16, 10000, CV_8UC1, cv::Scalar(140))));
  REQUIRE(cv::imwritemulti((in / "pages.tiff").string(), std::vector<cv::Mat>{bgr, cv::Mat(3, 3, CV_8UC3)}));
  const std::vector<std::string> good = {"cmyk.jpg", "exif6.jpg",   "good.png", "gray16.png", "one.png",
                                         "pages.tiff", "palette.png", "png-named.jpg", "progressive.jpg",
                                         "rgba.png", "wide.png"};

  // Broken files, each with the words its skip line must carry.
  struct Bad {
    std::string name, reason;
  };
  const std::vector<Bad> bad = {
      {"half.jpg", "truncated"},        {"noeoi.jpg", "FFD9"},
      {"zero.jpg", "empty file"},       {"text.png", "not a supported image"},
      {"crc.png", "CRC mismatch"},      {"bomb.png", "20000x20000"},
      {"claims.png", "65536x65536"},    {"anim.png", "GIF is not supported"},
  };
  write_bytes(in / "half.jpg", Bytes(jpg.begin(), jpg.begin() + long(jpg.size() / 2)));
  write_bytes(in / "noeoi.jpg", Bytes(jpg.begin(), jpg.end() - 2));
  write_bytes(in / "zero.jpg", {});
  vkvit::test::write_file(in / "text.png", "this is a text file\n");
  Bytes crc = encode(".png", gray);
  crc[crc.size() - 13] ^= 0x01;  // the last byte of IDAT's CRC (IEND is the final 12 bytes)
  write_bytes(in / "crc.png", crc);
  write_bytes(in / "bomb.png", png_bomb(20000));
  write_bytes(in / "claims.png", png_file({ihdr(65536, 65536, 8, 0), {"IDAT", zlib_stored({0, 1})}, {"IEND", {}}}));
  write_bytes(in / "anim.png", animated_gif());
  write_bytes(in / "anim.gif", animated_gif());  // not an image extension: never collected

  const CliRun r = vkvit::test::run_cli("predict --checkpoint " + q(t.checkpoint) + " --topk 2 " + q(in));
  INFO("stderr:\n" << r.err);
  REQUIRE(r.status == 0);
  CHECK(csv_files(r.out) == good);
  for (const Bad& b : bad) {
    INFO(b.name);
    CHECK(r.out.find(b.name) == std::string::npos);
    const std::vector<std::string> lines = lines_with(r.err, (in / b.name).string());
    REQUIRE(lines.size() == 1);  // warned once, on one line with its reason
    CHECK_THAT(lines[0], Catch::StartsWith("vkvit: warning: skipping " + (in / b.name).string() + ": "));
    CHECK_THAT(lines[0], Contains(b.reason));
  }
  CHECK(r.err.find("anim.gif") == std::string::npos);
  CHECK_THAT(r.err, Contains(std::to_string(good.size()) + " images classified, " + std::to_string(bad.size()) + " skipped"));
  // Nothing else on stderr: no decoder library chatter.
  CHECK(lines_of(r.err).size() == bad.size() + 1);
  check_no_control_codes(r.out, "predict stdout");

  // The same folder through --results-file JSON: the same files, the same count.
  const CliRun j = vkvit::test::run_cli("predict --checkpoint " + q(t.checkpoint) + " --results-file " +
                                        q(d.path / "r.json") + " " + q(in));
  REQUIRE(j.status == 0);
  const nlohmann::json parsed = nlohmann::json::parse(vkvit::test::read_file(d.path / "r.json"));
  CHECK(parsed.size() == good.size());
}

TEST_CASE("vkvit predict walks symlink loops and dangling links and keeps non-UTF-8 names in CSV and JSON",
          "[bad-inputs]") {
  const TrainedRun& t = trained();
  TempDir d("bad-links");
  const fs::path in = d.path / "in";
  fs::create_directories(in / "sub");
  REQUIRE(cv::imwrite((in / "a.png").string(), stripes(2)));
  REQUIRE(cv::imwrite((in / "sub" / "b.png").string(), stripes(3)));
  const std::string latin1 = std::string("caf") + char(0xE9) + ".png";  // not UTF-8
  REQUIRE(cv::imwrite((in / latin1).string(), stripes(0)));
  fs::create_directory_symlink(in, in / "sub" / "loop");          // a folder that contains itself
  fs::create_symlink(in / "self.png", in / "self.png");             // a link to itself: ELOOP
  fs::create_symlink(in / "nowhere.png", in / "dangling.png");      // a link to nothing

  const CliRun r = vkvit::test::run_cli("predict --checkpoint " + q(t.checkpoint) + " " + q(in));
  INFO("stderr:\n" << r.err);
  REQUIRE(r.status == 0);
  CHECK(csv_files(r.out) == std::vector<std::string>{"a.png", latin1, "b.png"});
  CHECK(r.out.find("loop") == std::string::npos);
  // The two links that lead nowhere are skipped by name (one line each) and counted; never fatal.
  for (const char* link : {"self.png", "dangling.png"}) {
    INFO(link);
    CHECK(r.out.find(link) == std::string::npos);
    CHECK(lines_with(r.err, link).size() == 1);
  }

  // JSON must be valid UTF-8: the Latin-1 byte becomes U+FFFD, and the run still succeeds.
  const CliRun j = vkvit::test::run_cli("predict --format json --checkpoint " + q(t.checkpoint) + " " + q(in / latin1) +
                                        " " + q(in / "a.png"));
  INFO("stderr:\n" << j.err);
  REQUIRE(j.status == 0);
  const nlohmann::json parsed = nlohmann::json::parse(j.out);
  REQUIRE(parsed.size() == 2);
  CHECK(parsed[0]["file"].get<std::string>() == (in / (std::string("caf") + "\xEF\xBF\xBD" + ".png")).string());
}

TEST_CASE("empty class folders and roots without classes stop train and eval with one line", "[bad-inputs]") {
  const TrainedRun& t = trained();
  TempDir d("bad-classes");
  const fs::path data = d.path / "data";
  for (const char* c : {"train/cat", "train/dog", "val/cat", "val/dog"}) fs::create_directories(data / c);
  REQUIRE(cv::imwrite((data / "train/cat/1.png").string(), stripes(0)));
  REQUIRE(cv::imwrite((data / "val/cat/1.png").string(), stripes(0)));
  vkvit::test::write_file(data / "train/dog/.DS_Store", "x");  // hidden: does not count

  const CliRun tr = vkvit::test::run_cli("train --config " + q(t.config) + " --data-dir " + q(data) + " --output " +
                                         q(d.path / "run"));
  check_one_line_failure(tr);
  CHECK_THAT(tr.err, Contains((data / "train/dog").string()) && Contains("has no images"));

  const CliRun ev = vkvit::test::run_cli("eval --checkpoint " + q(t.checkpoint) + " --data-dir " + q(data / "val"));
  check_one_line_failure(ev);
  CHECK_THAT(ev.err, Contains((data / "val/dog").string()) && Contains("has no images"));

  fs::create_directories(d.path / "flat" / ".hidden");
  REQUIRE(cv::imwrite((d.path / "flat" / "x.png").string(), stripes(0)));
  const CliRun flat = vkvit::test::run_cli("eval --checkpoint " + q(t.checkpoint) + " --data-dir " + q(d.path / "flat"));
  check_one_line_failure(flat);
  CHECK_THAT(flat.err, Contains("no class folders"));
}

TEST_CASE("truncated and foreign checkpoints are one line from predict, eval and train --resume", "[bad-inputs]") {
  const TrainedRun& t = trained();
  TempDir d("bad-ckpt");
  const std::string whole = vkvit::test::read_file(t.checkpoint);
  REQUIRE(whole.size() > 1000);
  const fs::path cut = d.path / "cut.safetensors", text = d.path / "text.safetensors";
  vkvit::test::write_file(cut, whole.substr(0, whole.size() * 2 / 3));
  vkvit::test::write_file(text, "not a checkpoint at all, but long enough to have a length field\n");
  REQUIRE(cv::imwrite(d.file("a.png"), stripes(0)));

  for (const fs::path& bad : {cut, text}) {
    INFO(bad);
    const CliRun p = vkvit::test::run_cli("predict --checkpoint " + q(bad) + " " + q(d.file("a.png")));
    check_one_line_failure(p);
    CHECK_THAT(p.err, Contains(bad.string()) && Contains("not a valid safetensors file"));
    const CliRun e = vkvit::test::run_cli("eval --checkpoint " + q(bad) + " --data-dir " + q(t.data / "val"));
    check_one_line_failure(e);
    CHECK_THAT(e.err, Contains(bad.string()));
    const CliRun r = vkvit::test::run_cli("train --config " + q(t.config) + " --data-dir " + q(t.data) + " --resume " +
                                          q(bad) + " --output " + q(d.path / "run"));
    check_one_line_failure(r);
    CHECK_THAT(r.err, Contains(bad.string()));
  }
}

TEST_CASE("malformed and impossible configs stop vkvit train with one line naming file, line and key", "[bad-inputs]") {
  const TrainedRun& t = trained();
  TempDir d("bad-config");
  struct Case {
    const char* name;
    std::string yaml, want;
  };
  const std::string good = vkvit::test::tiny_stripes_config_yaml(1);
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const size_t at = s.find(from);
    REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
  };
  const Case cases[] = {
      {"malformed.yaml", replaced("  dim: 32\n", "  dim: [32\n"), ": malformed YAML: "},
      {"zero.yaml", replaced("  patch_size: 4\n", "  patch_size: 0\n"), ":3: model.patch_size: must be in [1, "},
      {"heads.yaml", replaced("  heads: 2\n", "  heads: 3\n"), ":5: model.dim: dim 32 must be a multiple of heads 3"},
      {"patch.yaml", replaced("  patch_size: 4\n", "  patch_size: 5\n"),
       ":2: model.image_size: image_size 16 must be a multiple of patch_size 5"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    vkvit::test::write_file(d.path / c.name, c.yaml);
    const CliRun r = vkvit::test::run_cli("train --config " + q(d.path / c.name) + " --data-dir " + q(t.data) +
                                          " --output " + q(d.path / "run"));
    check_one_line_failure(r);
    CHECK_THAT(r.err, Contains((d.path / c.name).string() + ":"));
    CHECK_THAT(r.err, Contains(c.want));
    CHECK_FALSE(fs::exists(d.path / "run"));
  }
}
