// The kernel choice (ops/kernel_choice.h) for the described devices (tests/described_devices.h):
// the table of what each gets (no GPU), README's table "What each device gets" against
// describe(), the overrides a device cannot run, and [gpu]: each described device's kernels run
// on this one (ScopedKernelDevice) against this device's own kernels and the reference model.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "base/error.h"
#include "described_devices.h"
#include "harness.h"
#include "model/vit.h"
#include "model/vit_ref.h"
#include "ops/bias_grad.h"
#include "ops/kernel_choice.h"
#include "ops/layernorm.h"
#include "ops/matmul.h"
#include "ops/softmax.h"

using namespace vkvit;
using namespace vkvit::test;
using Catch::Matchers::Contains;

namespace {

// The part of a describe() line between "op: " and " (reason)".
std::string what_of(const std::string& line) {
  const size_t colon = line.find(": "), paren = line.find(" (");
  return line.substr(colon + 2, paren - colon - 2);
}

// describe()'s lines by op.
std::map<std::string, std::string> whats(const ops::KernelChoice& c) {
  std::map<std::string, std::string> m;
  for (const std::string& line : c.describe()) m[line.substr(0, line.find(": "))] = what_of(line);
  return m;
}

const vk::DeviceInfo& described(const std::string& key) {
  for (const DescribedDevice& d : described_devices())
    if (d.key == key) return d.info;
  throw Error("internal: no described device " + key);
}

// The columns of README's table, in order.
const char* const kTableOps[] = {"matmul", "matmul_f16", "attention", "layernorm", "bias_grad", "elementwise"};

std::string table_row(const DescribedDevice& d) {
  const auto w = whats(ops::choose_kernels(d.info, vk::Tuning{}));
  std::string row = "| " + d.key + " |";
  for (const char* op : kTableOps) row += " " + w.at(op) + " |";
  return row;
}

}  // namespace

TEST_CASE("the kernel choice of each described device", "[kernel_choice]") {
  struct Expected {
    const char* key;
    const char* matmul;
    const char* attention;
    const char* layernorm;
    const char* bias_grad;
    const char* elementwise;
  };
  const char* const tiled64 = "tiled 64x64x16, 256 invocations";
  const char* const gpu_bias = "32 columns x 32 row lanes";
  // CPU drivers with 8-lane subgroups: register-blocked matmul and fused attention (measured);
  // 4-lane subgroups: the kernels without subgroup operations, small tiles. GPUs: 64x64x16 tiles
  // where 256 invocations, 8 KiB of shared memory and whole subgroups fit; LayerNorm at the
  // reported size, pinned where the device can (not Mali-G72: no size control).
  const Expected table[] = {
      {"lavapipe", "register_blocked, 8 invocations, one subgroup of 8, 64-bit loads", "fused, one subgroup of 8",
       "subgroup 8 pinned, 32 invocations", "64 columns x 16 row lanes", "64-bit pairs"},
      {"SwiftShader", "register_blocked, 4 invocations, one subgroup of 4", "unfused", "subgroup 4 pinned, 16 invocations",
       "64 columns x 16 row lanes", "32-bit floats"},
      {"RTX 4090", tiled64, "unfused", "subgroup 32 pinned, 128 invocations", gpu_bias, "64-bit pairs"},
      {"H100", tiled64, "unfused", "subgroup 32 pinned, 128 invocations", gpu_bias, "64-bit pairs"},
      {"RX 7900 XTX wave64", tiled64, "unfused", "subgroup 64 pinned, 256 invocations", gpu_bias, "64-bit pairs"},
      {"RX 7900 XTX wave32", tiled64, "unfused", "subgroup 32 pinned, 128 invocations", gpu_bias, "64-bit pairs"},
      {"Arc A770", tiled64, "unfused", "subgroup 32 pinned, 128 invocations", gpu_bias, "64-bit pairs"},
      {"Apple M2 (MoltenVK)", tiled64, "unfused", "subgroup 32 pinned, 128 invocations", gpu_bias, "64-bit pairs"},
      {"Mali-G72", tiled64, "unfused", "subgroup 4 unpinned, 16 invocations", gpu_bias, "32-bit floats"},
      {"Mali-G710", tiled64, "unfused", "subgroup 16 pinned, 64 invocations", gpu_bias, "64-bit pairs"},
      {"Adreno 740", tiled64, "unfused", "subgroup 64 pinned, 256 invocations", gpu_bias, "32-bit floats"},
  };
  REQUIRE(std::size(table) == described_devices().size());
  for (const Expected& e : table) {
    INFO(e.key);
    const ops::KernelChoice c = ops::choose_kernels(described(e.key), vk::Tuning{});
    const auto w = whats(c);
    CHECK(w.at("matmul") == e.matmul);
    CHECK(w.at("attention") == e.attention);
    CHECK(w.at("layernorm") == e.layernorm);
    CHECK(w.at("bias_grad") == e.bias_grad);
    CHECK(w.at("elementwise") == e.elementwise);
    CHECK(w.at("softmax") == "subgroup reduction");
    CHECK(c.describe().size() == 9);
    CHECK(c.matmul_refused.empty());
    CHECK(c.tile_refused.empty());
    CHECK(c.attention_refused.empty());
  }
  // fp16: the tiled kernel everywhere but lavapipe; fp16 output only with 16-bit storage.
  CHECK(whats(ops::choose_kernels(described("lavapipe"), {})).at("matmul_f16") == "register_blocked, fp16 output");
  CHECK(whats(ops::choose_kernels(described("SwiftShader"), {})).at("matmul_f16") ==
        "tiled, fp32 output only: no storageBuffer16BitAccess");
  CHECK(whats(ops::choose_kernels(described("RTX 4090"), {})).at("matmul_f16") == "tiled, fp16 output");
  // Cooperative matrices are reported, and not used yet.
  CHECK_THAT(ops::choose_kernels(described("H100"), {}).describe().back(), Contains("no cooperative-matrix kernel"));
  CHECK_THAT(ops::choose_kernels(described("Mali-G710"), {}).describe().back(), Contains("not offered"));
}

