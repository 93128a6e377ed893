// train --pretrained (train/pretrained.h): a run on 5 classes starts from a checkpoint trained on 3
// other classes, or from the same weights under timm's names: every tensor but the head is the
// source's bit for bit before the first update, the head has the model's init for 5 classes, and
// training runs; the same classes keep the head, other names of as many classes do not; a model of
// another shape is one error line; the flags that cannot go with it are errors before any work.
// datasets/make_transfer_folders.py builds the experiment's two folders from a Fashion-MNIST tree.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <filesystem>

#include <opencv2/imgcodecs.hpp>

#include "data/image_folder.h"
#include "harness.h"
#include "model/safetensors.h"
#include "model/vit.h"
#include "model/weight_import.h"
#include "stripes.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/pretrained.h"

using namespace vkvit;
using namespace vkvit::test;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

// root/{train,val}/<name>/<i>.png: class k of `names` holds stripes of orientation k % 4.
void write_folder(const fs::path& root, const std::vector<std::string>& names, int train_per_class, uint64_t seed) {
  cv::RNG rng(seed);
  for (const auto& [split, count] : {std::pair<std::string, int>{"train", train_per_class}, {"val", 2}})
    for (size_t k = 0; k < names.size(); ++k) {
      const fs::path dir = root / split / names[k];
      fs::create_directories(dir);
      for (int i = 0; i < count; ++i)
        REQUIRE(cv::imwrite((dir / (std::to_string(i) + ".png")).string(), stripe_image(int(k % 4), rng)));
    }
}

std::string with_classes(int classes) {
  std::string yaml = tiny_stripes_config_yaml(1);
  const size_t at = yaml.find("num_classes: 4");
  REQUIRE(at != std::string::npos);
  return yaml.replace(at, 14, "num_classes: " + std::to_string(classes));
}

// The source: 1 epoch on 3 classes with a model EMA (its last.safetensors holds both), and its
// weights under timm's and torchvision's names written by `vkvit convert --to`; the targets: 5 other
// classes, and the source's own 3.
struct Source {
  TempDir dir{"pretrained"};
  fs::path source = dir.path / "source", target = dir.path / "target", config = dir.path / "three.yaml";
  fs::path checkpoint = dir.path / "run" / "last.safetensors", timm = dir.path / "timm.safetensors",
           torchvision = dir.path / "torchvision.safetensors";
  Source() {
    write_folder(source, {"diag_down", "diag_up", "horizontal"}, 16, 11);
    write_folder(target, {"t0", "t1", "t2", "t3", "t4"}, 8, 12);
    write_file(config, with_classes(3));
    CliRun r = run_cli("train -q --model-ema --config " + q(config) + " --data-dir " + q(source) + " --output " +
                       q(dir.path / "run"));
    INFO(r.err);
    REQUIRE(r.status == 0);
    for (const auto& [names, file] : {std::pair<std::string, fs::path>{"timm", timm}, {"torchvision", torchvision}}) {
      r = run_cli("convert --to " + names + " " + q(checkpoint) + " " + q(file));
      INFO(r.err);
      REQUIRE(r.status == 0);
    }
  }
};

const Source& source() {
  static const Source s;
  return s;
}

// The run config `yaml` on `data`, from `pretrained`, with the class count the folder gives.
train::RunConfig run_config(const std::string& yaml, const fs::path& data, const std::string& pretrained) {
  train::RunConfig cfg = train::RunConfig::parse(yaml, "test.yaml");
  cfg.data.dir = data.string();
  cfg.train.pretrained = pretrained;
  train::take_class_count_from_folder(cfg, 0);
  return cfg;
}

// The model of `cfg` as a new run starts it: the init, then the pretrained weights.
std::vector<float> started(const train::RunConfig& cfg, std::vector<float>* init = nullptr) {
  model::Vit vit(ctx(), train::to_vit_config(cfg.model), 4);
  vit.init(cfg.train.seed);
  if (init) *init = vit.read_params();
  const data::ImageFolder folder = data::ImageFolder::scan((fs::path(cfg.data.dir) / "train").string());
  train::load_pretrained(cfg, folder.classes, vit, true);
  return vit.read_params();
}

bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

// Every tensor of `flat` (the layout of `cfg`) against `file`'s: bit for bit, except the head (the
// init's when `head_from_init`) and, when given, pos_embed (checked by the caller).
void check_started(const train::RunConfig& cfg, const std::vector<float>& flat, const std::vector<float>& init,
                   const std::string& file, bool head_from_init, bool skip_pos_embed = false) {
  const model::SafeTensors st = model::read_safetensors(file);
  const model::ParamLayout layout = model::vit_param_layout(train::to_vit_config(cfg.model));
  for (const model::ParamInfo& p : layout.params()) {
    INFO(p.name);
    const float* got = flat.data() + p.offset;
    if (head_from_init && p.name.rfind("head.", 0) == 0) {
      CHECK(p.shape[0] == cfg.model.num_classes);
      CHECK(same_bits(got, init.data() + p.offset, p.count));
      continue;
    }
    if (skip_pos_embed && p.name == "pos_embed") continue;
    const model::Tensor* t = st.find(p.name);
    REQUIRE(t != nullptr);
    REQUIRE(t->data.size() == p.count);
    CHECK(same_bits(got, t->data.data(), p.count));
  }
}

}  // namespace

TEST_CASE("train --pretrained vkvit checkpoint: 3 classes to 5 with every tensor but the head taken bit for bit",
          "[train][pretrained]") {
  const Source& s = source();
  const train::RunConfig cfg = run_config(with_classes(3), s.target, s.checkpoint.string());
  REQUIRE(cfg.model.num_classes == 5);  // the folder decides
  std::vector<float> init;
  const std::vector<float> flat = started(cfg, &init);
  check_started(cfg, flat, init, s.checkpoint.string(), true);
  // The main tensors, not the EMA beside them (which differs after a few steps).
  const model::SafeTensors st = model::read_safetensors(s.checkpoint.string());
  const model::Tensor* ema = st.find(train::kEmaWeights);
  REQUIRE(ema != nullptr);
  const model::ParamLayout layout3 =
      model::vit_param_layout(train::to_vit_config(train::RunConfig::parse(with_classes(3), "3.yaml").model));
  const model::ParamInfo& qkv = layout3.at("blocks.0.attn.qkv.weight");
  CHECK_FALSE(same_bits(ema->data.data() + qkv.offset, st.find(qkv.name)->data.data(), qkv.count));

  // The same through `vkvit train`: it says what it took, trains from step 0 and records the key.
  const fs::path run = s.dir.path / "fine-tuned";
  const CliRun r = run_cli("train --config " + q(s.config) + " --data-dir " + q(s.target) + " --pretrained " +
                           q(s.checkpoint) + " --output " + q(run) + " --num-classes 5");
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.err, Contains("the model's weights (not the model EMA it also holds)"));
  CHECK_THAT(r.err, Contains("has a head for 3 classes, this run has 5"));
  const train::CheckpointMeta meta = train::read_checkpoint_meta((run / "last.safetensors").string());
  CHECK(meta.step == 2);  // 40 images, batch 16: the schedule started at 0
  CHECK(meta.classes == std::vector<std::string>{"t0", "t1", "t2", "t3", "t4"});
  const train::RunConfig recorded = train::RunConfig::load((run / "config.yaml").string());
  CHECK(recorded.train.pretrained == fs::absolute(s.checkpoint).lexically_normal().string());
  CHECK(recorded.model.num_classes == 5);
}

