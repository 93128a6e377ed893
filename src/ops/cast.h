// fp32 <-> fp16 casts for the mixed-precision path (train.amp): the fp16 copies of weights and
// activations that ops::matmul_f16 reads, and host conversions for uploads, downloads and tests.
// fp16 buffers hold IEEE binary16 values packed two to a 32-bit word in uint16-array order (see
// shaders/common/half.glsl); a View over one counts bytes, 2 per element (half_slice below).
// Rounding is to nearest even; values of magnitude >= 65520 become +-Inf, NaN stays NaN, so an
// overflow in a scaled gradient shows up as a non-finite value for the loss scaler.
#pragma once
#include <cstdint>
#include <vector>

#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

// Elements [first, first + count) of an fp16 view.
inline vk::View half_slice(const vk::View& v, uint64_t first, uint64_t count) { return v.bytes(first * 2, count * 2); }
// Bytes an fp16 tensor of n elements takes, rounded up to whole 16-byte units so that every packed
// word (and uvec4) a kernel may read lies inside the allocation.
inline uint64_t half_bytes(uint64_t n) { return (n * 2 + 15) / 16 * 16; }

// dst (n halves) = fp16(src (n floats)). Both views start at a multiple of 4 bytes and at an offset
// the device can bind (arena and parameter-layout offsets are); a word shared with the element
// after an odd n keeps that element's half.
void cast_f32_to_f16(vk::Recorder& rec, const vk::View& dst16, const vk::View& src, uint64_t n);
// dst (n floats) = float(src (n halves)), exact.
void cast_f16_to_f32(vk::Recorder& rec, const vk::View& dst, const vk::View& src16, uint64_t n);

// Host conversions with the same rounding as the shader.
uint16_t float_to_half(float x);
float half_to_float(uint16_t h);
std::vector<uint16_t> to_half(const std::vector<float>& v);
std::vector<float> from_half(const std::vector<uint16_t>& v);
// x rounded to the nearest fp16 value, as a float (what the GPU sees after a cast).
inline float round_to_half(float x) { return half_to_float(float_to_half(x)); }

}  // namespace vkvit::ops