TEST_CASE("an override the device cannot run is one error for the op that runs it", "[kernel_choice]") {
  vk::Tuning t;
  t.matmul_kernel = "register_blocked";
  // A 4-lane GPU without subgroup-size control cannot promise a workgroup of 4 is one subgroup;
  // SwiftShader (4 lanes, pinnable) runs the 4-lane build.
  const ops::KernelChoice mali = ops::choose_kernels(described("Mali-G72"), t);
  CHECK_THAT(mali.matmul_refused, Contains("VKVIT_MATMUL_KERNEL=register_blocked") && Contains("subgroup size 4"));
  CHECK(ops::choose_kernels(described("lavapipe"), t).matmul_refused.empty());
  CHECK(ops::choose_kernels(described("SwiftShader"), t).matmul_refused.empty());
  CHECK(ops::choose_kernels(described("SwiftShader"), t).matmul.lanes == 4);
  CHECK(mali.attention_refused.empty());

  vk::Tuning fused;
  fused.attention = vk::AttentionPath::fused;
  CHECK_THAT(ops::choose_kernels(described("Mali-G72"), fused).attention_refused,
             Contains("VKVIT_ATTENTION=fused") && Contains("Mali-G72"));
  CHECK(ops::choose_kernels(described("Mali-G72"), fused).matmul_refused.empty());
  CHECK(ops::choose_kernels(described("Mali-G710"), fused).attention.fused);  // 8 lanes in a subgroup of 16

  vk::Tuning tile;
  tile.matmul_tile = vk::MatmulTile{128, 128, 16};  // 1024 invocations
  CHECK_THAT(ops::choose_kernels(described("SwiftShader"), tile).tile_refused,
             Contains("VKVIT_MATMUL_TILE='128x128x16' needs 1024 invocations"));
  const ops::KernelChoice nvidia = ops::choose_kernels(described("RTX 4090"), tile);
  CHECK(nvidia.tile_refused.empty());
  CHECK(nvidia.matmul.tile.bm == 128);
}

TEST_CASE("a refused override fails the op that runs it, and only that op", "[kernel_choice][gpu]") {
  // Described as Mali-G72 (4-lane subgroups that cannot be pinned), VKVIT_MATMUL_KERNEL=
  // register_blocked: the matmul throws the refusal; LayerNorm, which the override does not
  // concern, still runs.
  ScopedKernelDevice mali(described("Mali-G72"));
  ScopedTuning forced([](vk::Tuning& k) { k.matmul_kernel = "register_blocked"; });
  const uint32_t M = 8, D = 16;
  DeviceTensor a(M * D), b(D * D), c(M * D), mean(M), rstd(M), gamma(D), beta(D);
  vk::Recorder rec(ctx());
  CHECK_THAT(error_of([&] { ops::matmul(rec, c.view(), a.view(), b.view(), matmul_shape(M, D, D, false, false)); }),
             Contains("VKVIT_MATMUL_KERNEL=register_blocked: ") && Contains("subgroup size 4"));
  CHECK_NOTHROW(ops::layernorm_forward(rec, c.view(), mean.view(), rstd.view(), a.view(), gamma.view(), beta.view(),
                                       M, D, 1e-5f));
}

