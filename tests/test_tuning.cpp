// vk::Tuning::from_env: every VKVIT_* tuning variable reaches its field, unset and empty ones keep
// the defaults, and a malformed value is one clear error naming the variable. The ops tests set
// the struct itself (ScopedTuning); these prove that the environment, the CLI's way in, still
// gets there.
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "harness.h"
#include "ops/matmul.h"
#include "vk/tuning.h"

using namespace vkvit;
using namespace vkvit::test;
using Catch::Matchers::Contains;

namespace {

const char* const kTuningVariables[] = {
    "VKVIT_MATMUL_KERNEL", "VKVIT_MATMUL_TILE", "VKVIT_MATMUL_TM", "VKVIT_MATMUL_TN", "VKVIT_MATMUL_BATCH_PER_GROUP",
    "VKVIT_MATMUL_F16_TM", "VKVIT_MATMUL_F16_TN", "VKVIT_MATMUL_KCHUNK", "VKVIT_MATMUL_WIDE", "VKVIT_MATMUL_TEXEL",
    "VKVIT_MATMUL_SCALAR", "VKVIT_PROFILE_SHAPES", "VKVIT_WIDE", "VKVIT_TEXEL", "VKVIT_SOFTMAX_SHORT_ROW",
    "VKVIT_ATTENTION", "VKVIT_LOSS_SCALE_GROWTH_INTERVAL", "VKVIT_ALLREDUCE_BUCKET_MB", "VKVIT_ALLREDUCE_OVERLAP",
    "VKVIT_STEP_OVERLAP"};

// Every tuning variable set to "" (as good as unset) for the object's lifetime, whatever the user
// exported, so that each test sees only the variables it sets.
struct CleanTuningEnv {
  CleanTuningEnv() {
    for (const char* name : kTuningVariables) cleared.push_back(std::make_unique<ScopedEnv>(name, ""));
  }
  std::vector<std::unique_ptr<ScopedEnv>> cleared;
};

}  // namespace

TEST_CASE("tuning variables that are unset or empty keep the defaults", "[tuning]") {
  CleanTuningEnv clean;
  const vk::Tuning t = vk::Tuning::from_env();
  const vk::Tuning defaults;
  CHECK(t.matmul_kernel == "auto");
  CHECK_FALSE(t.matmul_tile);
  CHECK_FALSE(t.matmul_tm);
  CHECK_FALSE(t.matmul_tn);
  CHECK_FALSE(t.matmul_batch_per_group);
  CHECK_FALSE(t.matmul_f16_tm);
  CHECK_FALSE(t.matmul_f16_tn);
  CHECK_FALSE(t.matmul_k_chunk);
  CHECK(t.matmul_wide == defaults.matmul_wide);
  CHECK(t.matmul_texel == defaults.matmul_texel);
  CHECK(t.matmul_scalar == defaults.matmul_scalar);
  CHECK(t.profile_shapes == defaults.profile_shapes);
  CHECK(t.wide == defaults.wide);
  CHECK(t.texel == defaults.texel);
  CHECK_FALSE(t.softmax_short_row);
  CHECK(t.attention == vk::AttentionPath::automatic);
  CHECK_FALSE(t.loss_scale_growth_interval);
  CHECK_FALSE(t.allreduce_bucket_bytes);
  CHECK(t.allreduce_overlap);
  CHECK(t.step_overlap);
}

TEST_CASE("every tuning variable reaches its field", "[tuning]") {
  CleanTuningEnv clean;
  ScopedEnv kernel("VKVIT_MATMUL_KERNEL", "naive"), tile("VKVIT_MATMUL_TILE", "32x64x8");
  ScopedEnv tm("VKVIT_MATMUL_TM", "8"), tn("VKVIT_MATMUL_TN", "3"), batch("VKVIT_MATMUL_BATCH_PER_GROUP", "0");
  ScopedEnv f16_tm("VKVIT_MATMUL_F16_TM", "16"), f16_tn("VKVIT_MATMUL_F16_TN", "12"), chunk("VKVIT_MATMUL_KCHUNK", "0");
  ScopedEnv matmul_wide("VKVIT_MATMUL_WIDE", "0"), matmul_texel("VKVIT_MATMUL_TEXEL", "0");
  ScopedEnv scalar("VKVIT_MATMUL_SCALAR", "1"), shapes("VKVIT_PROFILE_SHAPES", "1");
  ScopedEnv wide("VKVIT_WIDE", "0"), texel("VKVIT_TEXEL", "0"), short_row("VKVIT_SOFTMAX_SHORT_ROW", "64");
  ScopedEnv attention("VKVIT_ATTENTION", "unfused"), growth("VKVIT_LOSS_SCALE_GROWTH_INTERVAL", "5");
  ScopedEnv bucket("VKVIT_ALLREDUCE_BUCKET_MB", "0.5"), allreduce_overlap("VKVIT_ALLREDUCE_OVERLAP", "0");
  ScopedEnv step_overlap("VKVIT_STEP_OVERLAP", "0");
  const vk::Tuning t = vk::ContextOptions::from_env().tuning;  // as the CLI reads it
  CHECK(t.matmul_kernel == "naive");
  REQUIRE(t.matmul_tile);
  CHECK((t.matmul_tile->bm == 32 && t.matmul_tile->bn == 64 && t.matmul_tile->bk == 8));
  CHECK(t.matmul_tm == 8u);
  CHECK(t.matmul_tn == 3u);
  CHECK(t.matmul_batch_per_group == 0u);  // set: the op still runs at least one entry per group
  CHECK(t.matmul_f16_tm == 16u);
  CHECK(t.matmul_f16_tn == 12u);
  CHECK(t.matmul_k_chunk == 0u);  // set to 0: K in one piece, unlike unset
  CHECK_FALSE(t.matmul_wide);
  CHECK_FALSE(t.matmul_texel);
  CHECK(t.matmul_scalar);
  CHECK(t.profile_shapes);
  CHECK_FALSE(t.wide);
  CHECK_FALSE(t.texel);
  CHECK(t.softmax_short_row == 64u);
  CHECK(t.attention == vk::AttentionPath::unfused);
  CHECK(t.loss_scale_growth_interval == 5u);
  CHECK(t.allreduce_bucket_bytes == (uint64_t(1) << 19));
  CHECK_FALSE(t.allreduce_overlap);
  CHECK_FALSE(t.step_overlap);
}

