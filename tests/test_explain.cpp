// `vkvit explain` and the attention maps behind it: rollout and single-head maps against a plain
// double-precision reference on random row-stochastic matrices and against PyTorch
// (tests/fixtures/rollout, from tests/reference/make_rollout_fixtures.py); method parsing and its
// errors; the probabilities the GPU model exposes against the reference model (also under
// VKVIT_ATTENTION=fused); and the command end to end on tiny checkpoints trained here.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "bad_files.h"
#include "harness.h"
#include "model/attention_rollout.h"
#include "model/safetensors.h"
#include "model/vit.h"
#include "model/vit_ref.h"
#include "ops/attention.h"
#include "stripes.h"

using namespace vkvit;
using namespace vkvit::test;
using Catch::Matchers::Contains;
using model::AttentionMapPlan;
using model::VitConfig;
namespace fs = std::filesystem;

namespace {

// (L, H, N, N) random row-stochastic matrices: positive entries spanning four orders of magnitude,
// rows normalised in double then stored as float (so rows sum to 1 within float rounding, as a
// softmax's do).
std::vector<float> random_probs(uint32_t L, uint32_t H, uint32_t N, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-4.0, 0.0);
  std::vector<float> p(size_t(L) * H * N * N);
  for (size_t row = 0; row < size_t(L) * H * N; ++row) {
    std::vector<double> v(N);
    for (double& x : v) x = std::pow(10.0, u(rng));
    const double sum = std::accumulate(v.begin(), v.end(), 0.0);
    for (uint32_t j = 0; j < N; ++j) p[row * N + j] = float(v[j] / sum);
  }
  return p;
}

// The rollout the slow, obvious way: full (N, N) matrices, R = A_{L-1} ... A_0 by triple loops.
std::vector<double> reference_rollout_matrix(const std::vector<float>& probs, uint32_t L, uint32_t H, uint32_t N) {
  std::vector<double> R(size_t(N) * N, 0.0);
  for (uint32_t i = 0; i < N; ++i) R[size_t(i) * N + i] = 1.0;
  for (uint32_t l = 0; l < L; ++l) {
    std::vector<double> A(size_t(N) * N, 0.0);
    for (uint32_t i = 0; i < N; ++i) {
      double sum = 0;
      for (uint32_t j = 0; j < N; ++j) {
        double m = 0;
        for (uint32_t h = 0; h < H; ++h) m += probs[((size_t(l) * H + h) * N + i) * N + j];
        A[size_t(i) * N + j] = m / H + (i == j ? 1.0 : 0.0);
        sum += A[size_t(i) * N + j];
      }
      for (uint32_t j = 0; j < N; ++j) A[size_t(i) * N + j] /= sum;
    }
    std::vector<double> next(size_t(N) * N, 0.0);  // A_l R
    for (uint32_t i = 0; i < N; ++i)
      for (uint32_t k = 0; k < N; ++k)
        for (uint32_t j = 0; j < N; ++j) next[size_t(i) * N + j] += A[size_t(i) * N + k] * R[size_t(k) * N + j];
    R = next;
  }
  return R;
}

std::vector<const float*> layer_pointers(const std::vector<float>& probs, uint32_t L, uint32_t H, uint32_t N) {
  std::vector<const float*> out;
  for (uint32_t l = 0; l < L; ++l) out.push_back(probs.data() + size_t(l) * H * N * N);
  return out;
}

void require_near(const std::vector<double>& got, const std::vector<double>& want, double tol, const std::string& what) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
  INFO(what << ": worst abs error " << worst);
  REQUIRE(worst <= tol);
}

VitConfig depth_config(int depth, const std::string& mixer, const std::string& pool = "cls") {
  VitConfig c;
  c.name = "explain_test";
  c.image_size = 12, c.patch_size = 3, c.in_chans = 2, c.dim = 12, c.heads = 3, c.mlp_dim = 20, c.num_classes = 5;
  c.depth = depth;
  c.mixer = mixer;
  c.pool = pool;
  return c;
}

}  // namespace

