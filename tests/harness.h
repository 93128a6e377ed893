// Shared test helpers: one Vulkan context for the whole run (validation on when
// VKVIT_VALIDATION=1), fresh random data, upload/download, GPU-vs-reference comparison that
// reports the worst element, and finite-difference gradient checks in double precision.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "base/error.h"
#include "model/vit_params.h"
#include "vk/context.h"
#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {
struct MatmulShape;
}

namespace vkvit::test {

// The suite's context. Tests tagged [gpu] use it.
vk::Context& ctx();
// Validation errors reported to the suite's context so far; 0 when it was never created.
int validation_errors_so_far();
// For a test that forces a kernel this device cannot run: `why` is the kernel's reason (empty
// where it can run). Non-empty: WARN("skipped: " + why) and true, so the test returns.
bool skipped_because(const std::string& why);
// The register-blocked matmul (fp32 and fp16) and the fused attention need a workgroup of 8 lanes
// to be one subgroup (ops::eight_lane_unsupported); skipped_because() of that for `kernel`.
bool skip_without_eight_lane_subgroups(const std::string& kernel);
// The tests of splitting at maxStorageBufferRange need one buffer larger than that range; a device
// whose allocations stop at the range (SwiftShader: 1 GiB each) cannot hold it. skipped_because()
// naming `what` and the two limits when `bytes` exceeds maxMemoryAllocationSize.
bool skip_unless_allocatable(uint64_t bytes, const std::string& what);

// Uniform random floats in [lo, hi) from a fixed seed (deterministic across runs).
std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f);
std::vector<double> to_double(const std::vector<float>& v);
std::vector<float> to_float(const std::vector<double>& v);
// Random ViT weights in layout L (not the init): every tensor in [-0.5, 0.5), norm weights in
// [0.5, 1.5), padding zero.
std::vector<float> random_params(const model::ParamLayout& L, uint32_t seed);

// A device buffer holding `data` (or n floats of garbage-free zeros), freed with the object.
class DeviceTensor {
 public:
  explicit DeviceTensor(const std::vector<float>& data);
  explicit DeviceTensor(size_t n);  // zero-filled
  vk::View view() const { return buffer_->view(); }
  std::vector<float> read() const;
  void write(const std::vector<float>& data);
  size_t size() const { return n_; }

 private:
  size_t n_;
  std::unique_ptr<vk::Buffer> buffer_;
};

// Fails the current test unless |gpu - ref| <= atol + rtol * |ref| for every element; the message
// names `what`, the count of bad elements and the worst one. Also fails on any validation error.
void require_close(const std::vector<float>& gpu, const std::vector<double>& ref, double atol, double rtol,
                   const std::string& what);

// Central finite difference of a scalar function f at x: df/dx_i for all i.
std::vector<double> numeric_gradient(const std::function<double(const std::vector<double>&)>& f,
                                     std::vector<double> x, double eps = 1e-6);

// Fails unless analytic and numeric gradients agree: |a - n| <= atol + rtol * |n|.
void require_gradient_close(const std::vector<double>& analytic, const std::vector<double>& numeric, double atol,
                            double rtol, const std::string& what);

// A fresh folder under the system temp dir, unique per process and tag, removed with the object.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const;  // path/name
  std::string operator/(const std::string& name) const { return file(name); }
  std::string str() const;
  const std::filesystem::path path;
};

std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, const std::string& text);
std::string shell_quote(const std::filesystem::path& p);  // 'p' for the shell
// shell_quote, short for the command lines the CLI tests build.
std::string q(const std::filesystem::path& p);

