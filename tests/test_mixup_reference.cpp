// Mixup and CutMix against a PyTorch reference that follows timm's Mixup with the draws given
// (tests/reference/make_mixup_fixtures.py, fixtures in tests/fixtures/mixup): for each mode
// (batch, pair, elem) and kind (mixup, CutMix, none), vkvit's mixed batch on the host and on the
// GPU, its per-image lambda and partner label, and the soft-target cross-entropy with label
// smoothing (loss and logit gradient, on the GPU and in the double reference) equal what timm's
// code computes from the same draws.
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/patchify.h"
#include "harness.h"
#include "model/safetensors.h"
#include "ops/cross_entropy.h"
#include "ops/mix_batch.h"
#include "train/mixup.h"

using namespace vkvit;
using namespace vkvit::train;

namespace {

std::string fixture(const std::string& name) { return std::string(VKVIT_SOURCE_DIR) + "/tests/fixtures/mixup/" + name; }

struct Reference {
  nlohmann::json meta;
  model::SafeTensors tensors;
  int B = 0, C = 0, H = 0, K = 0;
  const std::vector<float>& at(const std::string& name) const {
    const model::Tensor* t = tensors.find(name);
    REQUIRE(t != nullptr);
    return t->data;
  }
};

const Reference& reference() {
  static const Reference r = [] {
    Reference ref;
    std::ifstream in(fixture("cases.json"));
    ref.meta = nlohmann::json::parse(in);
    ref.tensors = model::read_safetensors(fixture("mixup.safetensors"));
    ref.B = ref.meta["B"], ref.C = ref.meta["C"], ref.H = ref.meta["H"], ref.K = ref.meta["K"];
    return ref;
  }();
  return r;
}

// (B, C, H, W) images, one patchified image after another (patch 4: a 3x3 grid of 12 px images).
constexpr int kPatch = 4;
std::vector<float> patchify_batch(const std::vector<float>& chw, int B, int C, int H) {
  std::vector<float> out(chw.size());
  const size_t per = size_t(C) * H * H;
  for (int b = 0; b < B; ++b) {
    cv::Mat hwc(H, H, CV_32FC(C));
    for (int c = 0; c < C; ++c)
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < H; ++x) hwc.ptr<float>(y)[x * C + c] = chw[b * per + (size_t(c) * H + y) * H + x];
    data::patchify(hwc, kPatch, out.data() + b * per);
  }
  return out;
}

// The case's draws as vkvit's per-image SampleMix (pair: image B-1-k shares draw k).
std::vector<SampleMix> mixes_of(const nlohmann::json& c, int B, int H) {
  const nlohmann::json& draws = c["draws"];
  std::vector<SampleMix> out;
  for (int i = 0; i < B; ++i) {
    const std::string mode = c["mode"];
    const nlohmann::json& d = mode == "batch" ? draws[0] : mode == "elem" ? draws[i] : draws[i < B / 2 ? i : B - 1 - i];
    SampleMix m;
    const std::string kind = d["kind"];
    if (kind == "mixup") {
      m.kind = SampleMix::mixup;
      m.lam = d["lam"].get<float>();
    } else if (kind == "cutmix") {
      m.kind = SampleMix::cutmix;
      m.box = CutBox{d["box"][0], d["box"][1], d["box"][2], d["box"][3]};
      m.lam = float(1.0 - double(m.box.area()) / (double(H) * H));  // correct_lam, as draw_mixes sets it
    }
    out.push_back(m);
  }
  return out;
}

}  // namespace

TEST_CASE("Mixup and CutMix mix the batch as timm's Mixup does with the same draws", "[mixup]") {
  const Reference& r = reference();
  const std::vector<float> images = patchify_batch(r.at("images"), r.B, r.C, r.H);
  for (const nlohmann::json& c : r.meta["cases"]) {
    const std::string name = c["name"];
    INFO(name);
    const std::vector<SampleMix> mixes = mixes_of(c, r.B, r.H);
    std::vector<float> mixed = images;
    mix_patches(mixed.data(), uint32_t(r.B), PatchGeometry{r.H, kPatch, r.C}, mixes);
    // float32 products as torch's: lam x_i + (1 - lam) x_j; copies are exact.
    test::require_close(mixed, test::to_double(patchify_batch(r.at(name + ".mixed"), r.B, r.C, r.H)), 1.2e-7, 0.0,
                        name + " mixed batch");

    std::vector<uint32_t> labels;
    for (float v : r.at("labels")) labels.push_back(uint32_t(v));
    const MixTargets t = mix_targets(labels, uint32_t(r.B), mixes);
    test::require_close(t.lam, test::to_double(r.at(name + ".lam")), 1e-7, 0.0, name + " lambda");
    for (int i = 0; i < r.B; ++i) CHECK(t.labels_b[size_t(i)] == labels[size_t(r.B - 1 - i)]);
  }
}