TEST_CASE("attention rollout matches a double-precision reference on random matrices", "[explain]") {
  // The reference multiplies full matrices; rollout_cls_map carries only the cls row, so they agree
  // to double rounding (values <= 1, N terms per sum): 1e-12 absolute leaves a wide margin.
  struct Case {
    uint32_t L, H, N;
  };
  for (const Case c : {Case{3, 3, 17}, Case{1, 1, 2}, Case{5, 2, 50}, Case{4, 5, 13}}) {
    INFO("L " << c.L << " H " << c.H << " N " << c.N);
    const auto probs = random_probs(c.L, c.H, c.N, 100 + c.N);
    const auto R = reference_rollout_matrix(probs, c.L, c.H, c.N);
    const std::vector<double> want(R.begin() + 1, R.begin() + c.N);
    const auto got = model::rollout_cls_map(layer_pointers(probs, c.L, c.H, c.N), c.H, c.N);
    require_near(got, want, 1e-12, "rollout");
    // The row of R sums to 1, so the patches' share is 1 - R[0][0], and it is never negative.
    CHECK(std::accumulate(got.begin(), got.end(), 0.0) == Approx(1.0 - R[0]).margin(1e-12));
    CHECK(*std::min_element(got.begin(), got.end()) >= 0.0);

    // The single-layer maps: the last layer's heads averaged, and each head, row 0 over the patches.
    const float* last = probs.data() + size_t(c.L - 1) * c.H * c.N * c.N;
    std::vector<double> mean(c.N - 1, 0.0);
    for (uint32_t h = 0; h < c.H; ++h) {
      std::vector<double> head(c.N - 1);
      for (uint32_t j = 1; j < c.N; ++j) head[j - 1] = last[size_t(h) * c.N * c.N + j];
      require_near(model::head_cls_map(last, c.H, c.N, h), head, 0.0, "head " + std::to_string(h));
      for (uint32_t j = 0; j + 1 < c.N; ++j) mean[j] += head[j] / c.H;
    }
    require_near(model::mean_heads_cls_map(last, c.H, c.N), mean, 1e-15, "heads' mean");
  }
}

TEST_CASE("rollout of the identity attention keeps the cls token to itself", "[explain]") {
  // Every token attending only to itself: A = I at every layer, R = I, so the cls row puts nothing
  // on the patches; one layer where the cls token attends to patch 2 only: A[0] = (e_0 + e_3) / 2.
  const uint32_t H = 2, N = 5;
  std::vector<float> eye(size_t(H) * N * N, 0.0f);
  for (uint32_t h = 0; h < H; ++h)
    for (uint32_t i = 0; i < N; ++i) eye[(size_t(h) * N + i) * N + i] = 1.0f;
  const auto flat = model::rollout_cls_map({eye.data(), eye.data()}, H, N);
  CHECK(std::all_of(flat.begin(), flat.end(), [](double v) { return v == 0.0; }));
  std::vector<float> look = eye;
  for (uint32_t h = 0; h < H; ++h) {
    look[size_t(h) * N * N + 0] = 0.0f;
    look[size_t(h) * N * N + 3] = 1.0f;
  }
  require_near(model::rollout_cls_map({look.data()}, H, N), {0.0, 0.0, 0.5, 0.0}, 1e-15, "one look");
  // An identity layer after it changes nothing; before it, neither.
  require_near(model::rollout_cls_map({look.data(), eye.data()}, H, N), {0.0, 0.0, 0.5, 0.0}, 1e-15, "look, eye");
  require_near(model::rollout_cls_map({eye.data(), look.data()}, H, N), {0.0, 0.0, 0.5, 0.0}, 1e-15, "eye, look");
}

