// `vkvit bench`: measured GPU throughput. Modes are added as their ops land.
#include "cli/commands.h"

namespace vkvit::cli {

void add_bench_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("bench", "Measure kernel throughput on the chosen device");
  cmd->require_subcommand(1);
  (void)global;
}

}  // namespace vkvit::cli
