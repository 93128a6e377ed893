// `vkvit bench loader` and the loader's stage timing it prints (LoaderConfig::measure_stages).
#include <catch2/catch.hpp>

#include <string>

#include "data/image_folder.h"
#include "data/loader.h"
#include "harness.h"
#include "stripes.h"

using namespace vkvit;
using Catch::Matchers::Contains;

namespace {

// The RESULT line's value for `key`, or "" when missing.
std::string result_field(const std::string& out, const std::string& key) {
  const size_t line = out.find("RESULT ");
  if (line == std::string::npos) return "";
  const std::string result = out.substr(line, out.find('\n', line) - line);
  const size_t at = result.find(" " + key + "=");
  if (at == std::string::npos) return "";
  const size_t start = at + key.size() + 2;
  return result.substr(start, result.find(' ', start) - start);
}

}  // namespace

TEST_CASE("the loader sums each stage's CPU time only when asked", "[data]") {
  test::TempDir d("bench-loader-stages");
  test::write_stripe_dataset(d.path, 3, 0, 7, 0);
  const data::ImageFolder folder = data::ImageFolder::scan(d / "train");
  for (bool measure : {false, true}) {
    data::LoaderConfig lc;
    lc.batch_size = 4;
    lc.workers = 2;
    lc.train = true;
    lc.measure_stages = measure;
    lc.transform.image_size = 32;
    data::Loader loader(folder.samples, lc);
    loader.start_epoch(0);
    data::Batch b;
    int batches = 0;
    while (loader.next(b)) ++batches;
    CHECK(batches == 3);
    const data::LoaderStageTimes t = loader.stage_times();
    INFO("measure " << measure);
    CHECK(t.images == 12);  // counted either way: every image of the epoch was prepared
    for (double ms : {t.read_ms, t.decode_ms, t.transform_ms, t.patchify_ms, t.batch_ms}) {
      if (measure) CHECK(ms > 0);
      else CHECK(ms == 0);
    }
  }
}

TEST_CASE("vkvit bench loader prints the rates, the stages and a RESULT line", "[cli]") {
  test::TempDir d("bench-loader-cli");
  test::write_stripe_dataset(d.path, 3, 2, 7, 0);
  // Train keeps whole batches: 12 images, batch 5 -> 10.
  const test::CliRun train = test::run_cli("bench loader --data-dir " + test::q(d.path) + " --images 100 -b 5 --workers 2");
  REQUIRE(train.status == 0);
  CHECK_THAT(train.out, Contains("images per CPU-s") && Contains("decode") && Contains("peak RSS"));
  CHECK(result_field(train.out, "images") == "10");
  CHECK(result_field(train.out, "split") == "train");
  CHECK(std::stod(result_field(train.out, "img_per_cpu_s")) > 0);
  CHECK(std::stod(result_field(train.out, "decode_ms")) > 0);
  // Eval keeps the last partial batch; --images picks that many spread over the folder.
  const test::CliRun val = test::run_cli("bench loader --data-dir " + test::q(d.path) + " --split val --images 7 -b 4 --workers 0");
  REQUIRE(val.status == 0);
  CHECK(result_field(val.out, "images") == "7");
  CHECK(result_field(val.out, "workers") == "0");
  const test::CliRun missing = test::run_cli("bench loader --data-dir " + test::q(d / "nowhere"));
  CHECK(missing.status != 0);
  const test::CliRun reduced =
      test::run_cli("bench loader --data-dir " + test::q(d.path) + " --split val --images 7 --jpeg-dct-scaling 2");
  CHECK(reduced.status == 0);
  const test::CliRun bad_gap =
      test::run_cli("bench loader --data-dir " + test::q(d.path) + " --split val --jpeg-dct-scaling 0.5");
  CHECK(bad_gap.status != 0);
  CHECK_THAT(bad_gap.err, Contains("jpeg_dct_scaling is 0 (off) or a gap in [1, 64]"));

  // --set over --config, as `vkvit train --set`: one config serves a table of loader options.
  test::write_file(d / "run.yaml", test::tiny_stripes_config_yaml(1));
  const std::string with_config = "bench loader --data-dir " + test::q(d.path) + " --images 10 -b 5 --config " + test::q(d / "run.yaml");
  const test::CliRun augmented = test::run_cli(with_config + " --set data.auto_augment=rand-m9-mstd0.5-inc1 --set data.reprob=0.25");
  CHECK(augmented.status == 0);
  CHECK(result_field(augmented.out, "images") == "10");
  const test::CliRun bad_policy = test::run_cli(with_config + " --set data.auto_augment=rand-x9");
  CHECK(bad_policy.status != 0);
  CHECK_THAT(bad_policy.err, Contains("rand-x9"));
  const test::CliRun no_config = test::run_cli("bench loader --data-dir " + test::q(d.path) + " --set data.reprob=0.25");
  CHECK(no_config.status != 0);
  CHECK_THAT(no_config.err, Contains("--set needs --config"));
}