TEST_CASE("attention maps match PyTorch's rollout on the fixture", "[explain][parity]") {
  // tests/reference/make_rollout_fixtures.py: full float64 matrix products in torch on the stored
  // float32 probabilities, stored as float32: 1e-7 absolute covers that last rounding.
  const model::SafeTensors st =
      model::read_safetensors(std::string(VKVIT_SOURCE_DIR) + "/tests/fixtures/rollout/rollout.safetensors");
  for (const std::string name : {"grid3x3", "grid3x4"}) {
    INFO(name);
    const model::Tensor* probs = st.find(name + ".probs");
    REQUIRE(probs);
    REQUIRE(probs->shape.size() == 4);
    const uint32_t L = uint32_t(probs->shape[0]), H = uint32_t(probs->shape[1]), N = uint32_t(probs->shape[2]);
    const int head_layer = std::stoi(st.metadata.at(name + ".head_layer")), head = std::stoi(st.metadata.at(name + ".head"));
    auto expected = [&](const std::string& what) {
      const model::Tensor* t = st.find(name + "." + what);
      REQUIRE(t);
      REQUIRE(t->numel() == N - 1);
      return std::vector<double>(t->data.begin(), t->data.end());
    };
    const auto layers = layer_pointers(probs->data, L, H, N);
    require_near(model::rollout_cls_map(layers, H, N), expected("rollout"), 1e-7, "rollout");
    require_near(model::mean_heads_cls_map(layers.back(), H, N), expected("last_layer"), 1e-7, "last layer");
    require_near(model::head_cls_map(layers[head_layer], H, N, head), expected("head"), 0.0, "head");
  }
}

TEST_CASE("explain methods are parsed against the model and bad ones refused", "[explain]") {
  const VitConfig plain = depth_config(3, "attention");
  AttentionMapPlan p = model::plan_attention_map(plain, "rollout");
  CHECK(p.kind == AttentionMapPlan::Kind::rollout);
  CHECK(p.layers == std::vector<int>{0, 1, 2});
  CHECK(p.skipped.empty());
  CHECK(p.file_tag == "rollout");
  p = model::plan_attention_map(plain, "last-layer");
  CHECK(p.layers == std::vector<int>{2});
  CHECK(p.file_tag == "last-layer");
  p = model::plan_attention_map(plain, "head=1:2");
  CHECK(p.kind == AttentionMapPlan::Kind::head);
  CHECK(p.layers == std::vector<int>{1});
  CHECK(p.head == 2);
  CHECK(p.file_tag == "head-L1-H2");

  const VitConfig hybrid = depth_config(4, "global_filter,attention,attention,global_filter");
  p = model::plan_attention_map(hybrid, "rollout");
  CHECK(p.layers == std::vector<int>{1, 2});
  CHECK(p.skipped == std::vector<int>{0, 3});
  CHECK(model::plan_attention_map(hybrid, "last-layer").layers == std::vector<int>{2});
  CHECK_THAT(error_of([&] { model::plan_attention_map(hybrid, "head=0:0"); }),
             Contains("block 0 is a global_filter layer") && Contains("attention blocks: 1, 2"));

  CHECK_THAT(error_of([&] { model::plan_attention_map(plain, "head=3:0"); }), Contains("block 3 does not exist"));
  CHECK_THAT(error_of([&] { model::plan_attention_map(plain, "head=0:3"); }), Contains("head 3 does not exist"));
  for (const std::string bad : {"head=1", "head=:1", "head=1:", "head=-1:0", "head=a:b", "head=1:+1", "head=1:1x"})
    CHECK_THAT(error_of([&] { model::plan_attention_map(plain, bad); }), Contains("write head=L:H"));
  for (const std::string bad : {"bogus", "Rollout", "", "last_layer", "head"})
    CHECK_THAT(error_of([&] { model::plan_attention_map(plain, bad); }), Contains("unknown method"));

  const VitConfig filters = depth_config(2, "global_filter", "mean");
  for (const std::string m : {"rollout", "last-layer"})
    CHECK_THAT(error_of([&] { model::plan_attention_map(filters, m); }), Contains("no attention block"));
  CHECK_THAT(error_of([&] { model::plan_attention_map(filters, "head=0:0"); }), Contains("global_filter layer"));
}

