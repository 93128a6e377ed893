// A training process killed with SIGKILL at random moments, repeatedly (each time resumed from
// its last checkpoint): last.safetensors must always be a complete checkpoint with its optimizer
// state, and its step never goes backwards. The model is widened (~0.8M parameters, a ~10 MB
// checkpoint written every epoch) and VKVIT_FAULT_SAVE_DELAY_MS holds each written checkpoint
// half a second before its rename, so that a good share of the kills land inside a save.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "harness.h"
#include "model/safetensors.h"
#include "stripes.h"
#include "train/checkpoint.h"

using namespace vkvit;
namespace fs = std::filesystem;

TEST_CASE("SIGKILL at any moment leaves last.safetensors complete and resumable", "[cli][train]") {
  test::TempDir dir("kill");
  const fs::path data = dir.path / "data", config = dir.path / "tiny.yaml", run = dir.path / "run";
  const fs::path last = run / "last.safetensors";
  test::write_stripe_dataset(data, 16, 4, 5, 0);
  test::write_file(config, test::tiny_stripes_config_yaml(100000));
  const std::string common = "train -q --config " + test::shell_quote(config) + " --data-dir " + test::shell_quote(data) +
                             " --set model.dim=256 --set model.mlp_dim=1024";
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> inside_ms(0, 400), after_ms(650, 900);
  int killed = 0, checked = 0, interrupted_saves = 0;
  uint64_t last_step = 0;
  for (int round = 0; round < 12; ++round) {
    if (!fs::exists(last)) fs::remove_all(run);  // killed before its first save: start afresh
    const std::string args =
        common + (fs::exists(last) ? " --resume " + test::shell_quote(last) : " --output " + test::shell_quote(run));
    const std::string cmd =
        "VKVIT_FAULT_SAVE_DELAY_MS=500 exec " + std::string(VKVIT_BINARY) + " " + args + " >/dev/null 2>&1";
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Wait for this process's first save of last.safetensors to begin (its temp file appears),
    // whatever the machine's speed, then kill it: in even rounds 0-400 ms later, inside the save
    // (which holds 500 ms before its rename), in odd rounds 650-900 ms later, after the rename,
    // while training goes on.
    const fs::path temp = run / (".last.safetensors.tmp-" + std::to_string(pid));
    int status = 0;
    bool exited = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!fs::exists(temp) && std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!exited) {
      std::this_thread::sleep_for(std::chrono::milliseconds(round % 2 == 0 ? inside_ms(rng) : after_ms(rng)));
      kill(pid, SIGKILL);
      REQUIRE(waitpid(pid, &status, 0) == pid);
    }
    // A kill inside a save leaves that process's temp file (the next save removes it).
    if (fs::exists(temp)) ++interrupted_saves;
    INFO("round " << round << ": " << cmd);
    if (WIFSIGNALED(status)) ++killed;
    else CHECK(WEXITSTATUS(status) == 0);  // it may not fail on its own
    if (!fs::exists(last)) continue;
    // Complete, consistent, with its optimizer state; the reader rejects anything half-written.
    const train::CheckpointMeta meta = train::read_checkpoint_meta(last.string());
    const model::SafeTensors st = model::read_safetensors(last.string());
    CHECK(st.find(train::kAdamM) != nullptr);
    CHECK(st.find(train::kAdamV) != nullptr);
    CHECK(meta.step >= last_step);
    last_step = meta.step;
    ++checked;
  }
  // Saves of killed processes leave temp files; the next save of the same file removes them.
  int leftovers = 0;
  for (const auto& e : fs::directory_iterator(run))
    if (e.path().filename().string().find(".last.safetensors.tmp-") != std::string::npos) ++leftovers;
  CHECK(leftovers <= 1);  // at most the last round's
  INFO("killed " << killed << " of 12 runs; checkpoint checked after " << checked << "; last step " << last_step
                 << "; saves interrupted mid-write: " << interrupted_saves);
  CHECK(killed >= 10);
  CHECK(checked >= 11);           // from the first odd round on, a save had completed
  CHECK(interrupted_saves >= 3);  // and the even rounds killed inside saves
  CHECK(last_step > 0);
}
