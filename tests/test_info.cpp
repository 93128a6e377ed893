// `vkvit info` on a checkpoint trained here (text and --json), on files that are not vkvit
// checkpoints (one error line, exit code 1), the line every command gives when the Vulkan loader
// finds no driver (it must say what to install), and an example in every subcommand's --help.
#include <catch2/catch.hpp>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_fixture.h"
#include "harness.h"
#include "model/safetensors.h"
#include "stripes.h"
#include "train/checkpoint.h"
#include "train/config.h"

using namespace vkvit;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using test::q;
using test::TempDir;
using test::TrainedRun;
namespace fs = std::filesystem;

namespace {

// A 2-epoch run of the tiny stripes model: last.safetensors (with Adam state) and best.safetensors.
const TrainedRun& trained() {
  static TrainedRun t({"info", 16, 4, 3, 2, "-q"});
  return t;
}

// The one line a failing command writes: exit code 1, nothing on stdout.
std::string one_error_line(const test::CliRun& r) {
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  const std::vector<std::string> lines = test::lines_of(r.err);
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], StartsWith("vkvit: error: "));
  return lines[0];
}

}  // namespace

TEST_CASE("vkvit info describes a trained checkpoint", "[info]") {
  const TrainedRun& t = trained();
  const test::CliRun r = test::run_cli("info " + q(t.run / "last.safetensors"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  // timm's count for the tiny model, as in test_cli_pipeline: 9,860.
  CHECK_THAT(r.out, Contains("parameters  9,860"));
  CHECK_THAT(r.out, Contains("classes     4: diag_down, diag_up, horizontal, vertical"));
  CHECK_THAT(r.out, Contains("image 16x16x1, patch 4 (4x4 grid, 17 tokens), dim 32, depth 1, heads 2, mlp 64"));
  CHECK_THAT(r.out, Contains("mixer attention, pool cls"));
  CHECK_THAT(r.out, Contains("2 epochs done, step 8"));  // 64 images in batches of 16
  CHECK_THAT(r.out, Contains("resumable   yes") && Contains("--resume"));
  CHECK_THAT(r.out, Contains("amp         off"));
  const test::CliRun best = test::run_cli("info " + q(t.run / "best.safetensors"));
  REQUIRE(best.status == 0);
  CHECK_THAT(best.out, Contains("resumable   no"));
}

TEST_CASE("vkvit info --json has the architecture, counts and training state", "[info]") {
  const TrainedRun& t = trained();
  for (const char* file : {"last.safetensors", "best.safetensors"}) {
    INFO(file);
    const fs::path path = t.run / file;
    const test::CliRun r = test::run_cli("info --json " + q(path));
    INFO(r.err);
    REQUIRE(r.status == 0);
    const nlohmann::json j = nlohmann::json::parse(r.out);
    const train::CheckpointMeta meta = train::read_checkpoint_meta(path);
    CHECK(j["file"] == path.string());
    CHECK(j["file_bytes"].get<uint64_t>() == fs::file_size(path));
    CHECK(j["config_name"] == meta.config.name);
    const nlohmann::json& m = j["model"];
    CHECK(m["image_size"] == 16);
    CHECK(m["patch_size"] == 4);
    CHECK(m["in_chans"] == 1);
    CHECK(m["dim"] == 32);
    CHECK(m["depth"] == 1);
    CHECK(m["heads"] == 2);
    CHECK(m["mlp_dim"] == 64);
    CHECK(m["mixer"] == "attention");
    CHECK(m["mixers"] == nlohmann::json::array({"attention"}));
    CHECK(m["pool"] == "cls");
    CHECK(m["num_classes"] == 4);
    CHECK(j["param_count"] == 9860);
    CHECK(j["flops_per_image"].get<uint64_t>() == train::to_vit_config(meta.config.model).flops_per_image());
    CHECK(j["classes"].get<std::vector<std::string>>() == test::stripe_classes());
    CHECK(j["epoch"].get<uint64_t>() == meta.epoch);
    CHECK(j["step"].get<uint64_t>() == meta.step);
    CHECK(j["best_top1"].get<double>() == Approx(meta.best_top1));
    CHECK(j["amp"] == false);
    CHECK(j["loss_scale"].is_null());
    const bool last = std::string(file) == "last.safetensors";
    CHECK(j["optimizer_state"] == last);
    CHECK(j["resumable"] == last);
    CHECK(j["weights"] == "model");  // a run without train.model_ema
    CHECK(j["carries_ema"] == false);
  }
}

TEST_CASE("vkvit info abbreviates a long class list and notes tensors that do not fit the config", "[info]") {
  TempDir dir("info-many");
  train::CheckpointMeta meta;
  meta.config.name = "many";
  meta.config.model.num_classes = 25;
  for (int k = 0; k < 25; ++k) meta.classes.push_back("c" + std::to_string(k));
  const std::vector<float> w = {1, 2, 3};
  train::save_checkpoint_tensors(dir / "many.safetensors", {{"head.bias", model::DType::F32, {3}, w}}, meta);
  const test::CliRun r = test::run_cli("info " + q(dir / "many.safetensors"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("classes     25: c0, c1, c2, c3, c4, c5, c6, c7, ..., c23, c24\n"));
  CHECK_THAT(r.out, Contains("parameters  3 in 1 tensor\n") && Contains("does not load"));
  CHECK_THAT(r.out, Contains("resumable   no"));
  const nlohmann::json j = nlohmann::json::parse(test::run_cli("info --json " + q(dir / "many.safetensors")).out);
  CHECK(j["classes"].size() == 25);  // the JSON has them all
  CHECK(j["best_top1"].is_null());   // never evaluated
}

TEST_CASE("vkvit info on a file that is not a vkvit checkpoint is one error line", "[info]") {
  TempDir dir("info-bad");
  test::write_file(dir / "notes.txt", "not a checkpoint at all\n");
  CHECK_THAT(one_error_line(test::run_cli("info " + q(dir / "notes.txt"))),
             Contains(dir / "notes.txt") && Contains("not a valid safetensors file"));
  // Valid safetensors, but without vkvit's metadata (e.g. timm weights before `vkvit convert`).
  const std::vector<float> w = {1, 2, 3};
  model::write_safetensors(dir / "plain.safetensors", {{"w", {3}, w.data()}});
  CHECK_THAT(one_error_line(test::run_cli("info " + q(dir / "plain.safetensors"))),
             Contains("plain.safetensors") && Contains("not a vkvit checkpoint") && Contains("vkvit convert"));
  CHECK_THAT(one_error_line(test::run_cli("info " + q(dir / "missing.safetensors"))), Contains("missing.safetensors"));
}

TEST_CASE("without a Vulkan driver every command says what to install", "[info]") {
  const TrainedRun& t = trained();  // trained with the driver, before it is hidden
  // The loader reads only the driver files these name; none exists, so it finds no driver.
  test::ScopedEnv icd("VK_ICD_FILENAMES", "/nonexistent/vkvit_icd.json");
  test::ScopedEnv driver_files("VK_DRIVER_FILES", "/nonexistent/vkvit_icd.json");
  // Under the validation run the messenger would add the loader's own complaints about the missing
  // files as extra lines; what is checked here is vkvit's line alone.
  test::ScopedEnv no_layer("VKVIT_VALIDATION", "0");
  for (const char* command : {"devices", "bench matmul --repeat 1"}) {
    INFO(command);
    const std::string line = one_error_line(test::run_cli(command));
    CHECK_THAT(line, Contains("no Vulkan driver found") || Contains("no Vulkan device found"));
    CHECK_THAT(line, Contains("mesa-vulkan-drivers") && Contains("lavapipe") && Contains("vendor's driver"));
    CHECK_THAT(line, Contains("VK_ICD_FILENAMES=/nonexistent/vkvit_icd.json"));
  }
  // info reads files only: it works without a device.
  const test::CliRun r = test::run_cli("info " + q(t.run / "best.safetensors"));
  CHECK(r.status == 0);
}

TEST_CASE("every subcommand's --help ends with an example", "[info][cli]") {
  for (const char* command : {"", "devices", "train", "eval", "predict", "convert", "info", "bench", "bench matmul",
                              "bench attention", "bench train-step", "bench infer", "bench mixer"}) {
    INFO("vkvit " << command << " --help");
    const test::CliRun r = test::run_cli(std::string(command) + " --help");
    CHECK(r.status == 0);
    const size_t at = r.out.rfind("Example");
    REQUIRE(at != std::string::npos);
    CHECK_THAT(r.out.substr(at), Contains(std::string("vkvit ") + command));
  }
}
