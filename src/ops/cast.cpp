// fp32 <-> fp16 cast launchers (shaders/cast_f32_f16.comp, cast_f16_f32.comp) and the host-side
// binary16 conversions.
#include "ops/cast.h"

#include <cstring>
#include <string>

#include "base/error.h"
#include "ops/launch.h"

namespace vkvit::ops {

namespace {

struct CastPush {
  uint32_t n;
};
static_assert(sizeof(CastPush) == 4);

// Mirrors layout(constant_id = 0) WORKGROUP_SIZE (common/index.glsl) and layout(constant_id = 1)
// VEC of shaders/cast_f32_f16.comp and cast_f16_f32.comp.
struct CastSpec {
  vk::SpecField<0, uint32_t> workgroup_size;
  vk::SpecField<1, bool> vec;
  vk::SpecConstants to_spec() const { return vk::SpecConstants(workgroup_size, vec); }
};

constexpr uint32_t kPerInvocation = 8;  // elements each invocation converts

// Chunks of both views that fit one binding; starts are multiples of 128 elements, so a chunk of
// halves starts 256 bytes (the largest minStorageBufferOffsetAlignment Vulkan allows) after the
// view's start.
template <class Fn>
void for_each_cast_chunk(const vk::Context& ctx, uint64_t n, Fn&& fn) {
  const uint64_t most = std::max<uint64_t>(ctx.info().max_storage_buffer_range / 4 / 128 * 128, 128);
  for (uint64_t first = 0; first < n; first += most) fn(first, std::min(most, n - first));
}

void check_views(const char* what, const vk::View& f32, const vk::View& f16, uint64_t n) {
  if (f32.size < n * 4 || f16.size < n * 2)
    throw Error(std::string("internal: ") + what + " of " + std::to_string(n) + " elements: views of " +
                std::to_string(f32.size) + " bytes (fp32) and " + std::to_string(f16.size) + " bytes (fp16)");
  if (f16.offset % 4 != 0)
    throw Error(std::string("internal: ") + what + ": the fp16 view starts at byte " + std::to_string(f16.offset) +
                ", not a multiple of 4");
}

void cast(vk::Recorder& rec, vk::ShaderId shader, const vk::View& f32, const vk::View& f16, uint64_t n, bool to_half) {
  if (n == 0) return;
  check_views(shader.name, f32, f16, n);
  for_each_cast_chunk(rec.context(), n, [&](uint64_t first, uint64_t count) {
    const vk::View a = f32.slice(first, count);
    // The fp16 range rounded up to whole words (an odd count's last word is read and rewritten).
    const vk::View h = f16.bytes(first * 2, std::min<uint64_t>((count + 1) / 2 * 4, f16.size - first * 2));
    const bool vec = a.offset % 16 == 0 && h.offset % 16 == 0;
    const vk::Kernel& k = rec.context().pipelines().get(shader, 2, sizeof(CastPush), CastSpec{kElementwiseGroup, vec});
    const CastPush push{static_cast<uint32_t>(count)};
    const vk::Groups groups = rec.groups_1d(div_up(div_up(count, kPerInvocation), kElementwiseGroup));
    if (to_half)
      rec.dispatch(k, {h, a}, push, groups, "cast_f32_f16");
    else
      rec.dispatch(k, {a, h}, push, groups, "cast_f16_f32");
  });
}

}  // namespace

void cast_f32_to_f16(vk::Recorder& rec, const vk::View& dst16, const vk::View& src, uint64_t n) {
  cast(rec, shaders::cast_f32_f16, src, dst16, n, true);
}

void cast_f16_to_f32(vk::Recorder& rec, const vk::View& dst, const vk::View& src16, uint64_t n) {
  cast(rec, shaders::cast_f16_f32, dst, src16, n, false);
}

// binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits; subnormals below 2^-14.
uint16_t float_to_half(float x) {
  uint32_t f;
  std::memcpy(&f, &x, 4);
  const uint32_t sign = (f >> 16) & 0x8000u;
  const uint32_t abs = f & 0x7fffffffu;
  if (abs >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: rounds past the largest half
  const int32_t exp = static_cast<int32_t>(abs >> 23) - 127;
  if (exp >= -14) {  // normal half: keep 10 of the 23 mantissa bits, round to nearest even
    uint32_t h = (uint32_t(exp + 15) << 10) | ((abs >> 13) & 0x3ffu);
    const uint32_t rest = abs & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent: still right
    return static_cast<uint16_t>(sign | h);
  }
  if (exp < -25) return static_cast<uint16_t>(sign);  // below half the smallest subnormal: zero
  // Subnormal half: value = m * 2^-24 with m = mantissa (with its implicit bit) >> shift.
  const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
  const uint32_t shift = static_cast<uint32_t>(-exp - 1);  // 14 .. 24
  uint32_t h = mant >> shift;
  const uint32_t rest = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
  if (rest > halfway || (rest == halfway && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t f;
  if (exp == 0x1f) {
    f = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    f = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    f = sign;
  } else {  // subnormal: mant * 2^-24, exact in float
    const float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
    std::memcpy(&f, &v, 4);
    f |= sign;
  }
  float x;
  std::memcpy(&x, &f, 4);
  return x;
}

std::vector<uint16_t> to_half(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = float_to_half(v[i]);
  return out;
}

std::vector<float> from_half(const std::vector<uint16_t>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = half_to_float(v[i]);
  return out;
}

}  // namespace vkvit::ops