struct CliRun {
  int status;
  std::string out, err;  // stdout and stderr apart: results must never mix with logs
};
// Runs the vkvit binary (VKVIT_BINARY) with `args`, stdout and stderr captured into files of a
// private scratch folder. Under VKVIT_VALIDATION=1 the binary loads the layer too; any error it
// reports fails the test.
CliRun run_cli(const std::string& args);
#ifdef VKVIT_MPIEXEC
// `mpirun <args>` (VKVIT_MPIEXEC) with stdout and stderr captured, under a time limit so that a
// hang fails the test (exit status 124) instead of stalling the suite. Root may launch (CI runs
// as root), and more ranks than cores are allowed. Shared-memory transfers go without
// cross-memory attach, which containers often forbid (ptrace rules) and these small messages do
// not need. Under scripts/test.sh --sanitize the ranks run without LeakSanitizer: OpenMPI's
// plugins leak at exit and are unloaded by then, so their reports name no library a suppression
// could match; vkvit's own code on these paths is leak-checked by the single-process tests.
CliRun mpirun(const std::string& args);
#endif

// A matmul of C (M x N) = op(A) (M x K) * op(B) (K x N), op a transpose when ta / tb, packed and unbatched.
ops::MatmulShape matmul_shape(uint32_t M, uint32_t N, uint32_t K, bool ta, bool tb);
// Floats each operand of `s` spans: rows times the leading dimension (packed when ld is 0), plus
// the batch strides of the last batch.
struct MatmulExtents {
  size_t a, b, c;
};
MatmulExtents matmul_extents(const ops::MatmulShape& s);
// For a product C = A B too large to compare whole (packed, unbatched, no bias): blocks of 1000
// rows of C at the start, the middle and the end (across any split along M) against the double
// reference, within fp32 accumulation's bound of 1e-5 * K. `what` names the op in the message.
void require_matmul_rows_close(const std::vector<float>& a, const std::vector<float>& b, const std::vector<float>& c,
                               const ops::MatmulShape& s, const std::string& what);

// Dot product, used to turn a vector output into a scalar loss L = sum(out * w) for gradient checks.
double dot(const std::vector<double>& a, const std::vector<double>& b);

// Sets an environment variable for the object's lifetime and restores what was there before:
// for the vkvit binary run as a subprocess (run_cli), whose interface the environment is, and for
// Tuning::from_env. In-process ops read the context's tuning instead (ScopedTuning).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

// Applies `change` to the suite context's tuning (ctx().tuning_for_tests()) for the object's
// lifetime, then restores the struct it found. That struct starts from the environment, so a
// change that fills only unset knobs (`if (!k.matmul_tm) k.matmul_tm = 8;`) lets a user's VKVIT_*
// override win.
class ScopedTuning {
 public:
  explicit ScopedTuning(const std::function<void(vk::Tuning&)>& change);
  ~ScopedTuning();
  ScopedTuning(const ScopedTuning&) = delete;
  ScopedTuning& operator=(const ScopedTuning&) = delete;

 private:
  vk::Tuning saved_;
};

// Chooses kernels as for `described` (ctx().kernel_device_for_tests) for the object's lifetime,
// then as for whatever the suite context chose from before: a described GPU's kernels, tile
// shapes and workgroup sizes run on this device (pins it cannot honour are left off).
class ScopedKernelDevice {
 public:
  explicit ScopedKernelDevice(const vk::DeviceInfo& described);
  ~ScopedKernelDevice();
  ScopedKernelDevice(const ScopedKernelDevice&) = delete;
  ScopedKernelDevice& operator=(const ScopedKernelDevice&) = delete;

 private:
  std::unique_ptr<vk::DeviceInfo> saved_;  // null: the context chose from its own device
};

// The tiled matmul kernels' two tiles (matmul_launch.h, TiledTile), named for section titles:
// the CPU drivers' and the GPUs'.
struct NamedTile {
  const char* name;
  vk::MatmulTile tile;
};
inline const NamedTile kTiledTiles[] = {{"32x32x8", {32, 32, 8}}, {"64x64x16", {64, 64, 16}}};

// The message of the vkvit::Error that f throws; fails the test when it throws nothing.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("expected a vkvit::Error");
  return "";
}

// The lines of `text` (without their newlines), and those among them containing `needle`.
std::vector<std::string> lines_of(const std::string& text);
std::vector<std::string> lines_with(const std::string& text, const std::string& needle);

}  // namespace vkvit::test
