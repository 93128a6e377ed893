// The block's variants beside timm's learned position embedding and pre-norm blocks:
// model.pos_embed sincos (MAE's fixed 2D sine-cosine table; not a parameter) and model.norm post.
// The table against hand-worked values; a sincos model trains, evaluates, predicts and explains
// from the command line, loads at another patch grid without resampling, exports to timm with the
// table as its learned pos_embed, and refuses learned weights with one line; a post-norm model
// does the same (with drop path, and as --pretrained) and is refused by convert. (The GPU models
// against the double reference and finite differences: tests/test_vit.cpp, test_drop_path.cpp.)
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "base/error.h"
#include "harness.h"
#include "model/safetensors.h"
#include "model/sincos_pos_embed.h"
#include "model/vit.h"
#include "stripes.h"
#include "train/checkpoint.h"
#include "train/config.h"

using namespace vkvit;
using namespace vkvit::test;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

TEST_CASE("the sincos table has MAE's layout: column frequencies first, then row, cls row zero", "[variants]") {
  // Width 8: two frequencies per axis, w = 1 and 10000^(-1/2) = 0.01.
  const std::vector<float> t = model::sincos_pos_embed(8, 3);
  REQUIRE(t.size() == size_t(10 * 8));
  for (int d = 0; d < 8; ++d) CHECK(t[size_t(d)] == 0.0f);
  const int i = 1, j = 2;  // token 1 + 3 i + j
  const float* r = t.data() + size_t(1 + 3 * i + j) * 8;
  const double want[8] = {std::sin(j * 1.0), std::sin(j * 0.01), std::cos(j * 1.0), std::cos(j * 0.01),
                          std::sin(i * 1.0), std::sin(i * 0.01), std::cos(i * 1.0), std::cos(i * 0.01)};
  for (int d = 0; d < 8; ++d) CHECK(r[d] == Approx(want[d]).margin(1e-7));
  CHECK_THROWS_WITH(model::sincos_pos_embed(6, 3), Contains("multiple of 4"));
  model::VitConfig c = model::VitConfig::preset("vit_fmnist_tiny");
  c.pos_embed = "sincos";
  c.dim = 126;
  c.heads = 3;
  CHECK_THROWS_WITH(c.validate(), Contains("pos_embed sincos needs dim to be a multiple of 4"));
}

TEST_CASE("a sincos model loads at another patch grid as it is, with no pos_embed to resample", "[variants][gpu]") {
  model::VitConfig small;
  small.image_size = 8, small.patch_size = 4, small.in_chans = 1, small.dim = 12, small.depth = 1, small.heads = 3;
  small.mlp_dim = 16, small.num_classes = 3, small.pos_embed = "sincos";
  model::VitConfig large = small;
  large.image_size = 16;  // 2x2 -> 4x4 patches
  model::Vit a(ctx(), small, 1), b(ctx(), large, 2);
  a.init(5);
  REQUIRE(a.layout().total_floats() == b.layout().total_floats());
  b.write_params(a.read_params());
  const std::vector<float> patches = random_floats(2 * large.num_patches() * large.patch_dim(), 6);
  ctx().upload(b.patches_input(), patches.data(), patches.size() * 4);
  vk::Recorder rec(ctx());
  b.forward(rec, 2, false);
  rec.submit_and_wait();
  std::vector<float> logits(2 * 3);
  ctx().download(b.logits(), logits.data(), logits.size() * 4);
  for (float v : logits) CHECK(std::isfinite(v));
}