TEST_CASE(
    "train --pretrained timm:FILE takes the weights under timm's (or torchvision's) names and resamples pos_embed",
    "[train][pretrained]") {
  const Source& s = source();
  const std::string spec = "timm:" + s.timm.string();
  const train::RunConfig cfg = run_config(with_classes(3), s.target, spec);
  std::vector<float> init;
  check_started(cfg, started(cfg, &init), init, s.timm.string(), true);

  // image_size 32: a grid of 8 x 8 patches instead of 4 x 4.
  std::string yaml = with_classes(3);
  yaml.replace(yaml.find("image_size: 16"), 14, "image_size: 32");
  const train::RunConfig big = run_config(yaml, s.target, spec);
  const std::vector<float> flat = started(big, &init);
  check_started(big, flat, init, s.timm.string(), true, true);
  const model::SafeTensors timm = model::read_safetensors(s.timm.string());
  const model::Tensor* pos = timm.find("pos_embed");
  REQUIRE(pos != nullptr);
  const std::vector<float> want = model::resample_pos_embed(pos->data, 32, 1, 4, 4, 8, 8, true);
  const model::ParamInfo& p = model::vit_param_layout(train::to_vit_config(big.model)).at("pos_embed");
  REQUIRE(p.count == want.size());
  CHECK(same_bits(flat.data() + p.offset, want.data(), want.size()));

  // torchvision's names: the same tensors (compared with the timm file's, whose names the layout
  // has); its VisionTransformer classifies the cls token, so a model pooling by mean is refused.
  const train::RunConfig tv = run_config(with_classes(3), s.target, "torchvision:" + s.torchvision.string());
  check_started(tv, started(tv, &init), init, s.timm.string(), true);
  train::RunConfig mean = tv;
  mean.model.pool = "mean";
  CHECK_THAT(error_of([&] { started(mean); }), Contains("classifies the cls token; set model.pool: cls"));

  const CliRun r = run_cli("train -q --config " + q(s.config) + " --data-dir " + q(s.target) +
                           " --initial-checkpoint " + q(spec) + " --output " + q(s.dir.path / "from-timm"));
  INFO(r.err);
  CHECK(r.status == 0);
}

TEST_CASE("train --pretrained keeps the head for the classes it was trained on", "[train][pretrained]") {
  const Source& s = source();
  std::vector<float> init;
  const train::RunConfig same = run_config(with_classes(3), s.source, s.checkpoint.string());
  check_started(same, started(same, &init), init, s.checkpoint.string(), false);
  // As many classes under other names: a vkvit checkpoint knows its head means something else; a
  // timm file names no classes, so the count decides, as in timm.
  TempDir other("pretrained-other3");
  write_folder(other.path, {"p", "q", "r"}, 1, 5);
  const train::RunConfig renamed = run_config(with_classes(3), other.path, s.checkpoint.string());
  check_started(renamed, started(renamed, &init), init, s.checkpoint.string(), true);
  const train::RunConfig timm = run_config(with_classes(3), other.path, "timm:" + s.timm.string());
  check_started(timm, started(timm, &init), init, s.timm.string(), false);
}

TEST_CASE("train --pretrained into a model of another shape is one error naming the tensors", "[train][pretrained]") {
  const Source& s = source();
  auto error_for = [&](const std::string& from, const std::string& to, const std::string& spec) {
    std::string yaml = with_classes(3);
    yaml.replace(yaml.find(from), from.size(), to);
    const train::RunConfig cfg = run_config(yaml, s.target, spec);
    const std::string e = error_of([&] { started(cfg); });
    CHECK(e.find('\n') == std::string::npos);
    CHECK_THAT(e, Contains("only num_classes and image_size may differ"));
    return e;
  };
  std::string e = error_for("dim: 32", "dim: 48", s.checkpoint.string());
  CHECK_THAT(e, Contains("blocks.0.attn.qkv.weight has shape (96, 32), the model expects (144, 48)"));
  CHECK_THAT(e, Contains("dim 32 vs 48"));
  e = error_for("depth: 1", "depth: 2", "timm:" + s.timm.string());
  CHECK_THAT(e, Contains("missing blocks.1.attn.qkv.weight"));
  e = error_for("heads: 2", "heads: 4", s.checkpoint.string());  // no shape shows it
  CHECK_THAT(e, Contains("heads 2 vs 4"));
  e = error_of([&] { started(run_config(with_classes(3), s.target, s.timm.string())); });
  CHECK_THAT(e, Contains("not a vkvit checkpoint"));
}