namespace {

// Random weights through the GPU model (probabilities kept) and the reference model; every
// attention block's probabilities must agree, and the maps made from either must too.
void check_probs_gpu(const VitConfig& cfg, uint32_t batch, uint32_t seed) {
  model::Vit vit(ctx(), cfg, batch + 1, /*amp=*/false, /*keep_attention_probs=*/true);
  // Random weights rather than timm's init (whose small qkv weights give nearly uniform rows):
  // every tensor in [-0.5, 0.5), norm weights around 1, so the rows are far from uniform.
  std::vector<float> params(vit.layout().total_floats(), 0.0f);
  for (const model::ParamInfo& p : vit.params()) {
    const bool norm = p.name.find("norm") != std::string::npos && p.name.find(".weight") != std::string::npos;
    const auto v = random_floats(p.count, seed + uint32_t(p.offset), norm ? 0.5f : -0.5f, norm ? 1.5f : 0.5f);
    std::copy(v.begin(), v.end(), params.begin() + p.offset);
  }
  vit.write_params(params);
  const auto patches = random_floats(size_t(batch) * cfg.num_patches() * cfg.patch_dim(), seed + 1, -2.0f, 2.0f);
  ctx().upload(vit.patches_input(), patches.data(), patches.size() * 4);
  vk::Recorder rec(ctx());
  vit.forward(rec, batch);
  rec.submit_and_wait();
  model::VitRef ref(cfg);
  ref.forward(to_double(params), to_double(patches), batch);

  const uint32_t H = cfg.heads, N = cfg.tokens();
  const uint64_t per_image = uint64_t(H) * N * N;
  const AttentionMapPlan plan = model::plan_attention_map(cfg, "rollout");
  std::vector<std::vector<float>> gpu(cfg.depth);
  for (int l : plan.layers) {
    gpu[l].resize(batch * per_image);
    ctx().download(vit.attention_probs(l), gpu[l].data(), gpu[l].size() * 4);
    // Probabilities in [0, 1] after fp32 matmuls and softmax: a few ulp of the scores' sums.
    require_close(gpu[l], ref.attention_probs(l), 1e-6, 1e-5, "block " + std::to_string(l) + " probabilities");
  }
  for (int l : plan.skipped) CHECK_THAT(error_of([&] { vit.attention_probs(l); }), Contains("global_filter"));
  for (uint32_t b = 0; b < batch; ++b) {
    std::vector<const float*> g;
    std::vector<std::vector<float>> r;
    for (int l : plan.layers) {
      g.push_back(gpu[l].data() + b * per_image);
      const auto& rp = ref.attention_probs(l);
      r.emplace_back(rp.begin() + b * per_image, rp.begin() + (b + 1) * per_image);
    }
    std::vector<const float*> rptr;
    for (const auto& v : r) rptr.push_back(v.data());
    require_near(model::rollout_cls_map(g, H, N), model::rollout_cls_map(rptr, H, N), 1e-6, "rollout of image");
  }
}

}  // namespace

TEST_CASE("attention probabilities kept by the GPU model match the reference model", "[explain][gpu]") {
  // 17 tokens (a 4x4 grid), widths 12 in 3 heads; a hybrid whose global filter sits between the
  // attention blocks.
  check_probs_gpu(depth_config(2, "attention"), 2, 300);
  check_probs_gpu(depth_config(3, "attention,global_filter,attention"), 3, 310);
  // Under forced fused attention (head width 16, which the fused kernels take) the model built for
  // explain still keeps its probabilities; a model built without asking for them has none.
  VitConfig wide = depth_config(2, "attention");
  wide.dim = 32, wide.heads = 2;
  ScopedTuning fused([](vk::Tuning& k) { k.attention = vk::AttentionPath::fused; });
  check_probs_gpu(wide, 2, 320);
  if (skipped_because(ops::attention_fused_unsupported(ctx().info()))) return;
  model::Vit plain(ctx(), wide, 1);
  CHECK_THAT(error_of([&] { plain.attention_probs(0); }), Contains("keeps no probabilities"));
}

// ---------------------------------------------------------------------------------------- CLI

namespace {

// Tiny checkpoints trained once per test process on the stripes data set (tests/stripes.h): two
// steps each, enough for real weights; the maps' meaning is not under test here, their plumbing is.
struct ExplainModels {
  TempDir dir{"explain"};
  fs::path data, attention, hybrid, filters;

