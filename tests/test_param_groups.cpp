// Parameter groups (train/param_groups.h): timm's layer ids and layer-decay scales against the
// fixture tests/reference/make_layer_decay_fixtures.py wrote from timm's rule (ViT-S/16 and
// ViT-B/16 at 0.65 and 0.75), the fnmatch globs, freeze patterns with `!`, the errors of a
// pattern that matches nothing and of a list that freezes everything; AdamW's per-tensor lr scales
// on the GPU against the reference (frozen tensors keep their bits).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "base/error.h"
#include "harness.h"
#include "model/vit_config.h"
#include "model/vit_params.h"
#include "ops/adamw.h"
#include "train/param_groups.h"

using namespace vkvit;
using namespace vkvit::train;

namespace {
const std::string kFixture = std::string(VKVIT_SOURCE_DIR) + "/tests/fixtures/layer_decay/scales.txt";

struct Expected {
  int id;
  double scale;
};

// (model, decay) -> name -> expected id and scale.
std::map<std::pair<std::string, double>, std::map<std::string, Expected>> read_fixture() {
  std::ifstream f(kFixture);
  REQUIRE(f.good());
  std::map<std::pair<std::string, double>, std::map<std::string, Expected>> out;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream s(line);
    std::string model, name;
    double decay = 0, scale = 0;
    int id = 0;
    s >> model >> decay >> name >> id >> scale;
    REQUIRE(!s.fail());
    out[{model, decay}][name] = {id, scale};
  }
  return out;
}
}  // namespace

TEST_CASE("param groups: layer ids and layer-decay scales equal timm's for ViT-S/16 and ViT-B/16", "[param_groups]") {
  const auto fixture = read_fixture();
  REQUIRE(fixture.size() == 4);
  for (const auto& [key, expected] : fixture) {
    const model::VitConfig cfg = model::VitConfig::preset(key.first);
    const model::ParamLayout layout = model::vit_param_layout(cfg);
    const std::vector<double> scales = layer_decay_scales(layout, cfg.depth, key.second);
    REQUIRE(layout.params().size() == expected.size());
    for (size_t i = 0; i < layout.params().size(); ++i) {
      const std::string& name = layout.params()[i].name;
      INFO(key.first << " decay " << key.second << " " << name);
      REQUIRE(expected.count(name) == 1);
      CHECK(vit_layer_id(name, cfg.depth) == expected.at(name).id);
      CHECK(std::fabs(scales[i] - expected.at(name).scale) <= 1e-15 * expected.at(name).scale);
    }
  }
}

TEST_CASE("param groups: the final norm goes with the last block, the head gets scale 1", "[param_groups]") {
  CHECK(vit_layer_id("cls_token", 4) == 0);
  CHECK(vit_layer_id("pos_embed", 4) == 0);
  CHECK(vit_layer_id("patch_embed.proj.bias", 4) == 0);
  CHECK(vit_layer_id("blocks.0.norm1.weight", 4) == 1);
  CHECK(vit_layer_id("blocks.3.mlp.fc2.bias", 4) == 4);
  CHECK(vit_layer_id("norm.weight", 4) == 4);
  CHECK(vit_layer_id("head.weight", 4) == 5);
  const model::ParamLayout layout = model::vit_param_layout(model::VitConfig::preset("vit_fmnist_small"));
  for (double s : layer_decay_scales(layout, 4, 0)) CHECK(s == 1.0);  // off
  const std::vector<double> s = layer_decay_scales(layout, 4, 0.5);
  CHECK(s.front() == 0.5 * 0.5 * 0.5 * 0.5 * 0.5);  // cls_token: 0.5^5
  CHECK(s.back() == 1.0);                             // head.bias
}

TEST_CASE("param groups: globs read as Python's fnmatch", "[param_groups]") {
  CHECK(glob_match("*", "blocks.0.attn.qkv.weight"));
  CHECK(glob_match("blocks.*", "blocks.10.norm1.bias"));
  CHECK(glob_match("blocks.[0-5].*", "blocks.5.mlp.fc1.weight"));
  CHECK_FALSE(glob_match("blocks.[0-5].*", "blocks.6.mlp.fc1.weight"));
  CHECK_FALSE(glob_match("blocks.[0-5].*", "blocks.10.mlp.fc1.weight"));  // one character
  CHECK(glob_match("blocks.[!0-5].*", "blocks.7.norm2.weight"));
  CHECK(glob_match("*.bias", "head.bias"));
  CHECK_FALSE(glob_match("*.bias", "head.weight"));
  CHECK(glob_match("head.?eight", "head.weight"));
  CHECK(glob_match("cls_token", "cls_token"));
  CHECK_FALSE(glob_match("cls_token", "cls_token2"));
  CHECK(glob_match("a[b", "a[b"));  // no closing ']': a literal '['
  CHECK(glob_match("[]]x", "]x"));  // a ']' first in the set belongs to it
}