TEST_CASE("train --pretrained refuses --resume and a --num-classes the folder does not have", "[cli][pretrained]") {
  TempDir dir("pretrained-flags");
  write_folder(dir.path / "data", {"a", "b", "c"}, 16, 3);
  write_file(dir.path / "c.yaml", with_classes(3));
  const std::string base = "train -q --config " + q(dir.path / "c.yaml") + " --data-dir " + q(dir.path / "data");
  CliRun r = run_cli(base + " --pretrained w.safetensors --resume last.safetensors");
  CHECK(r.status != 0);
  CHECK_THAT(r.err, Contains("--pretrained starts a new run from weights and --resume continues a run"));
  r = run_cli(base + " --num-classes 7");
  CHECK(r.status != 0);
  CHECK_THAT(r.err, Contains("--num-classes 7, but"));
  CHECK_THAT(r.err, Contains("has 3 class folders"));
}

TEST_CASE("make_transfer_folders links classes 0-4 whole and a seeded few of classes 5-9", "[data][pretrained]") {
  TempDir dir("transfer-folders");
  const std::vector<std::string> names = {"0_T-shirt_top", "1_Trouser", "2_Pullover", "3_Dress", "4_Coat",
                                          "5_Sandal", "6_Shirt", "7_Sneaker", "8_Bag", "9_Ankle_boot"};
  for (const auto& [split, count] : {std::pair<std::string, int>{"train", 6}, {"val", 2}})
    for (const std::string& name : names) {
      fs::create_directories(dir.path / "fmnist" / split / name);
      for (int i = 0; i < count; ++i)
        std::ofstream(dir.path / "fmnist" / split / name / ("0000" + std::to_string(i) + ".png")) << name << i;
    }
  auto make = [&](const std::string& out, int seed) {
    const std::string cmd = "/usr/bin/python3 " + q(fs::path(VKVIT_SOURCE_DIR) / "datasets/make_transfer_folders.py") +
                            " --source " + q(dir.path / "fmnist") + " --out " + q(dir.path / out) +
                            " --per-class 3 --seed " + std::to_string(seed) + " > /dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
  };
  make("a", 0);
  const auto stamp = fs::last_write_time(dir.path / "a/finetune");
  make("a", 0);  // the same options again: nothing rewritten
  CHECK(fs::last_write_time(dir.path / "a/finetune") == stamp);
  auto scan = [&](const std::string& tree) { return data::ImageFolder::scan((dir.path / tree).string()); };
  const data::ImageFolder pretrain = scan("a/pretrain/train"), pretrain_val = scan("a/pretrain/val"),
                          finetune = scan("a/finetune/train"), finetune_val = scan("a/finetune/val");
  CHECK(pretrain.classes == std::vector<std::string>(names.begin(), names.begin() + 5));
  CHECK(finetune.classes == std::vector<std::string>(names.begin() + 5, names.end()));
  CHECK(pretrain_val.classes == pretrain.classes);
  CHECK(finetune_val.classes == finetune.classes);
  CHECK(pretrain.samples.size() == 30);
  CHECK(pretrain_val.samples.size() == 10);
  CHECK(finetune.samples.size() == 15);
  CHECK(finetune_val.samples.size() == 10);
  for (const data::Sample& sample : finetune.samples) {
    INFO(sample.path);
    CHECK(fs::is_symlink(sample.path));  // a link, not a copy, that leads to the source file
    CHECK(fs::equivalent(sample.path, dir.path / "fmnist/train" / fs::path(sample.path).parent_path().filename() /
                                          fs::path(sample.path).filename()));
  }
  // The seed decides which images: the same seed picks the same, another (almost surely) others.
  make("b", 0);
  make("c", 1);
  std::vector<std::string> a, b, c;
  for (const data::Sample& x : finetune.samples) a.push_back(fs::path(x.path).filename().string());
  for (const data::Sample& x : scan("b/finetune/train").samples) b.push_back(fs::path(x.path).filename().string());
  for (const data::Sample& x : scan("c/finetune/train").samples) c.push_back(fs::path(x.path).filename().string());
  CHECK(a == b);
  CHECK(a != c);
}