  ExplainModels() {
    data = dir.path / "data";
    write_stripe_dataset(data, 8, 2, 4242, 0);
    const std::string base = tiny_stripes_config_yaml(1);
    attention = train("attention", base);
    hybrid = train("hybrid", with_model_lines(base, "  depth: 3\n  mixer: [global_filter, attention, attention]\n"));
    filters = train("filters", with_model_lines(base, "  depth: 1\n  mixer: global_filter\n  pool: mean\n"));
  }

  static std::string with_model_lines(std::string yaml, const std::string& lines) {
    const std::string depth = "  depth: 1\n";
    const size_t at = yaml.find(depth);
    REQUIRE(at != std::string::npos);
    return yaml.replace(at, depth.size(), lines);
  }

  fs::path train(const std::string& name, const std::string& yaml) {
    const fs::path config = dir.path / (name + ".yaml");
    write_file(config, yaml);
    const CliRun r = run_cli("train --config " + q(config) + " --data-dir " + q(data) + " --output " +
                             q(dir.path / name) + " --max-steps 2 -q");
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    const fs::path ckpt = dir.path / name / "last.safetensors";
    REQUIRE(fs::exists(ckpt));
    return ckpt;
  }
};

const ExplainModels& models() {
  static ExplainModels m;
  return m;
}

// A .npy file as explain writes it (version 1.0, '<f4', C order): its shape and values; fails the
// test on anything else.
struct Npy {
  std::vector<size_t> shape;
  std::vector<float> values;
};
Npy read_npy(const fs::path& path) {
  const std::string bytes = read_file(path);
  REQUIRE(bytes.size() >= 10);
  REQUIRE(bytes.compare(0, 8, std::string("\x93NUMPY\x01\x00", 8)) == 0);
  const size_t hlen = uint8_t(bytes[8]) | (size_t(uint8_t(bytes[9])) << 8);
  REQUIRE((10 + hlen) % 64 == 0);
  const std::string header = bytes.substr(10, hlen);
  CHECK(header.back() == '\n');
  CHECK_THAT(header, Contains("'descr': '<f4'") && Contains("'fortran_order': False"));
  const size_t open = header.find("'shape': (");
  REQUIRE(open != std::string::npos);
  const size_t close = header.find(')', open);
  Npy n;
  std::string dims = header.substr(open + 10, close - open - 10);
  for (size_t at = 0; at < dims.size();) {
    const size_t comma = dims.find(',', at);
    const std::string d = dims.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    if (d.find_first_not_of(' ') != std::string::npos) n.shape.push_back(std::stoul(d));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  const size_t count = std::accumulate(n.shape.begin(), n.shape.end(), size_t(1), std::multiplies<size_t>());
  REQUIRE(bytes.size() == 10 + hlen + 4 * count);
  n.values.resize(count);
  for (size_t i = 0; i < count; ++i) {  // little-endian, whatever this machine is
    uint32_t bits = 0;
    for (int k = 0; k < 4; ++k) bits |= uint32_t(uint8_t(bytes[10 + hlen + 4 * i + k])) << (8 * k);
    std::memcpy(&n.values[i], &bits, 4);
  }
  return n;
}

double sum_of(const Npy& n) { return std::accumulate(n.values.begin(), n.values.end(), 0.0); }

// The stripes image of class k scaled up to w x h (nearest), so it is not the model's size.
cv::Mat big_stripes(int k, int w, int h, uint64_t seed) {
  cv::RNG rng(seed);
  cv::Mat big;
  cv::resize(stripe_image(k, rng), big, cv::Size(w, h), 0, 0, cv::INTER_NEAREST);
  return big;
}

}  // namespace

TEST_CASE("explain writes a heatmap of each image's own size and the map as .npy", "[explain][cli]") {
  const ExplainModels& m = models();
  TempDir d("explain_out");
  const fs::path in = d.path / "in", out = d.path / "out";
  fs::create_directories(in);
  // The model's size (16 px); a 320 x 192 image whose eval crop is a centred window; a JPEG stored
  // 48 x 32 with EXIF orientation 6 (rotate 90 degrees clockwise), which predict reads as 32 x 48.
  fs::copy_file(m.data / "val" / "horizontal" / "0.png", in / "small.png");
  const cv::Mat wide = big_stripes(3, 320, 192, 5);
  REQUIRE(cv::imwrite((in / "wide.png").string(), wide));
  const bad::Bytes jpg = bad::encode(".jpg", big_stripes(2, 48, 32, 6), {cv::IMWRITE_JPEG_QUALITY, 95});
  REQUIRE(!jpg.empty());
  bad::write_bytes(in / "turned.jpg", bad::with_exif_orientation(jpg, 6));

  const CliRun r = run_cli("explain --checkpoint " + q(m.attention) + " --output " + q(out) + " " + q(in));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 3);  // sorted: small, turned, wide
  const std::vector<std::pair<std::string, cv::Size>> expect = {
      {"small", {16, 16}}, {"turned", {32, 48}}, {"wide", {320, 192}}};
  for (size_t i = 0; i < expect.size(); ++i) {
    const auto& [stem, size] = expect[i];
    INFO(stem);
    const fs::path png = out / (stem + "_rollout.png"), npy = out / (stem + "_rollout.npy");
    CHECK_THAT(lines[i], Contains(stem) && Contains(png.string()) && Contains(npy.string()));
    bool labelled = false;
    for (const std::string& c : stripe_classes()) labelled |= lines[i].find(": " + c + " ") != std::string::npos;
    CHECK(labelled);
    const cv::Mat heat = cv::imread(png.string(), cv::IMREAD_UNCHANGED);
    REQUIRE(!heat.empty());
    CHECK(heat.size() == size);
    CHECK(heat.type() == CV_8UC3);
    // Rollout's cls row sums to 1 over all tokens: the patches get a share in (0, 1].
    const Npy n = read_npy(npy);
    CHECK(n.shape == std::vector<size_t>{4, 4});
    CHECK(*std::min_element(n.values.begin(), n.values.end()) >= 0.0f);
    CHECK(sum_of(n) > 0.0);
    CHECK(sum_of(n) <= 1.0 + 1e-6);
  }
  // The wide image: the eval transform resizes it to 26 x 16 and crops x 5..21, i.e. source
  // x 61.54..258.46 (x 5 * 320 / 26 on). Columns whose centre is outside are shown darkened (half the grey value), without heat;
  // the labels' box sits in the top-left corner.
  const cv::Mat heat = cv::imread((out / "wide_rollout.png").string(), cv::IMREAD_UNCHANGED);
  const int y = heat.rows - 1;
  for (int x : {0, 61, 259, 319}) {
    INFO("x " << x);
    const int half = wide.at<uint8_t>(y, x) / 2;
    CHECK(heat.at<cv::Vec3b>(y, x) == cv::Vec3b(half, half, half));
  }
  int coloured = 0;  // inside the window the JET colours are not grey
  for (int x = 62; x <= 257; ++x) {
    const cv::Vec3b v = heat.at<cv::Vec3b>(y, x);
    coloured += v[0] != v[1] || v[1] != v[2];
  }
  CHECK(coloured > 150);
  CHECK(heat.at<cv::Vec3b>(0, 0) == cv::Vec3b(32, 32, 32));
  // 16 px images have no room for labels: said once on stderr.
  CHECK(lines_with(r.err, "too small").size() == 1);
}

