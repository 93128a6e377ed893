// `vkvit bench`: measured GPU throughput. Modes are added as their ops land.
//   matmul  GFLOP/s of ops::matmul at 1024^3, at the ViT-Tiny linear-layer shapes (forward
//           Y = X W^T and both backward products) and at the Fashion-MNIST tiny model's shapes
//           (fm.*: its linear layers and batched attention products), against the naive kernel
//           in the same run. --dtype f16: ops::matmul_f16 (fp16 A and B, fp32 accumulation and
//           output) on the same shapes, against the fp32 kernel in the same run.
//   attention  fused vs unfused multi-head attention (ops/attention.h), forward and forward +
//           backward, at the Fashion-MNIST, ViT-Ti and ViT-S shapes, timed in the same run.
//   loader  the data loader alone, on the CPU (bench_loader.cpp).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "cli/bench_common.h"
#include "cli/commands.h"
#include "model/vit_config.h"
#include "ops/attention.h"
#include "ops/cast.h"
#include "ops/matmul.h"
#include "ops/matmul_f16.h"
#include "vk/memory.h"
#include "vk/profiler.h"
#include "vk/recorder.h"

namespace vkvit::cli {

namespace {

struct MatmulBenchOptions {
  int repeat = 5;
  int naive_repeat = 3;
  uint32_t naive_rows = 128;
  uint32_t tokens = 6400;
  std::string kernel = "auto";
  std::vector<std::string> only;  // shape names; empty = all
  std::string dtype = "f32";      // f16: ops::matmul_f16, with the fp32 kernel as the baseline
};

struct BenchShape {
  std::string name;
  uint32_t M, N, K;
  bool trans_a, trans_b;
  // Batched products (attention): batch entries, inner batch count and operand layouts as
  // ops::matmul takes them; batch = 1 with dense layouts for the linear layers.
  uint32_t batch = 1, batch_inner = 1;
  ops::MatmulOperand a{}, b{}, c{};
  float beta = 0.0f;
};

// ViT-Tiny (D = 192, MLP 768) linear layers over `tokens` rows. Forward Y = X W^T is NT; the
// backward products are dX = dY W (NN) and dW = dY^T X (TN).
std::vector<BenchShape> matmul_shapes(uint32_t tokens) {
  std::vector<BenchShape> shapes{{"square", 1024, 1024, 1024, false, false}};
  struct Layer {
    const char* name;
    uint32_t out, in;
  };
  const Layer layers[] = {{"qkv", 576, 192}, {"proj", 192, 192}, {"fc1", 768, 192}, {"fc2", 192, 768}};
  for (const Layer& l : layers) shapes.push_back({std::string(l.name) + ".fwd", tokens, l.out, l.in, false, true});
  for (const Layer& l : layers) shapes.push_back({std::string(l.name) + ".dX", tokens, l.in, l.out, false, false});
  for (const Layer& l : layers) shapes.push_back({std::string(l.name) + ".dW", l.out, l.in, tokens, true, false});
  return shapes;
}

// The demo model (preset vit_fmnist_tiny, the shape of configs/fmnist_vit_tiny.yaml) at the demo's
// batch of 64: its linear layers over all token rows, prefixed "fm.", and the six attention
// products batched over B * H heads with the layouts attention.cpp uses (Q, K, V read out of the
// fused (B, N, 3D) qkv activation, P and dP dense (B, H, N, N)). Taken from the preset so the
// shapes follow the demo when its recipe changes.
std::vector<BenchShape> fmnist_shapes() {
  const model::VitConfig m = model::VitConfig::preset("vit_fmnist_tiny");
  const uint32_t B = 64, N = uint32_t(m.tokens()), D = uint32_t(m.dim), H = uint32_t(m.heads),
                 F = uint32_t(m.mlp_dim), tokens = B * N;
  std::vector<BenchShape> shapes;
  struct Layer {
    const char* name;
    uint32_t out, in;
  };
  const Layer layers[] = {{"qkv", 3 * D, D}, {"proj", D, D}, {"fc1", F, D}, {"fc2", D, F}};
  for (const Layer& l : layers) shapes.push_back({std::string("fm.") + l.name + ".fwd", tokens, l.out, l.in, false, true});
  for (const Layer& l : layers) shapes.push_back({std::string("fm.") + l.name + ".dX", tokens, l.in, l.out, false, false});
  for (const Layer& l : layers) shapes.push_back({std::string("fm.") + l.name + ".dW", l.out, l.in, tokens, true, false});
  const ops::AttentionProducts p = ops::attention_products(B, N, D, H);
  auto attn = [&](const char* name, const ops::MatmulShape& m) {
    BenchShape s{std::string("fm.attn.") + name, m.M, m.N, m.K, m.trans_a, m.trans_b};
    s.batch = m.batch;
    s.batch_inner = m.batch_inner;
    s.a = m.a;
    s.b = m.b;
    s.c = m.c;
    s.beta = m.beta;
    shapes.push_back(s);
  };
  attn("qk", p.scores);
  attn("pv", p.pv);
  attn("dv", p.dv);
  attn("dp", p.dp);
  attn("dq", p.dq);
  attn("dk", p.dk);
  return shapes;
}

// Floats an operand of `rows` x `cols` (row stride ld, 0 = cols) spans over a shape's batch.
uint64_t operand_floats(const BenchShape& s, uint32_t rows, uint32_t cols, const ops::MatmulOperand& op) {
  const uint32_t ld = op.ld ? op.ld : cols;
  const uint64_t outer = s.batch / s.batch_inner - 1, inner = s.batch_inner - 1;
  return outer * op.stride_outer + inner * op.stride_inner + uint64_t(rows - 1) * ld + cols;
}

const char* transposes(const BenchShape& s) {
  static const char* names[] = {"NN", "NT", "TN", "TT"};
  return names[(s.trans_a ? 2 : 0) + (s.trans_b ? 1 : 0)];
}

// time_recording of one matmul of shape `s` with M rows on random operands.
// f16: A and B in fp16 (ops::matmul_f16), C fp32.
Timing time_matmul(vk::Context& ctx, const BenchShape& s, uint32_t M, ops::MatmulKernel kernel, int repeat,
                   bool f16 = false) {
  const uint64_t a_floats = operand_floats(s, s.trans_a ? s.K : M, s.trans_a ? M : s.K, s.a);
  const uint64_t b_floats = operand_floats(s, s.trans_b ? s.N : s.K, s.trans_b ? s.K : s.N, s.b);
  const uint64_t c_floats = operand_floats(s, M, s.N, s.c);
  const uint64_t a_bytes = f16 ? ops::half_bytes(a_floats) : a_floats * 4;
  const uint64_t b_bytes = f16 ? ops::half_bytes(b_floats) : b_floats * 4;
  vk::Buffer a(ctx, a_bytes, vk::MemoryKind::device, "bench A");  // (M, K) or (K, M)
  vk::Buffer b(ctx, b_bytes, vk::MemoryKind::device, "bench B");  // (K, N) or (N, K)
  vk::Buffer c(ctx, c_floats * 4, vk::MemoryKind::device, "bench C");  // (M, N)
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (vk::Buffer* buf : {&a, &b, &c}) {  // C too: beta = 1 shapes read it
    const bool half = f16 && buf != &c;
    std::vector<float> data(buf->size() / (half ? 2 : 4));
    for (float& v : data) v = dist(rng);
    if (half) ctx.upload(buf->view(), ops::to_half(data).data(), buf->size());
    else ctx.upload(buf->view(), data.data(), buf->size());
  }
  ops::MatmulShape shape;
  shape.M = M;
  shape.N = s.N;
  shape.K = s.K;
  shape.trans_a = s.trans_a;
  shape.trans_b = s.trans_b;
  shape.batch = s.batch;
  shape.batch_inner = s.batch_inner;
  shape.a = s.a;
  shape.b = s.b;
  shape.c = s.c;
  shape.beta = s.beta;

  return time_recording(ctx, repeat, [&](vk::Recorder& rec) {
    if (f16) ops::matmul_f16(rec, c.view(), a.view(), b.view(), shape);
    else ops::matmul(rec, c.view(), a.view(), b.view(), shape, {}, kernel);
  });
}

std::vector<BenchShape> all_matmul_shapes(const MatmulBenchOptions& o) {
  std::vector<BenchShape> shapes = matmul_shapes(o.tokens);
  for (const BenchShape& s : fmnist_shapes()) shapes.push_back(s);
  return shapes;
}

// --dtype f16: ops::matmul_f16 and the fp32 kernel on the same shapes, timed in the same run.
void run_matmul_f16_bench(vk::Context& ctx, const MatmulBenchOptions& o, ops::MatmulKernel kernel) {
  const vk::DeviceInfo& info = ctx.info();
  std::printf("# vkvit bench matmul --dtype f16\n");
  std::printf("# device: %s (%s %s)\n", info.name.c_str(), info.driver_name.c_str(), info.driver_version.c_str());
  std::printf("# f16 = ops::matmul_f16 (fp16 A and B, fp32 accumulation and C); f32 = the %s kernel, same run\n",
              ops::matmul_kernel_name(kernel));
  std::printf("# FLOPs = 2*M*N*K per product; GFLOP/s = FLOPs / median time of %d runs after 1 warm-up (%s)\n",
              o.repeat, info.timestamps ? "GPU timestamps" : "wall clock of submit+wait");
  std::printf("# GF/s/core = FLOPs / process CPU time (steadier than wall clock on a shared machine)\n");
  std::printf("%-13s %-3s %6s %6s %6s %5s %9s %9s %11s %11s %8s %8s\n", "shape", "op", "M", "N", "K", "batch",
              "f16_ms", "f16_GF/s", "f16_GF/s/c", "f32_GF/s/c", "wall_x", "cpu_x");
  std::fflush(stdout);
  for (const BenchShape& s : all_matmul_shapes(o)) {
    if (!o.only.empty() && std::find(o.only.begin(), o.only.end(), s.name) == o.only.end()) continue;
    const double flops = 2.0 * s.M * s.N * s.K * s.batch;
    const Timing h = time_matmul(ctx, s, s.M, kernel, o.repeat, true);
    const Timing f = time_matmul(ctx, s, s.M, kernel, o.repeat, false);
    std::printf("%-13s %-3s %6u %6u %6u %5u %9.3f %9.2f %11.2f %11.2f %7.2fx %7.2fx\n", s.name.c_str(), transposes(s),
                s.M, s.N, s.K, s.batch, h.ms, flops / (h.ms * 1e6), flops / (h.cpu_ms * 1e6),
                flops / (f.cpu_ms * 1e6), f.ms / h.ms, f.cpu_ms / h.cpu_ms);
    std::fflush(stdout);
  }
  std::printf("# wall_x, cpu_x: fp32 time / fp16 time (> 1: fp16 is faster)\n");
}

void run_matmul_bench(const GlobalOptions& global, const MatmulBenchOptions& o) {
  vk::ContextOptions copts = global.context_options();
  copts.profile = true;  // per-dispatch timestamps
  vk::Context ctx(copts);
  const vk::DeviceInfo& info = ctx.info();
  ops::MatmulKernel kernel = ops::parse_matmul_kernel(o.kernel);
  if (kernel == ops::MatmulKernel::automatic) kernel = ops::matmul_kernel_for(info, ctx.tuning());
  const bool gpu_clock = info.timestamps;
  if (o.dtype == "f16") {
    run_matmul_f16_bench(ctx, o, kernel);
    return;
  }

  std::printf("# vkvit bench matmul\n");
  std::printf("# device: %s (%s %s)\n", info.name.c_str(), info.driver_name.c_str(), info.driver_version.c_str());
  std::printf("# kernel: %s; naive = shaders/matmul_naive.comp in the same run\n", ops::matmul_kernel_name(kernel));
  std::printf("# FLOPs = 2*M*N*K per product; GFLOP/s = FLOPs / median time of %d runs after 1 warm-up (%s)\n",
              o.repeat, gpu_clock ? "GPU timestamps" : "wall clock of submit+wait");
  std::printf("# naive: median of %d runs on min(M, %u) rows, time scaled by M / rows\n", o.naive_repeat,
              o.naive_rows);
  std::printf("# cpu_ms: CPU time of this process per run (on a CPU driver, all its worker threads): on a\n"
              "#   shared machine GFLOP/s per core = FLOPs / cpu_ms is steadier than the wall-clock figure\n");
  std::printf("%-13s %-3s %6s %6s %6s %5s %10s %9s %10s %11s %11s %8s\n", "shape", "op", "M", "N", "K", "batch", "ms", "GFLOP/s",
              "cpu_ms", "GF/s/core", "naive_GF/s", "speedup");
  std::fflush(stdout);
  std::vector<BenchShape> shapes = matmul_shapes(o.tokens);
  for (const BenchShape& s : fmnist_shapes()) shapes.push_back(s);
  for (const BenchShape& s : shapes) {
    if (!o.only.empty() && std::find(o.only.begin(), o.only.end(), s.name) == o.only.end()) continue;
    const double flops = 2.0 * s.M * s.N * s.K * s.batch;
    const Timing t = time_matmul(ctx, s, s.M, kernel, o.repeat);
    const uint32_t naive_m = std::min(s.M, o.naive_rows);
    double naive_ms = 0;
    if (o.naive_repeat > 0)
      naive_ms = time_matmul(ctx, s, naive_m, ops::MatmulKernel::naive, o.naive_repeat).ms * s.M / naive_m;
    const double gflops = flops / (t.ms * 1e6);
    const double naive_gflops = naive_ms > 0 ? flops / (naive_ms * 1e6) : 0.0;
    std::printf("%-13s %-3s %6u %6u %6u %5u %10.3f %9.2f %10.2f %11.2f %11.2f %7.1fx\n", s.name.c_str(), transposes(s),
                s.M, s.N, s.K, s.batch, t.ms, gflops, t.cpu_ms, flops / (t.cpu_ms * 1e6), naive_gflops,
                naive_ms > 0 ? naive_ms / t.ms : 0.0);
    std::fflush(stdout);
  }
}

struct AttentionBenchOptions {
  int repeat = 5;
  std::vector<std::string> only;  // shape names; empty = all
};

struct AttentionShape {
  const char* name;
  uint32_t B, N, D, H;
};

void run_attention_bench(const GlobalOptions& global, const AttentionBenchOptions& o) {
  vk::ContextOptions copts = global.context_options();
  copts.profile = true;
  vk::Context ctx(copts);
  const vk::DeviceInfo& info = ctx.info();
  std::printf("# vkvit bench attention\n# device: %s (%s %s)\n", info.name.c_str(), info.driver_name.c_str(),
              info.driver_version.c_str());
  std::printf("# time = median of %d runs after 1 warm-up (%s); f+b = forward + backward\n", o.repeat,
              info.timestamps ? "GPU timestamps" : "wall clock");
  std::printf("%-8s %4s %4s %4s %3s %12s %12s %12s %12s %9s %9s\n", "shape", "B", "N", "D", "H", "unfused_fwd",
              "fused_fwd", "unfused_f+b", "fused_f+b", "fwd_x", "f+b_x");
  // demo: configs/fmnist_vit_tiny.yaml (5 tokens of width 128, batch 64); fmnist: its older 7 px
  // patch version (17 tokens of width 64, batch 128).
  const AttentionShape shapes[] = {{"demo", 64, 5, 128, 4}, {"fmnist", 128, 17, 64, 4}, {"vit_ti", 8, 197, 192, 3}, {"vit_s", 8, 197, 384, 6}};
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (const AttentionShape& s : shapes) {
    if (!o.only.empty() && std::find(o.only.begin(), o.only.end(), s.name) == o.only.end()) continue;
    if (!ops::attention_fused_supported(s.D, s.H)) continue;
    const uint64_t qkv_n = uint64_t(s.B) * s.N * 3 * s.D, out_n = uint64_t(s.B) * s.N * s.D;
    const uint64_t probs_n = uint64_t(s.B) * s.H * s.N * s.N, rows_n = uint64_t(s.B) * s.H * s.N;
    auto buffer = [&](uint64_t floats, const char* name) {
      auto b = std::make_unique<vk::Buffer>(ctx, floats * 4, vk::MemoryKind::device, name);
      std::vector<float> data(floats);
      for (float& v : data) v = dist(rng);
      ctx.upload(b->view(), data.data(), floats * 4);
      return b;
    };
    const auto qkv = buffer(qkv_n, "bench qkv"), out = buffer(out_n, "bench out"), dout = buffer(out_n, "bench dout");
    const auto dqkv = buffer(qkv_n, "bench dqkv"), probs = buffer(probs_n, "bench probs");
    const auto scratch = buffer(probs_n, "bench dP"), lse = buffer(rows_n, "bench lse"), delta = buffer(rows_n, "bench delta");
    auto unfused_fwd = [&](vk::Recorder& rec) {
      ops::attention_forward(rec, out->view(), probs->view(), qkv->view(), s.B, s.N, s.D, s.H);
    };
    auto fused_fwd = [&](vk::Recorder& rec) {
      ops::attention_fused_forward(rec, out->view(), lse->view(), qkv->view(), s.B, s.N, s.D, s.H);
    };
    auto unfused_both = [&](vk::Recorder& rec) {
      unfused_fwd(rec);
      rec.fill(dqkv->view(), 0.0f);  // the model zeroes dqkv before the unfused backward too
      ops::attention_backward(rec, dqkv->view(), scratch->view(), probs->view(), qkv->view(), dout->view(), s.B, s.N, s.D,
                              s.H);
    };
    auto fused_both = [&](vk::Recorder& rec) {
      fused_fwd(rec);
      ops::attention_fused_backward(rec, dqkv->view(), delta->view(), lse->view(), qkv->view(), out->view(), dout->view(),
                                    s.B, s.N, s.D, s.H);
    };
    const double uf = time_recording(ctx, o.repeat, unfused_fwd).ms, ff = time_recording(ctx, o.repeat, fused_fwd).ms;
    const double ub = time_recording(ctx, o.repeat, unfused_both).ms, fb = time_recording(ctx, o.repeat, fused_both).ms;
    std::printf("%-8s %4u %4u %4u %3u %9.2f ms %9.2f ms %9.2f ms %9.2f ms %8.2fx %8.2fx\n", s.name, s.B, s.N, s.D, s.H,
                uf, ff, ub, fb, uf / ff, ub / fb);
    std::fflush(stdout);
  }
  std::printf("# fwd_x, f+b_x: unfused time / fused time (> 1: fused is faster)\n");
}

}  // namespace

void add_bench_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("bench", "Measure kernel throughput on the chosen device");
  cmd->require_subcommand(1);
  cmd->footer("Examples:\n"
              "  vkvit bench matmul\n"
              "  vkvit bench train-step --config configs/fmnist_vit_tiny.yaml\n"
              "  vkvit --device 1 bench attention");

