// A tiny stripes model trained once by `vkvit train`, for the CLI tests of one file to share:
// each file keeps its own in a function-local static, so it is trained at most once per test
// process and only when one of that file's tests runs.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "harness.h"

namespace vkvit::test {

struct TrainedRunSpec {
  std::string tag;  // names the temp folder
  int train_per_class = 0, val_per_class = 0;
  uint64_t seed = 0;  // of the stripe images
  int epochs = 1;
  std::string train_flags;  // appended to the train command line, e.g. "-q"
};

// dir/data (the stripe dataset), dir/tiny.yaml (tiny_stripes_config_yaml(epochs)), and the run
// folder dir/run that `vkvit train` wrote; the test fails unless training succeeded.
struct TrainedRun {
  explicit TrainedRun(const TrainedRunSpec& spec);

  TempDir dir;
  std::filesystem::path data, config, run;
  std::filesystem::path checkpoint;  // run/last.safetensors
  CliRun train;                      // the train command's exit status, stdout and stderr
};

}  // namespace vkvit::test
