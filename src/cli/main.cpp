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
#include <cstdio>

#include "cli/commands.h"
#include "vk/error.h"

namespace vkvit::cli {

vk::ContextOptions GlobalOptions::context_options() const {
  vk::ContextOptions o = vk::ContextOptions::from_env();
  if (device >= 0) o.device = device;
  if (validation) o.validation = true;
  if (profile) o.profile = true;
  return o;
}

}  // namespace vkvit::cli

namespace {
constexpr int kExitError = 1;
constexpr int kExitDiverged = 3;
constexpr int kExitOutOfMemory = 4;
constexpr int kExitDeviceLost = 5;

int fail(const std::exception& e, int code) {
  std::fprintf(stderr, "vkvit: error: %s\n", e.what());
  return code;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace vkvit;
  CLI::App app{"vkvit: Vision Transformers on Vulkan compute shaders (AMD, Intel, NVIDIA, CPU)"};
  app.require_subcommand(1);
  cli::GlobalOptions global;
  app.add_option("--device", global.device, "Vulkan device index (see `vkvit devices`); env VKVIT_DEVICE")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--validation", global.validation, "Load the Khronos validation layer; env VKVIT_VALIDATION=1");
  app.add_flag("--profile", global.profile, "Print per-op GPU time at exit; env VKVIT_PROFILE=1");

  cli::add_devices_command(app, global);
  cli::add_train_command(app, global);
  cli::add_eval_command(app, global);
  cli::add_predict_command(app, global);
  cli::add_convert_command(app, global);
  cli::add_bench_command(app, global);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const TrainingDivergedError& e) {
    return fail(e, kExitDiverged);
  } catch (const OutOfMemoryError& e) {
    return fail(e, kExitOutOfMemory);
  } catch (const DeviceLostError& e) {
    return fail(e, kExitDeviceLost);
  } catch (const std::exception& e) {
    return fail(e, kExitError);
  }
  return 0;
}
