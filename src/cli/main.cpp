// vkvit: train and run Vision Transformers on any Vulkan GPU.
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
  } catch (const Error& e) {
    std::fprintf(stderr, "vkvit: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vkvit: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