TEST_CASE("param groups: freeze patterns apply in order, ! unfreezes, scale 0 for frozen", "[param_groups]") {
  const model::VitConfig cfg = model::VitConfig::preset("vit_fmnist_small");
  const model::ParamLayout layout = model::vit_param_layout(cfg);
  const ParamGroups probe = param_groups(layout, cfg.depth, 0, {"*", "!head.*"});
  for (size_t i = 0; i < layout.params().size(); ++i) {
    const bool head = layout.params()[i].name.rfind("head.", 0) == 0;
    CHECK(probe.frozen[i] == !head);
    CHECK(probe.lr_scale[i] == (head ? 1.0 : 0.0));
  }
  CHECK(probe.active());
  const ParamGroups partial = param_groups(layout, cfg.depth, 0.75, {"patch_embed.*", "cls_token", "pos_embed", "blocks.[0-1].*"});
  for (size_t i = 0; i < layout.params().size(); ++i) {
    const int id = vit_layer_id(layout.params()[i].name, cfg.depth);
    CHECK(partial.frozen[i] == (id <= 2));
    CHECK(partial.lr_scale[i] == (id <= 2 ? 0.0 : std::pow(0.75, cfg.depth + 1 - id)));
  }
  CHECK_FALSE(param_groups(layout, cfg.depth, 0, {}).active());
  CHECK_FALSE(param_groups(layout, cfg.depth, 1.0, {}).active());
}

TEST_CASE("param groups: a pattern that matches nothing or a list that freezes all is a one-line error", "[param_groups]") {
  const model::VitConfig cfg = model::VitConfig::preset("vit_fmnist_small");
  const model::ParamLayout layout = model::vit_param_layout(cfg);
  try {
    frozen_tensors(layout, {"blocks.*", "block.0.*"});
    FAIL("no error");
  } catch (const Error& e) {
    const std::string what = e.what();
    CHECK(what.find("train.freeze: pattern 'block.0.*' matches no parameter") == 0);
    CHECK(what.find('\n') == std::string::npos);
  }
  CHECK_THROWS_WITH(frozen_tensors(layout, {"*"}), Catch::Contains("freeze every parameter"));
}

namespace {
// AdamW with per-tensor lr scales on a layout like the model's (tensors at multiples of 64 floats,
// uneven sizes, padding between them), against the reference with per-element scales, for three
// steps: layer-decay scales, 1, and 0 (frozen: params, m and v keep their bits).
void check_scaled_steps(uint32_t seed) {
  struct T {
    uint64_t count;
    bool decay;
    double scale;
  };
  const std::vector<T> tensors = {{13, false, 0.0},   {4099, true, 0.65 * 0.65}, {127, false, 0.65},
                                  {50001, true, 1.0}, {39, false, 0.0},          {583, true, 0.75},
                                  {1, false, 1.0}};
  std::vector<ops::ParamRange> ranges;
  uint64_t n = 0;
  for (const T& t : tensors) {
    n = (n + 63) / 64 * 64;
    ranges.push_back({n, t.count, t.decay, t.scale});
    n += t.count;
  }
  // Padding floats (random here, zero in a model) take the scale of their block's tensor.
  const std::vector<float> block_scales = ops::adamw_lr_scale_blocks(ranges, n);
  std::vector<uint8_t> decay(n, 0);
  std::vector<double> scale(n);
  for (uint64_t i = 0; i < n; ++i) scale[i] = block_scales[i / 64];
  for (const ops::ParamRange& r : ranges)
    for (uint64_t i = r.first; i < r.first + r.count; ++i) decay[i] = r.decay, scale[i] = r.lr_scale;
  const std::vector<uint32_t> mask_words = ops::adamw_decay_mask(ranges, n);
  std::vector<float> mask_floats(mask_words.size());
  std::memcpy(mask_floats.data(), mask_words.data(), mask_words.size() * 4);
  ops::AdamWHyper h;
  h.lr = 1e-2;
  h.weight_decay = 0.05;
  const std::vector<float> p0 = test::random_floats(n, seed), m0 = test::random_floats(n, seed + 1),
                           v0 = test::random_floats(n, seed + 2, 0.0f, 1.0f);
  test::DeviceTensor params(p0), m(m0), v(v0), grads(n), mask(mask_floats), blocks(block_scales);
  std::vector<double> rp = test::to_double(p0), rm = test::to_double(m0), rv = test::to_double(v0);
  for (uint64_t t = 1; t <= 3; ++t) {
    const std::vector<float> g = test::random_floats(n, seed + 10 + uint32_t(t));
    grads.write(g);
    vk::Recorder rec(test::ctx());
    ops::adamw_step(rec, params.view(), m.view(), v.view(), grads.view(), vk::View{}, mask.view(), n, h, t,
                    blocks.view());
    rec.submit_and_wait();
    const std::vector<double> gd = test::to_double(g);
    ops::ref::adamw_step(rp.data(), rm.data(), rv.data(), gd.data(), 1.0, decay.data(), scale.data(), n, h, t);
    INFO("step " << t);
    test::require_close(params.read(), rp, 5e-7, 1e-6, "scaled adamw params");
    test::require_close(m.read(), rm, 1e-7, 1e-5, "scaled adamw m");
    test::require_close(v.read(), rv, 1e-20, 1e-5, "scaled adamw v");
  }
  const std::vector<float> p = params.read(), mm = m.read(), vv = v.read();
  for (const ops::ParamRange& r : ranges) {
    if (r.lr_scale != 0) continue;
    for (uint64_t i = r.first; i < r.first + r.count; ++i) {
      INFO("frozen element " << i);
      REQUIRE(std::memcmp(&p[i], &p0[i], 4) == 0);
      REQUIRE(std::memcmp(&mm[i], &m0[i], 4) == 0);
      REQUIRE(std::memcmp(&vv[i], &v0[i], 4) == 0);
    }
  }
}
}  // namespace

