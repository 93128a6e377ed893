// Four floats as two 64-bit components. llvmpipe runs every storage-buffer access as a loop over
// the lanes per component, so a u64vec2 moves four floats for the price of two (needs
// shaderInt64; launchers set their WIDE constant only where the device has it and the views are
// 16-byte aligned).
//
// Every body that includes this is built twice (shaders/variants.cmake): `<name>_wide` with
// WIDE_MODULE defined, which has the 64-bit pairs and the WIDE specialization constant, and the
// plain `<name>` without any 64-bit type, for devices without shaderInt64 (a driver may reject a
// module that declares the Int64 capability even where the 64-bit code is never executed). In the
// plain module a `wide4` is a uvec4, so the bodies compile unchanged, and WIDE is a constant false
// (each body declares it under #ifdef WIDE_MODULE), so that path folds away.
#ifdef WIDE_MODULE
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#define wide4 u64vec2

vec4 unpack4(u64vec2 w) {
  return uintBitsToFloat(uvec4(uint(w.x), uint(w.x >> 32), uint(w.y), uint(w.y >> 32)));
}
u64vec2 pack4(vec4 f) {
  const uvec4 u = floatBitsToUint(f);
  return u64vec2(uint64_t(u.x) | (uint64_t(u.y) << 32), uint64_t(u.z) | (uint64_t(u.w) << 32));
}
#else
#define wide4 uvec4

vec4 unpack4(uvec4 w) { return uintBitsToFloat(w); }
uvec4 pack4(vec4 f) { return floatBitsToUint(f); }
#endif
