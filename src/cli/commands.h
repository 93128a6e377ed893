// Subcommands of the vkvit CLI: each registers itself on the app in its own file.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "vk/context.h"

namespace vkvit::cli {

// Flags every subcommand shares.
struct GlobalOptions {
  int device = -1;
  bool validation = false;
  bool profile = false;
  // The context options after the environment (VKVIT_*) and then the flags are applied.
  vk::ContextOptions context_options() const;
};

void add_devices_command(CLI::App& app, GlobalOptions& global);
void add_bench_command(CLI::App& app, GlobalOptions& global);
// `bench train-step` and `bench infer` (bench_model.cpp), registered under the bench command.
void add_model_bench_commands(CLI::App* bench, GlobalOptions& global);
// `bench mixer` (bench_mixer.cpp): attention vs global filter as the patch grid grows.
void add_mixer_bench_command(CLI::App* bench, GlobalOptions& global);
// `bench loader` (bench_loader.cpp): the data loader alone; vkvit only (it needs OpenCV).
void add_loader_bench_command(CLI::App* bench);
void add_train_command(CLI::App& app, GlobalOptions& global);
void add_eval_command(CLI::App& app, GlobalOptions& global);
void add_predict_command(CLI::App& app, GlobalOptions& global);
void add_convert_command(CLI::App& app, GlobalOptions& global);
void add_explain_command(CLI::App& app, GlobalOptions& global);

// The image files among `paths` (files as given, folders searched recursively, sorted), shared by
// predict and explain so that both read the same files; throws Error when there are none.
std::vector<std::string> collect_images(const std::vector<std::string>& paths);
// `info` (info.cpp): a checkpoint's architecture, size, classes and training progress.
void add_info_command(CLI::App& app, GlobalOptions& global);

}  // namespace vkvit::cli