TEST_CASE("explain methods: last-layer, single heads, and the fused attention path", "[explain][cli]") {
  const ExplainModels& m = models();
  TempDir d("explain_methods");
  const fs::path image = m.data / "val" / "vertical" / "1.png", out = d.path / "out";
  auto run_method = [&](const std::string& method, const std::string& tag) {
    const CliRun r = run_cli("explain --checkpoint " + q(m.attention) + " --method " + method + " --output " + q(out) +
                             " --topk 2 " + q(image));
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(lines_of(r.out).size() == 1);
    CHECK(fs::exists(out / ("1_" + tag + ".png")));
    return read_npy(out / ("1_" + tag + ".npy"));
  };
  const Npy rollout = run_method("rollout", "rollout");
  const Npy last = run_method("last-layer", "last-layer");
  const Npy h0 = run_method("head=0:0", "head-L0-H0");
  const Npy h1 = run_method("head=0:1", "head-L0-H1");
  // One attention block: rollout = cls row of (P + I) / 2 over the patches = half the last layer's
  // map; the last layer's map is the mean of its two heads. fp32 values of size ~0.1: 1e-6.
  for (size_t i = 0; i < 16; ++i) {
    CHECK(rollout.values[i] == Approx(last.values[i] / 2).margin(1e-6));
    CHECK(last.values[i] == Approx((h0.values[i] + h1.values[i]) / 2).margin(1e-6));
  }
  CHECK(sum_of(h0) <= 1.0 + 1e-6);
  // VKVIT_ATTENTION=fused selects kernels that keep no probabilities (head width 16 here): explain
  // builds its model on the unfused path and gives the same map.
  {
    ScopedEnv fused("VKVIT_ATTENTION", "fused");
    const Npy again = run_method("rollout", "rollout");
    for (size_t i = 0; i < 16; ++i) CHECK(again.values[i] == rollout.values[i]);
  }
}

