// `vkvit bench mixer`: one token mixer's forward and forward+backward, attention vs global
// filter, as the patch grid grows: attention's cost grows with the square of the token count
// (B * H * N^2 scores), the global filter's with N log N (two 2D FFTs per channel). Both run on
// the same random tokens of the same width; the MLP and LayerNorms of a block are the same for
// both mixers and are not timed.
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "cli/bench_common.h"
#include "cli/commands.h"
#include "model/global_filter.h"
#include "model/token_mixer.h"
#include "vk/memory.h"

namespace vkvit::cli {

namespace {

struct MixerBenchOptions {
  std::vector<int> grids{7, 14, 28, 56};
  int dim = 192, heads = 3, batch = 4, repeat = 3;
};

struct MixerTiming {
  Timing forward, train;  // train = forward + backward
};

MixerTiming time_mixer(vk::Context& ctx, const model::VitConfig& cfg, uint32_t batch, int repeat) {
  model::ParamLayout layout;
  model::declare_mixer_params(layout, "blocks.0.", cfg, 0);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-0.1f, 0.1f);
  auto upload_random = [&](const vk::View& v) {
    std::vector<float> data(v.size / 4);
    for (float& x : data) x = dist(rng);
    ctx.upload(v, data.data(), v.size);
  };
  vk::Buffer params(ctx, layout.total_floats() * 4, vk::MemoryKind::device, "bench mixer parameters");
  vk::Buffer grads(ctx, layout.total_floats() * 4, vk::MemoryKind::device, "bench mixer gradients");
  upload_random(params.view());
  auto mixer = model::make_token_mixer(ctx, model::MixerSetup{cfg, layout, "blocks.0.", params.view(), grads.view(), batch,
                                                              0, std::make_shared<model::GlobalFilterPlans>(ctx)});
  model::ActivationAlloc count(ctx, nullptr);
  mixer->allocate(count);
  vk::Arena arena(ctx, "bench mixer activations", count.bytes());
  model::ActivationAlloc real(ctx, &arena);
  mixer->allocate(real);
  const uint64_t tokens = uint64_t(batch) * cfg.tokens() * cfg.dim * 4;
  vk::Buffer in(ctx, tokens, vk::MemoryKind::device, "bench mixer input");
  vk::Buffer out(ctx, tokens, vk::MemoryKind::device, "bench mixer output");
  vk::Buffer dout(ctx, tokens, vk::MemoryKind::device, "bench mixer output gradient");
  vk::Buffer din(ctx, tokens, vk::MemoryKind::device, "bench mixer input gradient");
  upload_random(in.view());
  upload_random(dout.view());
  MixerTiming t;
  t.forward = time_recording(ctx, repeat, [&](vk::Recorder& rec) { mixer->forward(rec, out.view(), in.view(), batch, vk::View{}); });
  t.train = time_recording(ctx, repeat, [&](vk::Recorder& rec) {
    mixer->forward(rec, out.view(), in.view(), batch, vk::View{});
    mixer->backward(rec, din.view(), dout.view(), in.view(), batch);
  });
  return t;
}

void run_mixer_bench(const GlobalOptions& global, const MixerBenchOptions& o) {
  vk::ContextOptions copts = global.context_options();
  copts.profile = true;  // per-dispatch timestamps
  vk::Context ctx(copts);
  std::printf("# vkvit bench mixer\n# device: %s\n", ctx.info().name.c_str());
  std::printf("# one token mixer, width %d (attention: %d heads), batch %d, median of %d after 1 warm-up;\n"
              "# ms from GPU timestamps (CPU ms in brackets: process CPU time, steadier on a shared CPU driver)\n",
              o.dim, o.heads, o.batch, o.repeat);
  std::printf("%-6s %7s %22s %22s %22s %22s %9s %9s\n", "grid", "tokens", "attention fwd ms", "attention fwd+bwd ms",
              "filter fwd ms", "filter fwd+bwd ms", "fwd x", "train x");
  for (int g : o.grids) {
    model::VitConfig cfg;
    cfg.name = "bench_mixer";
    cfg.patch_size = 16, cfg.image_size = 16 * g, cfg.dim = o.dim, cfg.heads = o.heads, cfg.depth = 1;
    cfg.pool = "mean";
    cfg.validate();
    cfg.mixer = "attention";
    const MixerTiming att = time_mixer(ctx, cfg, o.batch, o.repeat);
    cfg.mixer = "global_filter";
    const MixerTiming gf = time_mixer(ctx, cfg, o.batch, o.repeat);
    auto cell = [](const Timing& t) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.2f (%.0f)", t.ms, t.cpu_ms);
      return std::string(buf);
    };
    std::printf("%-6s %7d %22s %22s %22s %22s %8.2fx %8.2fx\n", (std::to_string(g) + "x" + std::to_string(g)).c_str(),
                cfg.tokens(), cell(att.forward).c_str(), cell(att.train).c_str(), cell(gf.forward).c_str(),
                cell(gf.train).c_str(), att.forward.ms / gf.forward.ms, att.train.ms / gf.train.ms);
    std::printf("RESULT impl=vkvit mode=mixer grid=%d tokens=%d dim=%d batch=%d attention_fwd_ms=%.3f "
                "attention_train_ms=%.3f filter_fwd_ms=%.3f filter_train_ms=%.3f\n",
                g, cfg.tokens(), o.dim, o.batch, att.forward.ms, att.train.ms, gf.forward.ms, gf.train.ms);
    std::fflush(stdout);
  }
  std::printf("# fwd x, train x: attention time / global-filter time (above 1: the filter is faster)\n");
}

}  // namespace

void add_mixer_bench_command(CLI::App* bench, GlobalOptions& global) {
  auto o = std::make_shared<MixerBenchOptions>();
  auto* cmd = bench->add_subcommand("mixer", "Attention vs global filter: one mixer's time as the patch grid grows");
  cmd->add_option("--grids", o->grids, "Patch grid sides (7 = 7x7 patches)")->delimiter(',')->capture_default_str();
  cmd->add_option("--dim", o->dim, "Token width")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--heads", o->heads, "Attention heads")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("-b,--batch", o->batch, "Images per batch")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--repeat", o->repeat, "Timed runs (median reported)")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->footer("Example:\n  vkvit bench mixer --grids 7,14,28 --dim 192 -b 4");
  cmd->callback([&global, o] { run_mixer_bench(global, *o); });
}

}  // namespace vkvit::cli
