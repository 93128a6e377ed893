// The vkvit binary as users run it: output, exit codes, one-line errors.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace {

struct Run {
  int status;
  std::string output;  // stdout and stderr together
};

// `env` is a prefix of VAR=value assignments for the shell.
Run run(const std::string& args, const std::string& env = "") {
  const std::string cmd = env + " " + std::string(VKVIT_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

}  // namespace

TEST_CASE("vkvit devices lists each device with its limits", "[cli][gpu]") {
  Run r = run("devices");
  INFO(r.output);
  CHECK(r.status == 0);
  for (const char* field : {"device 0", "vendor:", "driver:", "type:", "memory heap 0:", "subgroup size:",
                            "subgroup ops:", "fp16 arithmetic:", "16-bit storage:", "cooperative matrix:",
                            "maxStorageBufferRange:", "maxMemoryAllocation:", "max workgroup size:",
                            "max workgroup count:", "shared memory:"})
    CHECK(r.output.find(field) != std::string::npos);
}

TEST_CASE("a device index that does not exist is one clear line", "[cli][gpu]") {
  Run r = run("--device 99 bench matmul");
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK(r.output.find("vkvit: error: device 99 does not exist") != std::string::npos);
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
}

TEST_CASE("a malformed VKVIT_DEVICE is named in the error", "[cli]") {
  Run bad = run("devices", "VKVIT_DEVICE=gpu0");
  INFO(bad.output);
  CHECK(bad.status == 1);
  CHECK(bad.output.find("vkvit: error: VKVIT_DEVICE='gpu0' is not a device index") != std::string::npos);
}
