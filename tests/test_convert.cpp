// `vkvit convert` and the weight-name maps behind it, on the torchvision fixtures of
// tests/fixtures/parity: import, export back byte-identical in tensor data (both namings), errors
// that list every problem, pos_embed resampling on import, and the whole path a user takes with
// real weights (PNG files -> vkvit predict) against PyTorch's logits for the same pixels.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>

#include "base/error.h"
#include "harness.h"
#include "model/safetensors.h"
#include "model/weight_import.h"

using namespace vkvit;
using namespace vkvit::test;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name) { return std::string(VKVIT_SOURCE_DIR) + "/tests/fixtures/parity/" + name; }

// The run config of the "small" fixture model (torchvision: image 32, patch 8, 3 layers of 96).
std::string small_config(int image_size = 32, const std::string& pool = "cls", int dim = 96) {
  return "model:\n  image_size: " + std::to_string(image_size) +
         "\n  patch_size: 8\n  in_chans: 3\n  dim: " + std::to_string(dim) +
         "\n  depth: 3\n  heads: 3\n  mlp_dim: 192\n  num_classes: 10\n  pool: " + pool +
         "\n  ln_eps: 1.0e-6\n"
         "data:\n  mean: [0.485, 0.456, 0.406]\n  std: [0.229, 0.224, 0.225]\n  crop_pct: 1.0\n"
         "train:\n  batch_size: 4\n";
}

// name -> data of every tensor in a file.
std::map<std::string, std::vector<float>> tensors_of(const std::string& path) {
  std::map<std::string, std::vector<float>> out;
  for (const model::Tensor& t : model::read_safetensors(path).tensors) out[t.name] = t.data;
  return out;
}

}  // namespace

TEST_CASE("timm and torchvision names map both ways for every ViT tensor", "[convert]") {
  model::VitConfig c = model::VitConfig::preset("vit_tiny_patch16_224");
  for (const char* name : {"cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight",
                           "blocks.11.mlp.fc2.bias", "blocks.3.norm1.weight", "norm.bias", "head.weight"}) {
    const std::string tv = model::timm_to_torchvision_name(name);
    INFO(name << " -> " << tv);
    REQUIRE_FALSE(tv.empty());
  }
  CHECK(model::timm_to_torchvision_name("blocks.11.mlp.fc2.bias") == "encoder.layers.encoder_layer_11.mlp.3.bias");
  CHECK(model::timm_to_torchvision_name("blocks.0.attn.qkv.weight") ==
        "encoder.layers.encoder_layer_0.self_attention.in_proj_weight");
  CHECK(model::timm_to_torchvision_name("pos_embed") == "encoder.pos_embedding");
  CHECK(model::timm_to_torchvision_name("fc_norm.weight").empty());
  CHECK(model::timm_to_torchvision_name("blocks.x.norm1.weight").empty());
}

TEST_CASE("importing weights that do not fit lists every problem at once", "[convert]") {
  model::SafeTensors st = model::read_safetensors(fixture("small_weights.safetensors"));
  model::VitConfig c;
  c.image_size = 32, c.patch_size = 8, c.in_chans = 3, c.dim = 96, c.depth = 3, c.heads = 3, c.mlp_dim = 192;
  c.num_classes = 10;
  // Drop one tensor, rename one to a name torchvision does not have, give one a wrong shape.
  st.tensors.erase(st.tensors.begin() + 1);  // conv_proj.weight
  st.tensors[2].name = "encoder.extra_token";
  for (model::Tensor& t : st.tensors)
    if (t.name == "heads.head.weight") t.shape = {5, 192}, t.data.resize(5 * 192);
  try {
    model::import_weights(st, model::WeightNames::torchvision, c, "w.safetensors");
    FAIL("import accepted broken weights");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Contains("w.safetensors: torchvision weights do not fit the model (4)"));
    CHECK_THAT(msg, Contains("missing conv_proj.weight"));
    CHECK_THAT(msg, Contains("missing encoder.pos_embedding"));
    CHECK_THAT(msg, Contains("unexpected encoder.extra_token"));
    CHECK_THAT(msg, Contains("heads.head.weight has shape (5, 192), the model expects (10, 96)"));
  }
  // Both spellings of one MLP tensor (mlp.0 and the older mlp.linear_1) are one tensor twice.
  model::SafeTensors twice = model::read_safetensors(fixture("small_weights.safetensors"));
  model::Tensor copy = *twice.find("encoder.layers.encoder_layer_0.mlp.0.bias");
  copy.name = "encoder.layers.encoder_layer_0.mlp.linear_1.bias";
  twice.tensors.push_back(copy);
  CHECK_THROWS_WITH(model::import_weights(twice, model::WeightNames::torchvision, c, "w"),
                    Contains("are the same tensor (blocks.0.mlp.fc1.bias)"));
}