TEST_CASE("adamw with per-tensor lr scales matches the reference and leaves frozen tensors alone", "[param_groups][adamw][gpu]") {
  const int errors_before = test::validation_errors_so_far();
  SECTION("four floats as 64-bit pairs where the device has them") { check_scaled_steps(101); }
  SECTION("without 64-bit pairs") {
    test::ScopedTuning narrow([](vk::Tuning& k) { k.wide = false; });
    check_scaled_steps(202);
  }
  CHECK(test::validation_errors_so_far() == errors_before);
}

TEST_CASE("adamw's lr-scale table has one entry per 64-float block and refuses unaligned tensors", "[param_groups][adamw]") {
  const std::vector<float> blocks = ops::adamw_lr_scale_blocks({{0, 70, true, 0.5}, {128, 3, false, 0.0}}, 131);
  CHECK(blocks == std::vector<float>{0.5f, 0.5f, 0.0f});
  CHECK(ops::adamw_lr_scale_blocks({{0, 10, true, 0.25}}, 200) == std::vector<float>{0.25f, 1.0f, 1.0f, 1.0f});
  CHECK_THROWS_AS(ops::adamw_lr_scale_blocks({{32, 10, true, 0.5}}, 64), Error);
}

TEST_CASE("adamw over a range of the flat buffer updates it as the whole pass does and nothing else", "[param_groups][adamw][gpu]") {
  const uint64_t n = 5003, first = 1024, count = 2051;  // the range ends inside a group of four
  const std::vector<float> p0 = test::random_floats(n, 5), g = test::random_floats(n, 6);
  std::vector<ops::ParamRange> ranges = {{0, 1000, true}, {1024, 2051, false}, {3136, 1867, true}};
  const std::vector<uint32_t> words = ops::adamw_decay_mask(ranges, n);
  std::vector<float> mask_floats(words.size());
  std::memcpy(mask_floats.data(), words.data(), words.size() * 4);
  ops::AdamWHyper h;
  h.lr = 1e-2;
  test::DeviceTensor whole_p(p0), whole_m(n), whole_v(n), part_p(p0), part_m(n), part_v(n), grads(g), mask(mask_floats);
  vk::Recorder rec(test::ctx());
  ops::adamw_step(rec, whole_p.view(), whole_m.view(), whole_v.view(), grads.view(), vk::View{}, mask.view(), n, h, 1);
  ops::adamw_step(rec, part_p.view(), part_m.view(), part_v.view(), grads.view(), vk::View{}, mask.view(), count, h, 1,
                  vk::View{}, first);
  rec.submit_and_wait();
  const std::vector<float> wp = whole_p.read(), pp = part_p.read(), pm = part_m.read(), wm = whole_m.read();
  for (uint64_t i = 0; i < n; ++i) {
    INFO("element " << i);
    const bool inside = i >= first && i < first + count;
    REQUIRE(std::memcmp(&pp[i], inside ? &wp[i] : &p0[i], 4) == 0);
    REQUIRE(pm[i] == (inside ? wm[i] : 0.0f));
  }
  CHECK_THROWS_AS(ops::adamw_step(rec, part_p.view(), part_m.view(), part_v.view(), grads.view(), vk::View{}, mask.view(),
                                  10, h, 1, vk::View{}, 100),
                  Error);  // not a multiple of 64
}
