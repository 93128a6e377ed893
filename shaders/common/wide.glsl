// Four floats as two 64-bit components. llvmpipe runs every storage-buffer access as a loop over
// the lanes per component, so a u64vec2 moves four floats for the price of two (needs
// shaderInt64; launchers set their WIDE constant only where the device has it and the views are
// 16-byte aligned).
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require

vec4 unpack4(u64vec2 w) {
  return uintBitsToFloat(uvec4(uint(w.x), uint(w.x >> 32), uint(w.y), uint(w.y >> 32)));
}
u64vec2 pack4(vec4 f) {
  const uvec4 u = floatBitsToUint(f);
  return u64vec2(uint64_t(u.x) | (uint64_t(u.y) << 32), uint64_t(u.z) | (uint64_t(u.w) << 32));
}