TEST_CASE("vkvit convert: torchvision in, torchvision and timm out, tensor data byte-identical", "[cli][convert]") {
  TempDir dir("convert");
  write_file(dir / "small.yaml", small_config());
  write_file(dir / "classes.txt", "zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n");
  const std::string in = fixture("small_weights.safetensors");
  CliRun r = run_cli("convert --from torchvision --config " + shell_quote(dir / "small.yaml") + " --classes " +
                     shell_quote(dir / "classes.txt") + " " + shell_quote(in) + " " + shell_quote(dir / "small.vkvit.safetensors"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  const model::SafeTensors ckpt = model::read_safetensors(dir / "small.vkvit.safetensors");
  CHECK(ckpt.find("blocks.2.attn.qkv.weight") != nullptr);
  CHECK(ckpt.metadata.at("vkvit.classes") == R"(["zero","one","two","three","four","five","six","seven","eight","nine"])");

  r = run_cli("convert --to torchvision " + shell_quote(dir / "small.vkvit.safetensors") + " " + shell_quote(dir / "back.safetensors"));
  REQUIRE(r.status == 0);
  CHECK(tensors_of(dir / "back.safetensors") == tensors_of(in));

  // timm names out and in again.
  r = run_cli("convert --to timm " + shell_quote(dir / "small.vkvit.safetensors") + " " + shell_quote(dir / "timm.safetensors"));
  REQUIRE(r.status == 0);
  r = run_cli("convert --from timm --config " + shell_quote(dir / "small.yaml") + " " + shell_quote(dir / "timm.safetensors") + " " +
              shell_quote(dir / "again.safetensors"));
  REQUIRE(r.status == 0);
  CHECK(tensors_of(dir / "again.safetensors") == tensors_of(dir / "small.vkvit.safetensors"));
}

TEST_CASE("vkvit convert resamples pos_embed for another image size", "[cli][convert]") {
  TempDir dir("convert-resample");
  write_file(dir / "small40.yaml", small_config(40));  // 5x5 patches instead of 4x4
  const std::string in = fixture("small_weights.safetensors");
  const CliRun r = run_cli("convert --from torchvision --config " + shell_quote(dir / "small40.yaml") + " " + shell_quote(in) + " " +
                           shell_quote(dir / "out.safetensors"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  const model::SafeTensors out = model::read_safetensors(dir / "out.safetensors");
  const model::Tensor* pos = out.find("pos_embed");
  REQUIRE(pos != nullptr);
  CHECK(pos->shape == std::vector<uint64_t>{1, 26, 96});
  const std::vector<float> src = model::read_safetensors(in).find("encoder.pos_embedding")->data;
  CHECK(pos->data == model::resample_pos_embed(src, 96, 1, 4, 4, 5, 5, true));
}

TEST_CASE("vkvit convert errors are one line naming the problem", "[cli][convert]") {
  TempDir dir("convert-errors");
  const std::string in = fixture("small_weights.safetensors");
  write_file(dir / "mean.yaml", small_config(32, "mean"));
  write_file(dir / "wide.yaml", small_config(32, "cls", 120));
  write_file(dir / "three.txt", "a\nb\nc\n");
  write_file(dir / "small.yaml", small_config());
  const std::string out = shell_quote(dir / "out.safetensors");

  CliRun r = run_cli("convert --from torchvision " + shell_quote(in) + " " + out);
  CHECK(r.status != 0);
  CHECK_THAT(r.err, Contains("needs --config"));
  r = run_cli("convert --from torchvision --config " + shell_quote(dir / "mean.yaml") + " " + shell_quote(in) + " " + out);
  CHECK(r.status != 0);
  CHECK_THAT(r.err, Contains("set model.pool: cls"));
  r = run_cli("convert --from torchvision --config " + shell_quote(dir / "wide.yaml") + " " + shell_quote(in) + " " + out);
  CHECK(r.status != 0);
  CHECK_THAT(r.err, Contains("torchvision weights do not fit the model"));
  CHECK_THAT(r.err, Contains("class_token has shape (1, 1, 96), the model expects (1, 1, 120)"));
  r = run_cli("convert --from torchvision --config " + shell_quote(dir / "small.yaml") + " --classes " +
              shell_quote(dir / "three.txt") + " " + shell_quote(in) + " " + out);
  CHECK(r.status != 0);
  CHECK_THAT(r.err, Contains("3 class names for a model with 10 classes"));
  r = run_cli("convert --to timm " + shell_quote(in) + " " + out);  // not a vkvit checkpoint
  CHECK(r.status != 0);
  CHECK_THAT(r.err, Contains("not a vkvit checkpoint"));
  CHECK_FALSE(fs::exists(dir / "out.safetensors"));
}

TEST_CASE("PNG files through vkvit predict give PyTorch's logits for the same pixels", "[cli][convert][parity][gpu]") {
  // The fixture's pixels (RGB, 0..255) were normalized with ImageNet mean/std in PyTorch and run
  // through torchvision's model; here they go through the files a user has: PNG -> OpenCV decode
  // (BGR -> RGB) -> eval transform (crop_pct 1.0 at the model size: no resize) -> normalize ->
  // patchify -> the imported model.
  TempDir dir("convert-predict");
  write_file(dir / "small.yaml", small_config());
  const CliRun c = run_cli("convert --from torchvision --config " + shell_quote(dir / "small.yaml") + " " +
                           shell_quote(fixture("small_weights.safetensors")) + " " + shell_quote(dir / "small.safetensors"));
  REQUIRE(c.status == 0);
  const model::SafeTensors expected = model::read_safetensors(fixture("small_expected.safetensors"));
  const std::vector<float>& pixels = expected.find("pixels")->data;  // (B, 32, 32, 3)
  const std::vector<float>& logits = expected.find("logits")->data;  // (B, 10)
  const int B = 4, S = 32, K = 10;
  fs::create_directories(dir.path / "images");
  for (int b = 0; b < B; ++b) {
    cv::Mat img(S, S, CV_8UC3);
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x)
        for (int ch = 0; ch < 3; ++ch)  // OpenCV stores BGR
          img.at<cv::Vec3b>(y, x)[2 - ch] = static_cast<uint8_t>(pixels[((size_t(b) * S + y) * S + x) * 3 + ch]);
    REQUIRE(cv::imwrite((dir.path / "images" / ("img" + std::to_string(b) + ".png")).string(), img));
  }
  const CliRun p = run_cli("predict --checkpoint " + shell_quote(dir / "small.safetensors") +
                           " --output-type logit --topk 10 --format json " + shell_quote(dir / "images"));
  INFO(p.err);
  REQUIRE(p.status == 0);
  const nlohmann::json j = nlohmann::json::parse(p.out);
  REQUIRE(j.size() == size_t(B));
  double num = 0, den = 0;
  for (int b = 0; b < B; ++b) {
    CHECK_THAT(j[b]["file"].get<std::string>(), Contains("img" + std::to_string(b) + ".png"));
    for (const auto& e : j[b]["topk"]) {
      const double got = e["score"].get<double>(), want = logits[size_t(b) * K + e["index"].get<int>()];
      num += (got - want) * (got - want);
      den += want * want;
    }
  }
  // vkvit normalizes as px * (1 / (255 std)) - mean / std, PyTorch as (px / 255 - mean) / std:
  // the inputs differ by <= 5e-7, the logits by ~1e-6 (relative 1e-6); the parity bound is 1e-4 (tests/test_parity.cpp).
  INFO("relative error " << std::sqrt(num / den));
  CHECK(std::sqrt(num / den) <= 1e-4);
}
