// vkvit: train and run Vision Transformers on any Vulkan GPU.
//
// Exit codes (scripts and job schedulers tell failures apart by them; the line on stderr says more):
//   0    success
//   1    any other error: a bad file, config key, flag value or dataset; the line names it
//   3    training diverged: more than train.max_nonfinite_steps steps in a row had a non-finite
//        loss or gradient norm; the line names the last good checkpoint
//   4    out of device memory: the line names the buffer, its size, the device's limits and, for
//        `train`, the largest batch that fits
//   5    the GPU was lost (VK_ERROR_DEVICE_LOST); for `train` the line names the last good
//        checkpoint and the command that resumes from it
//   100+ command-line syntax errors (CLI11's codes; 0 for --help)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "base/error.h"
#include "base/log.h"
#include "cli/commands.h"
#include "dist/comm.h"

namespace vkvit::cli {

vk::ContextOptions GlobalOptions::context_options() const {
  vk::ContextOptions o = vk::ContextOptions::from_env();
  if (device >= 0) o.device = device;
  if (validation) o.validation = true;
  if (profile) o.profile = true;
  // Several ranks on one machine: each takes its own GPU (by local rank) unless told which.
  const dist::Comm& world = dist::Comm::world();
  if (world.distributed()) o.local_rank = world.local_rank();
  return o;
}

}  // namespace vkvit::cli

namespace {
constexpr int kExitError = 1;
constexpr int kExitDiverged = 3;
constexpr int kExitOutOfMemory = 4;
constexpr int kExitDeviceLost = 5;

// One rank's failure ends the whole run: the line names the rank, then every rank is stopped
// (MPI_Abort) instead of the others waiting forever in their next collective.
int fail(const std::exception& e, int code) {
  const vkvit::dist::Comm& world = vkvit::dist::Comm::world();
  if (!world.distributed()) {
    std::fprintf(stderr, "vkvit: error: %s\n", e.what());
    return code;
  }
  std::fprintf(stderr, "vkvit: error: %s: %s\n", world.describe().c_str(), e.what());
  std::fflush(stderr);
  vkvit::dist::Comm::world().abort(code);
}

// Rank 0 speaks for the run; the others only warn (a file they skip), naming themselves.
void configure_ranks() {
  using namespace vkvit;
  const dist::Comm& world = dist::Comm::world();
  if (!world.distributed()) return;
  set_log_prefix(world.describe() + ": ");
  if (!world.is_root() && log_level() > LogLevel::warn) set_log_level(LogLevel::warn);
  // Ranks sharing a machine may share its CPU driver (lavapipe, e.g. tests on a machine without
  // a GPU): its thread pool sizes itself to every core, and N such pools (plus MPI waiting for
  // the slowest rank) on the same cores ran 20x slower than one process here. Each rank gets
  // its share of the cores instead; other drivers ignore the variable; a value set by the user wins.
  if (world.local_size() > 1 && !std::getenv("LP_NUM_THREADS")) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    setenv("LP_NUM_THREADS", std::to_string(std::max(1u, cores / unsigned(world.local_size()))).c_str(), 0);
  }
}

void add_global_options(CLI::App& app, vkvit::cli::GlobalOptions& global) {
  app.add_option("--device", global.device, "Vulkan device index (see `vkvit devices`); env VKVIT_DEVICE")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--validation", global.validation, "Load the Khronos validation layer; env VKVIT_VALIDATION=1");
  app.add_flag("--profile", global.profile, "Print per-op GPU time at exit; env VKVIT_PROFILE=1");
}

void add_commands(CLI::App& app, vkvit::cli::GlobalOptions& global) {
  using namespace vkvit;
  cli::add_devices_command(app, global);
#ifndef VKVIT_BENCH_ONLY  // vkvit-bench (src/CMakeLists.txt): devices and bench, without OpenCV
  cli::add_train_command(app, global);
  cli::add_eval_command(app, global);
  cli::add_predict_command(app, global);
  cli::add_convert_command(app, global);
  cli::add_explain_command(app, global);
  cli::add_info_command(app, global);
#endif
  cli::add_bench_command(app, global);
  // Only train and eval split their work across the ranks of a data-parallel launch; the others
  // would print or write the same results once per rank.
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    const std::string name = sub->get_name();
    if (name != "train" && name != "eval")
      sub->parse_complete_callback([name] { dist::require_single_process(name); });
  }
}

// Parses the command line and runs the chosen command; returns the exit code (see the top of the file).
int parse_and_run(CLI::App& app, int argc, char** argv) {
  using namespace vkvit;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    dist::Comm::finalize();
    return code;
  } catch (const TrainingDivergedError& e) {
    return fail(e, kExitDiverged);
  } catch (const OutOfMemoryError& e) {
    return fail(e, kExitOutOfMemory);
  } catch (const DeviceLostError& e) {
    return fail(e, kExitDeviceLost);
  } catch (const std::exception& e) {
    return fail(e, kExitError);
  }
  dist::Comm::finalize();
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    vkvit::dist::Comm::init(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vkvit: error: %s\n", e.what());
    return kExitError;
  }
  configure_ranks();
  CLI::App app{"vkvit: Vision Transformers on Vulkan compute shaders (AMD, Intel, NVIDIA, CPU)"};
  app.require_subcommand(1);
#ifndef VKVIT_BENCH_ONLY
  app.footer("Examples (each subcommand has --help):\n"
             "  vkvit devices\n"
             "  vkvit train --config configs/fmnist_vit_tiny.yaml --data-dir datasets/fashion-mnist\n"
             "  vkvit eval --checkpoint runs/RUN/best.safetensors --data-dir datasets/fashion-mnist/val\n"
             "  vkvit info runs/RUN/last.safetensors");
#else
  app.footer("vkvit-bench: vkvit's devices and bench commands alone (each has --help), e.g.\n"
             "  vkvit-bench bench train-step --preset vit_small_patch16_224 -b 128");
#endif
  vkvit::cli::GlobalOptions global;
  add_global_options(app, global);
  add_commands(app, global);
  return parse_and_run(app, argc, argv);
}
