// Tuning::from_env: the VKVIT_* tuning variables, parsed once; see tuning.h for each knob.
#include "vk/tuning.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/error.h"

namespace vkvit::vk {

namespace {

// The variable's value, or null when it is unset or empty (both mean "the default").
const char* env_value(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

// Leading digits, 0 for none: how these knobs have always been read (tests and tuning runs set
// them by hand, so a stray suffix is not worth an error).
std::optional<uint32_t> env_count(const char* name) {
  if (const char* v = env_value(name)) return static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
  return std::nullopt;
}

bool env_switch(const char* name, bool fallback) {
  const std::optional<uint32_t> v = env_count(name);
  return v ? *v != 0 : fallback;
}

// On unless exactly "0".
bool env_off_at_zero(const char* name) {
  const char* v = env_value(name);
  return !(v && std::strcmp(v, "0") == 0);
}

std::string matmul_kernel_from_env() {
  const char* v = env_value("VKVIT_MATMUL_KERNEL");
  if (!v) return "auto";
  const std::string name = v;
  // The names ops::parse_matmul_kernel takes, and its message (checked against it in test_matmul.cpp).
  if (name != "naive" && name != "register_blocked" && name != "lavapipe" && name != "tiled" && name != "auto")
    throw Error("unknown matmul kernel '" + name + "': use naive, register_blocked, tiled or auto");
  return name;
}

std::optional<MatmulTile> matmul_tile_from_env() {
  const char* v = env_value("VKVIT_MATMUL_TILE");
  if (!v) return std::nullopt;
  // Each invocation of the tiled kernel computes a 4 x 4 block of the tile.
  unsigned m = 0, n = 0, k = 0;
  char tail = 0;
  if (std::sscanf(v, "%ux%ux%u%c", &m, &n, &k, &tail) != 3 || m == 0 || n == 0 || k == 0 || m % 4 != 0 || n % 4 != 0)
    throw Error("VKVIT_MATMUL_TILE='" + std::string(v) +
                "': expected BMxBNxBK with BM and BN multiples of 4 and BK > 0, e.g. 64x64x16");
  return MatmulTile{m, n, k};
}

AttentionPath attention_from_env() {
  const char* v = env_value("VKVIT_ATTENTION");
  if (!v) return AttentionPath::automatic;
  const std::string choice = v;
  if (choice == "fused") return AttentionPath::fused;
  if (choice == "unfused") return AttentionPath::unfused;
  throw Error("VKVIT_ATTENTION='" + choice + "': expected fused or unfused (or unset for the device's default)");
}

std::optional<uint64_t> bucket_bytes_from_env() {
  const char* v = env_value("VKVIT_ALLREDUCE_BUCKET_MB");
  if (!v) return std::nullopt;
  char* end = nullptr;
  const double mb = std::strtod(v, &end);
  if (*end != '\0' || !(mb > 0))
    throw Error(std::string("VKVIT_ALLREDUCE_BUCKET_MB='") + v + "' is not a positive number of megabytes");
  return static_cast<uint64_t>(mb * (1 << 20));
}

}  // namespace

Tuning Tuning::from_env() {
  Tuning t;
  t.matmul_kernel = matmul_kernel_from_env();
  t.matmul_tile = matmul_tile_from_env();
  t.matmul_tm = env_count("VKVIT_MATMUL_TM");
  t.matmul_tn = env_count("VKVIT_MATMUL_TN");
  t.matmul_batch_per_group = env_count("VKVIT_MATMUL_BATCH_PER_GROUP");
  t.matmul_f16_tm = env_count("VKVIT_MATMUL_F16_TM");
  t.matmul_f16_tn = env_count("VKVIT_MATMUL_F16_TN");
  t.matmul_k_chunk = env_count("VKVIT_MATMUL_KCHUNK");
  t.matmul_wide = env_switch("VKVIT_MATMUL_WIDE", t.matmul_wide);
  t.matmul_texel = env_switch("VKVIT_MATMUL_TEXEL", t.matmul_texel);
  t.matmul_scalar = env_switch("VKVIT_MATMUL_SCALAR", t.matmul_scalar);
  t.profile_shapes = env_switch("VKVIT_PROFILE_SHAPES", t.profile_shapes);
  t.wide = env_switch("VKVIT_WIDE", t.wide);
  t.texel = env_switch("VKVIT_TEXEL", t.texel);
  t.softmax_short_row = env_count("VKVIT_SOFTMAX_SHORT_ROW");
  t.attention = attention_from_env();
  if (const char* v = env_value("VKVIT_LOSS_SCALE_GROWTH_INTERVAL"))
    t.loss_scale_growth_interval = std::strtoull(v, nullptr, 10);
  t.allreduce_bucket_bytes = bucket_bytes_from_env();
  t.allreduce_overlap = env_off_at_zero("VKVIT_ALLREDUCE_OVERLAP");
  t.step_overlap = env_off_at_zero("VKVIT_STEP_OVERLAP");
  return t;
}

}  // namespace vkvit::vk