TEST_CASE("tuning switches keep how they have always read their values", "[tuning]") {
  CleanTuningEnv clean;
  // Numeric switches take leading digits: "00" and a word are 0, "2" is on.
  ScopedEnv wide("VKVIT_WIDE", "00"), texel("VKVIT_TEXEL", "off"), scalar("VKVIT_MATMUL_SCALAR", "2");
  // The overlap switches are off only at exactly "0".
  ScopedEnv allreduce_overlap("VKVIT_ALLREDUCE_OVERLAP", "00"), step_overlap("VKVIT_STEP_OVERLAP", "no");
  ScopedEnv attention("VKVIT_ATTENTION", "fused"), kernel("VKVIT_MATMUL_KERNEL", "auto");
  const vk::Tuning t = vk::Tuning::from_env();
  CHECK_FALSE(t.wide);
  CHECK_FALSE(t.texel);
  CHECK(t.matmul_scalar);
  CHECK(t.allreduce_overlap);
  CHECK(t.step_overlap);
  CHECK(t.attention == vk::AttentionPath::fused);
  CHECK(t.matmul_kernel == "auto");
}

TEST_CASE("a malformed tuning variable is one clear error naming it and its values", "[tuning]") {
  CleanTuningEnv clean;
  auto error_with = [](const char* name, const char* value) {
    ScopedEnv bad(name, value);
    return error_of([] { vk::Tuning::from_env(); });
  };
  CHECK(error_with("VKVIT_MATMUL_KERNEL", "fast") == "unknown matmul kernel 'fast': use naive, register_blocked, tiled or auto");
  CHECK(error_with("VKVIT_MATMUL_TILE", "64x63x16") ==
        "VKVIT_MATMUL_TILE='64x63x16': expected BMxBNxBK with BM and BN multiples of 4 and BK > 0, e.g. 64x64x16");
  CHECK_THAT(error_with("VKVIT_MATMUL_TILE", "64x64"), Contains("VKVIT_MATMUL_TILE='64x64': expected BMxBNxBK"));
  CHECK_THAT(error_with("VKVIT_MATMUL_TILE", "64x64x16x"), Contains("VKVIT_MATMUL_TILE='64x64x16x': expected"));
  CHECK(error_with("VKVIT_ATTENTION", "flash") ==
        "VKVIT_ATTENTION='flash': expected fused or unfused (or unset for the device's default)");
  CHECK(error_with("VKVIT_ALLREDUCE_BUCKET_MB", "0") ==
        "VKVIT_ALLREDUCE_BUCKET_MB='0' is not a positive number of megabytes");
  CHECK_THAT(error_with("VKVIT_ALLREDUCE_BUCKET_MB", "8MB"), Contains("is not a positive number of megabytes"));
  // One message for the kernel names, from the environment or from `vkvit bench --kernel`.
  CHECK(error_with("VKVIT_MATMUL_KERNEL", "fast") == error_of([] { ops::parse_matmul_kernel("fast"); }));
}

TEST_CASE("every matmul kernel name the environment takes is one the ops know", "[tuning]") {
  CleanTuningEnv clean;
  for (const char* name : {"naive", "register_blocked", "tiled", "auto"}) {
    ScopedEnv kernel("VKVIT_MATMUL_KERNEL", name);
    CHECK(ops::matmul_kernel_name(ops::parse_matmul_kernel(vk::Tuning::from_env().matmul_kernel)) == std::string(name));
  }
  ScopedEnv older("VKVIT_MATMUL_KERNEL", "lavapipe");  // the register-blocked kernel's older name
  CHECK(ops::parse_matmul_kernel(vk::Tuning::from_env().matmul_kernel) == ops::MatmulKernel::register_blocked);
}