TEST_CASE("explain on global-filter models: a note, rollout over attention only, clear errors", "[explain][cli]") {
  const ExplainModels& m = models();
  TempDir d("explain_gf");
  const fs::path a = m.data / "val" / "diag_up" / "0.png", b = m.data / "val" / "diag_up" / "1.png";
  const std::string images = " " + q(a) + " " + q(b);
  CliRun r = run_cli("explain --checkpoint " + q(m.hybrid) + " --output " + q(d.path) + images);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(lines_of(r.out).size() == 2);
  CHECK(lines_with(r.err, "global-filter").size() == 1);  // once, not per image
  CHECK_THAT(r.err, Contains("block(s) 0 are global-filter layers") && Contains("attention block(s) 1, 2 only"));
  CHECK(read_npy(d.path / "0_rollout.npy").shape == std::vector<size_t>{4, 4});

  r = run_cli("explain --checkpoint " + q(m.hybrid) + " --method head=0:0 --output " + q(d.path) + images);
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, Contains("block 0 is a global_filter layer, which has no attention map"));
  CHECK(lines_of(r.err).size() == 1);
  r = run_cli("explain --checkpoint " + q(m.hybrid) + " --method head=3:0 --output " + q(d.path) + images);
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("block 3 does not exist; the model has 3 blocks"));
  r = run_cli("explain --checkpoint " + q(m.hybrid) + " --method head=1:2 --output " + q(d.path) + images);
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("head 2 does not exist; the model has 2 heads"));

  r = run_cli("explain --checkpoint " + q(m.filters) + " --output " + q(d.path / "none") + images);
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  CHECK(lines_of(r.err).size() == 1);
  CHECK_THAT(r.err, Contains("no attention block"));
}

TEST_CASE("explain skips a broken image by name and refuses a bad method", "[explain][cli]") {
  const ExplainModels& m = models();
  TempDir d("explain_bad");
  const fs::path good = m.data / "val" / "diag_down" / "0.png", broken = d.path / "broken.png";
  write_file(broken, "this is text, not a PNG");
  CliRun r = run_cli("explain --checkpoint " + q(m.attention) + " --output " + q(d.path / "out") + " " + q(broken) +
                     " " + q(good));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(lines_of(r.out).size() == 1);
  CHECK_THAT(r.out, Contains("0_rollout.png"));
  CHECK(lines_with(r.err, "broken.png").size() == 1);
  CHECK_THAT(r.err, Contains("1 images explained, 1 skipped"));
  CHECK(!fs::exists(d.path / "out" / "broken_rollout.png"));

  // Nothing readable at all: an error, not an empty success.
  r = run_cli("explain --checkpoint " + q(m.attention) + " --output " + q(d.path / "out") + " " + q(broken));
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("none of the 1 image file(s) could be read"));

  r = run_cli("explain --checkpoint " + q(m.attention) + " --method attention --output " + q(d.path / "m") + " " +
              q(good));
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  CHECK(lines_of(r.err).size() == 1);
  CHECK_THAT(r.err, Contains("--method attention: unknown method; use rollout, last-layer or head=L:H"));
  CHECK(!fs::exists(d.path / "m"));  // refused before anything is written

  r = run_cli("explain --help");
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("--method") && Contains("head=L:H") && Contains("Example:") && Contains(".npy"));
}