TEST_CASE("a sincos model trains, evaluates, predicts, explains and exports from the command line", "[variants][cli]") {
  TempDir dir("sincos-cli");
  const fs::path data = dir.path / "data", config = dir.path / "tiny.yaml", run = dir.path / "run";
  write_stripe_dataset(data, 16, 8, 91, 0);
  write_file(config, tiny_stripes_config_yaml(1));
  const CliRun train = run_cli("train --config " + q(config) + " --data-dir " + q(data) + " --output " + q(run) +
                               " -q model.pos_embed=sincos");
  INFO(train.out << train.err);
  REQUIRE(train.status == 0);
  CHECK(train::RunConfig::load((run / "config.yaml").string()).model.pos_embed == "sincos");
  const fs::path best = run / "best.safetensors";
  CHECK_FALSE(model::read_safetensors(best.string()).find("pos_embed"));
  CHECK(run_cli("eval --checkpoint " + q(best) + " --data-dir " + q(data / "val")).status == 0);
  CHECK(run_cli("predict --checkpoint " + q(best) + " --topk 1 " + q(data / "val")).status == 0);
  CHECK(run_cli("explain --checkpoint " + q(best) + " --output " + q(dir.path / "explain") + " " +
                q(data / "val" / stripe_classes()[0] / "0.png")).status == 0);
  CHECK_THAT(run_cli("info " + q(best)).out, Contains("pos_embed sincos"));

  // Export: timm has no fixed table, so it gets the table as a learned pos_embed after cls_token.
  const fs::path timm = dir.path / "timm.safetensors";
  const CliRun out = run_cli("convert --to timm " + q(best) + " " + q(timm));
  INFO(out.err);
  REQUIRE(out.status == 0);
  const model::SafeTensors exported = model::read_safetensors(timm.string());
  REQUIRE(exported.tensors.size() >= 2);
  CHECK(exported.tensors[1].name == "pos_embed");
  CHECK(exported.tensors[1].shape == std::vector<uint64_t>{1, 17, 32});
  CHECK(exported.tensors[1].data == model::sincos_pos_embed(32, 4));
  // The exported file loads back into the learned-position model, not into the sincos one.
  const CliRun back = run_cli("convert --from timm --config " + q(run / "config.yaml") + " " + q(timm) + " " +
                              q(dir.path / "back.safetensors"));
  CHECK(back.status != 0);
  CHECK_THAT(back.err, Contains("pos_embed is a learned position embedding, but the config's model.pos_embed is sincos"));
}

TEST_CASE("a post-norm model trains, evaluates, predicts and explains, and refuses timm and torchvision names",
          "[variants][cli]") {
  TempDir dir("post-norm-cli");
  const fs::path data = dir.path / "data", config = dir.path / "tiny.yaml", run = dir.path / "run";
  write_stripe_dataset(data, 16, 8, 93, 0);
  write_file(config, tiny_stripes_config_yaml(1));
  const CliRun train = run_cli("train --config " + q(config) + " --data-dir " + q(data) + " --output " + q(run) +
                               " -q model.norm=post --drop-path 0.1");
  INFO(train.out << train.err);
  REQUIRE(train.status == 0);
  CHECK(train::RunConfig::load((run / "config.yaml").string()).model.norm == "post");
  const fs::path best = run / "best.safetensors";
  CHECK(run_cli("eval --checkpoint " + q(best) + " --data-dir " + q(data / "val")).status == 0);
  CHECK(run_cli("predict --checkpoint " + q(best) + " --topk 1 " + q(data / "val")).status == 0);
  CHECK(run_cli("explain --checkpoint " + q(best) + " --output " + q(dir.path / "explain") + " " +
                q(data / "val" / stripe_classes()[0] / "0.png")).status == 0);
  // A post-norm checkpoint starts another post-norm run; timm's names cannot describe it.
  const CliRun tune = run_cli("train --config " + q(run / "config.yaml") + " --data-dir " + q(data) + " --output " +
                              q(dir.path / "tune") + " -q --max-steps 1 --pretrained " + q(best));
  INFO(tune.err);
  CHECK(tune.status == 0);
  const CliRun out = run_cli("convert --to timm " + q(best) + " " + q(dir.path / "timm.safetensors"));
  CHECK(out.status != 0);
  CHECK_THAT(out.err, Contains("model.norm is post, and timm's and torchvision's ViTs have pre-norm blocks only"));
  CHECK(std::count(out.err.begin(), out.err.end(), '\n') == 1);
}