TEST_CASE("mix_batch on the GPU mixes as timm's Mixup does with the same draws", "[mixup][gpu]") {
  const Reference& r = reference();
  const std::vector<float> images = patchify_batch(r.at("images"), r.B, r.C, r.H);
  for (const nlohmann::json& c : r.meta["cases"]) {
    const std::string name = c["name"];
    INFO(name);
    const std::vector<uint32_t> words = encode_mixes(mixes_of(c, r.B, r.H));
    std::vector<float> word_bits(words.size());
    std::memcpy(word_bits.data(), words.data(), words.size() * 4);
    test::DeviceTensor d_images(images), d_mixes(word_bits);
    vk::Recorder rec(test::ctx());
    ops::mix_batch(rec, d_images.view(), d_mixes.view(),
                   ops::MixBatchShape{uint32_t(r.B), uint32_t(r.H), uint32_t(kPatch), uint32_t(r.C)});
    rec.submit_and_wait();
    // The shader may fuse mixup's multiply-add: one more rounding of values in [-1, 1].
    test::require_close(d_images.read(), test::to_double(patchify_batch(r.at(name + ".mixed"), r.B, r.C, r.H)),
                        2.4e-7, 0.0, name + " mixed batch on the GPU");
  }
  CHECK(test::ctx().validation_errors() == 0);
}

TEST_CASE("the two-label cross-entropy equals timm's SoftTargetCrossEntropy on mixed smoothed targets",
          "[mixup][cross_entropy][gpu]") {
  const Reference& r = reference();
  const uint32_t B = uint32_t(r.B), K = uint32_t(r.K);
  const float eps = r.meta["label_smoothing"].get<float>();
  std::vector<uint32_t> labels;
  for (float v : r.at("labels")) labels.push_back(uint32_t(v));
  const std::vector<float>& logits = r.at("logits");
  auto bits = [](const std::vector<uint32_t>& u) {
    std::vector<float> f(u.size());
    std::memcpy(f.data(), u.data(), u.size() * 4);
    return f;
  };
  for (const nlohmann::json& c : r.meta["cases"]) {
    const std::string name = c["name"];
    INFO(name);
    const MixTargets t = mix_targets(labels, B, mixes_of(c, r.B, r.H));
    // The double reference.
    std::vector<double> losses(B), dlogits(size_t(B) * K, 0.0);
    const auto xd = test::to_double(logits), lam = test::to_double(t.lam);
    const double ref_loss = ops::ref::cross_entropy_forward_mixed(losses.data(), xd.data(), labels.data(),
                                                                  t.labels_b.data(), lam.data(), B, K, eps);
    ops::ref::cross_entropy_backward_mixed(dlogits.data(), xd.data(), labels.data(), t.labels_b.data(), lam.data(), 1.0,
                                           B, K, eps);
    CHECK(ref_loss == Approx(r.at(name + ".loss")[0]).epsilon(1e-6));
    test::require_close(test::to_float(dlogits), test::to_double(r.at(name + ".dlogits")), 1e-7, 1e-6,
                        name + " reference dlogits");
    // The GPU op.
    test::DeviceTensor d_losses(B), d_loss(1), d_correct(B), d_lse(B), d_dlogits(size_t(B) * K), d_logits(logits),
        d_labels(bits(labels)), d_labels_b(bits(t.labels_b)), d_lam(t.lam), d_dloss(std::vector<float>{1.0f});
    vk::Recorder rec(test::ctx());
    ops::cross_entropy_forward_backward(rec, d_losses.view(), d_loss.view(), d_correct.view(), d_lse.view(),
                                        d_dlogits.view(), d_logits.view(), d_labels.view(),
                                        ops::MixedLabels{d_labels_b.view(), d_lam.view()}, d_dloss.view(), B, K, eps);
    rec.submit_and_wait();
    CHECK(d_loss.read()[0] == Approx(r.at(name + ".loss")[0]).epsilon(1e-6));
    test::require_close(d_dlogits.read(), test::to_double(r.at(name + ".dlogits")), 2e-7, 1e-6, name + " dlogits");
  }
  CHECK(test::ctx().validation_errors() == 0);
}