  auto opts = std::make_shared<MatmulBenchOptions>();
  auto* mm = cmd->add_subcommand("matmul", "GFLOP/s of matmul at 1024^3 and the ViT-Tiny shapes, vs the naive kernel");
  mm->add_option("--repeat", opts->repeat, "Timed runs per shape (median reported)")->check(CLI::PositiveNumber);
  mm->add_option("--kernel", opts->kernel, "Kernel: auto, register_blocked (or lavapipe), tiled or naive")
      ->check(CLI::IsMember({"auto", "register_blocked", "lavapipe", "tiled", "naive"}));
  mm->add_option("--naive-repeat", opts->naive_repeat, "Timed runs of the naive baseline (0 skips it)")
      ->check(CLI::NonNegativeNumber);
  mm->add_option("--naive-rows", opts->naive_rows, "Rows of M the naive baseline runs on (then scaled)")
      ->check(CLI::PositiveNumber);
  mm->add_option("--tokens", opts->tokens, "Token rows of the ViT shapes (batch * tokens)")->check(CLI::PositiveNumber);
  mm->add_option("--dtype", opts->dtype, "f32, or f16: ops::matmul_f16 against the fp32 kernel in the same run")
      ->check(CLI::IsMember({"f32", "f16"}));
  mm->add_option("--only", opts->only, "Shapes to run by name (square, qkv.fwd, fc2.dW, fm.qkv.fwd, fm.attn.qk, ...)")->delimiter(',');
  mm->footer("Examples:\n"
             "  vkvit bench matmul\n"
             "  vkvit bench matmul --kernel tiled --only square,qkv.fwd --repeat 10\n"
             "  vkvit bench matmul --dtype f16 --naive-repeat 0");
  mm->callback([&global, opts] { run_matmul_bench(global, *opts); });

  auto aopts = std::make_shared<AttentionBenchOptions>();
  auto* at = cmd->add_subcommand("attention", "Fused vs unfused attention, forward and forward+backward");
  at->add_option("--repeat", aopts->repeat, "Timed runs per shape (median reported)")->check(CLI::PositiveNumber);
  at->add_option("--only", aopts->only, "Shapes to run by name (demo, fmnist, vit_ti, vit_s)")->delimiter(',');
  at->footer("Examples:\n"
             "  vkvit bench attention\n"
             "  vkvit bench attention --only fmnist,vit_ti --repeat 5");
  at->callback([&global, aopts] { run_attention_bench(global, *aopts); });

  add_model_bench_commands(cmd, global);  // train-step, infer: whole-model timings
  add_mixer_bench_command(cmd, global);   // mixer: attention vs global filter
#ifndef VKVIT_BENCH_ONLY  // vkvit-bench carries no OpenCV
  add_loader_bench_command(cmd);          // loader: the data path alone
#endif
}

}  // namespace vkvit::cli
