#include "cli_fixture.h"

#include <catch2/catch.hpp>

#include "stripes.h"

namespace vkvit::test {

TrainedRun::TrainedRun(const TrainedRunSpec& spec)
    : dir(spec.tag), data(dir.path / "data"), config(dir.path / "tiny.yaml"), run(dir.path / "run"),
      checkpoint(run / "last.safetensors") {
  write_stripe_dataset(data, spec.train_per_class, spec.val_per_class, spec.seed, 0);
  write_file(config, tiny_stripes_config_yaml(spec.epochs));
  train = run_cli("train --config " + q(config) + " --data-dir " + q(data) + " --output " + q(run) +
                  (spec.train_flags.empty() ? "" : " " + spec.train_flags));
  INFO(train.out << train.err);
  REQUIRE(train.status == 0);
  REQUIRE(std::filesystem::exists(checkpoint));
}

}  // namespace vkvit::test