TEST_CASE("README's table of what each device gets matches the kernel choice", "[kernel_choice]") {
  // README's row of each described device (its first cell is the device's key) against the row
  // describe() gives; on a mismatch the expected rows are printed, to paste into the table.
  const std::string readme = read_file(std::filesystem::path(VKVIT_SOURCE_DIR) / "README.md");
  std::string expected, found;
  for (const DescribedDevice& d : described_devices()) {
    expected += table_row(d) + "\n";
    for (const std::string& line : lines_of(readme))
      if (line.rfind("| " + d.key + " |", 0) == 0) found += line + "\n";
  }
  CHECK(found == expected);
}

namespace {

using ops::MatmulEpilogue;

// Everything the ops below write, in one list of named outputs, for comparing two runs.
using Outputs = std::vector<std::pair<std::string, std::vector<float>>>;

// One product per epilogue (odd sizes; row_sums with trans_a, as the weight gradient has it).
void run_matmuls(Outputs& out) {
  const uint32_t M = 37, N = 45, K = 29;
  const MatmulEpilogue epilogues[] = {MatmulEpilogue::none,      MatmulEpilogue::gelu,     MatmulEpilogue::add,
                                      MatmulEpilogue::gelu_grad, MatmulEpilogue::row_sums, MatmulEpilogue::gelu_only};
  uint32_t seed = 700;
  for (MatmulEpilogue e : epilogues) {
    const bool row_sums = e == MatmulEpilogue::row_sums;
    ops::MatmulShape s = matmul_shape(M, N, K, row_sums, !row_sums);
    s.epilogue = e;
    s.beta = e == MatmulEpilogue::none ? 1.0f : 0.0f;
    DeviceTensor a(random_floats(M * K, seed)), b(random_floats(K * N, seed + 1)), bias(random_floats(N, seed + 2));
    DeviceTensor c(random_floats(M * N, seed + 3));
    const bool has_aux = e != MatmulEpilogue::none && e != MatmulEpilogue::gelu_only;
    DeviceTensor aux(random_floats(row_sums ? M : M * N, seed + 4));
    vk::Recorder rec(ctx());
    ops::matmul(rec, c.view(), a.view(), b.view(), s, row_sums ? vk::View{} : bias.view(), ops::MatmulKernel::automatic,
                has_aux ? aux.view() : vk::View{});
    rec.submit_and_wait();
    out.push_back({"matmul epilogue " + std::to_string(int(e)), c.read()});
    if (has_aux) out.push_back({"matmul aux " + std::to_string(int(e)), aux.read()});
    seed += 10;
  }
}

void run_row_ops(Outputs& out) {
  const uint32_t M = 50;
  for (uint32_t D : {48u, 15u}) {  // vec4 rows and odd ones
    const std::string d = " D=" + std::to_string(D);
    DeviceTensor in(random_floats(M * D, 800 + D)), gamma(random_floats(D, 801 + D, 0.5f, 1.5f));
    DeviceTensor beta(random_floats(D, 802 + D)), dout(random_floats(M * D, 803 + D));
    DeviceTensor y(M * D), mean(M), rstd(M), din(M * D), dgamma(D), dbeta(D), db(D);
    DeviceTensor scratch(std::max<uint64_t>(ops::layernorm_backward_scratch_floats(ctx(), M, D), 1));
    DeviceTensor probs(M * D), dsoft(M * D);
    vk::Recorder rec(ctx());
    ops::layernorm_forward(rec, y.view(), mean.view(), rstd.view(), in.view(), gamma.view(), beta.view(), M, D, 1e-5f);
    ops::layernorm_backward(rec, din.view(), dgamma.view(), dbeta.view(), mean.view(), rstd.view(), in.view(),
                            dout.view(), gamma.view(), scratch.view(), M, D);
    ops::bias_grad(rec, db.view(), dout.view(), M, D);
    ops::softmax_forward(rec, probs.view(), in.view(), M, D);
    ops::softmax_backward(rec, dsoft.view(), probs.view(), dout.view(), M, D);
    rec.submit_and_wait();
    out.push_back({"layernorm out" + d, y.read()});
    out.push_back({"layernorm din" + d, din.read()});
    out.push_back({"layernorm dgamma" + d, dgamma.read()});
    out.push_back({"layernorm dbeta" + d, dbeta.read()});
    out.push_back({"bias_grad" + d, db.read()});
    out.push_back({"softmax" + d, probs.read()});
    out.push_back({"softmax backward" + d, dsoft.read()});
  }
}

// A small ViT (2 heads of 16: the fused kernels' width; 17 tokens) forward and backward against
// the reference model, with test_vit.cpp's error budget for the logits.
void check_vit_against_reference() {
  model::VitConfig cfg;
  cfg.name = "vit_kernel_choice";
  cfg.image_size = 16, cfg.patch_size = 4, cfg.in_chans = 2, cfg.dim = 32, cfg.depth = 2, cfg.heads = 2;
  cfg.mlp_dim = 40, cfg.num_classes = 5;
  const uint32_t batch = 2;
  model::Vit vit(ctx(), cfg, batch);
  const auto& layout = vit.layout();
  // Every tensor in [-0.5, 0.5), norm weights in [0.5, 1.5), the padding between tensors zero.
  std::vector<float> params(layout.total_floats(), 0.0f);
  uint32_t seed = 900;
  for (const model::ParamInfo& p : layout.params()) {
    const bool norm_weight = p.name.find("norm") != std::string::npos && p.name.find(".weight") != std::string::npos;
    const auto v = random_floats(p.count, ++seed, norm_weight ? 0.5f : -0.5f, norm_weight ? 1.5f : 0.5f);
    std::copy(v.begin(), v.end(), params.begin() + p.offset);
  }
  const auto patches = random_floats(batch * cfg.num_patches() * cfg.patch_dim(), 901);
  const auto dlogits = random_floats(batch * cfg.num_classes, 902);
  std::vector<float> grads0(layout.total_floats(), 0.0f);
  vit.write_params(params);
  ctx().upload(vit.grads_view(), grads0.data(), grads0.size() * 4);
  ctx().upload(vit.patches_input(), patches.data(), patches.size() * 4);
  DeviceTensor d_dlogits(dlogits);
  vk::Recorder rec(ctx());
  vit.forward(rec, batch);
  vit.backward(rec, batch, d_dlogits.view());
  rec.submit_and_wait();
  std::vector<float> logits(batch * cfg.num_classes);
  ctx().download(vit.logits(), logits.data(), logits.size() * 4);

  model::VitRef ref(cfg);
  const auto pd = to_double(params);
  std::vector<double> ref_grads(grads0.size(), 0.0);
  const auto ref_logits = ref.forward(pd, to_double(patches), batch);
  ref.backward(pd, to_double(dlogits), ref_grads);
  require_close(logits, ref_logits, 5e-6, 1e-5, "vit logits");
  // Gradients: twice test_vit.cpp's 5e-6: on SwiftShader one gradient of 16517 (a sum of
  // cancelling terms) lands 6.2e-6 from the reference under every described device's kernels,
  // SwiftShader's own included.
  require_close(vit.read_grads(), ref_grads, 1e-5, 1e-5, "vit gradients");
}

// Why this device cannot run `choice` (empty where it can): the 8-lane kernels without 8-lane
// subgroups here, or a workgroup past this device's limit.
std::string not_runnable_here(const ops::KernelChoice& c) {
  const vk::DeviceInfo& here = ctx().info();
  if (c.matmul.kernel == ops::MatmulKernel::register_blocked || c.attention.fused)
    if (std::string why = ops::eight_lane_unsupported(here, "the register-blocked matmul"); !why.empty())
      return why;
  // LayerNorm's launcher fits its workgroup to this device's limit itself.
  const uint32_t largest = std::max(c.matmul.tile.threads(), c.bias_grad.workgroup_size);
  if (largest > here.max_workgroup_invocations)
    return "a workgroup of " + std::to_string(largest) + " invocations; " + here.name + " allows " +
           std::to_string(here.max_workgroup_invocations);
  return {};
}

// Runs `d`'s kernels here and compares them with this device's own outputs (`own`).
void check_described_here(const DescribedDevice& d, const Outputs& own) {
  ScopedKernelDevice as(d.info);
  const ops::KernelChoice choice = ops::kernel_choice(ctx());
  if (skipped_because(not_runnable_here(choice))) return;
  Outputs theirs;
  run_matmuls(theirs);
  run_row_ops(theirs);
  REQUIRE(theirs.size() == own.size());
  // LayerNorm too: laid out for the described subgroup size, it follows the size this device runs.
  for (size_t i = 0; i < own.size(); ++i)
    require_close(theirs[i].second, to_double(own[i].second), 2e-5, 2e-5, d.key + ": " + own[i].first);
  check_vit_against_reference();
}

}  // namespace

TEST_CASE("each described device's kernels run here and agree with this device's own", "[kernel_choice][gpu]") {
  Outputs own;
  run_matmuls(own);
  run_row_ops(own);
  for (const DescribedDevice& d : described_devices()) {
    DYNAMIC_SECTION(d.key) { check_described_here(d, own); }
  }
}

TEST_CASE("vkvit devices prints the selected device's kernel choice", "[kernel_choice][cli][gpu]") {
  const CliRun r = run_cli("devices");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("  kernels:\n"));
  for (const std::string& line : ops::choose_kernels(ctx().info(), vk::Tuning::from_env()).describe())
    CHECK_THAT(r.out, Contains("    " + line + "\n"));
}
