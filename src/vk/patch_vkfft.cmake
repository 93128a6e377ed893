# Copies the system vkFFT.h into the build tree and makes it compile against the installed glslang.
# Run as: cmake -DVKFFT_IN=<system vkFFT.h> -DVKFFT_OUT=<build copy> -DGLSLANG_C_HEADER=<glslang_c_interface.h> -P patch_vkfft.cmake
#
# Why: VkFFT fills glslang_resource_t with a positional initializer written for glslang <= 11.
# glslang 12 (Debian 12) inserted nine EXT mesh-shader limits (max_mesh_output_vertices_ext ...
# max_mesh_view_count_ext) before max_dual_source_draw_buffers_ext, so every later value lands one
# field early and the nested `.limits = { ... }` block meets an int: g++ says "cannot convert
# '<brace-enclosed initializer list>' to 'int'", clang++ "excess elements in scalar initializer".
# Patch 1 inserts those nine values (glslang's own defaults; a compute shader never reads them)
# in both copies of the initializer.
#
# Patch 2 (validation, not compilation): VkFFT binds every buffer from byte 0 and sizes the
# descriptor range itself. With an out-of-place R2C plan whose inverse writes back to the input
# buffer (vk::Fft2d), it gives the real buffer's C2R-output descriptor the complex buffer's size,
# and rounds the real buffer's size up to whole complex elements (8 bytes), so the range can pass
# the end of the VkBuffer (VUID-VkDescriptorBufferInfo-range-00342). The shaders never touch those
# extra bytes. The patch adds one function that clamps each range to the size the application
# declared for that buffer, called right before both vkUpdateDescriptorSets calls.
#
# The copy lives only in the build tree: VkFFT is never committed to vkvit.
cmake_minimum_required(VERSION 3.20)

foreach(var VKFFT_IN VKFFT_OUT GLSLANG_C_HEADER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "patch_vkfft.cmake: -D${var}=... is required")
  endif()
endforeach()

file(READ "${VKFFT_IN}" text)
set(version "unknown")
if(text MATCHES "VkFFTGetVersion\\(\\) {[ \t\r\n]*return ([0-9]+);")
  # X.XX.XX packed as one integer, e.g. 10226 = 1.2.26.
  math(EXPR major "${CMAKE_MATCH_1} / 10000")
  math(EXPR minor "(${CMAKE_MATCH_1} / 100) % 100")
  math(EXPR patch "${CMAKE_MATCH_1} % 100")
  set(version "${major}.${minor}.${patch}")
endif()

# Replaces `anchor` by `replacement` in `text`, requiring exactly `expected` occurrences.
function(vkvit_patch_exact text_var anchor replacement expected what)
  string(REPLACE "${anchor}" "" stripped "${${text_var}}")
  string(LENGTH "${${text_var}}" len_before)
  string(LENGTH "${stripped}" len_after)
  string(LENGTH "${anchor}" len_anchor)
  math(EXPR occurrences "(${len_before} - ${len_after}) / ${len_anchor}")
  if(NOT occurrences EQUAL expected)
    message(FATAL_ERROR
      "vkFFT.h ${version} at ${VKFFT_IN}: expected ${what} ${expected} time(s), found it ${occurrences} time(s). "
      "src/vk/patch_vkfft.cmake was written for VkFFT 1.2.26 (Debian libvkfft-dev 1.2.26+ds1) with glslang 12; "
      "update the patch for this VkFFT version.")
  endif()
  string(REPLACE "${anchor}" "${replacement}" patched "${${text_var}}")
  set(${text_var} "${patched}" PARENT_SCOPE)
endfunction()

# Patch 1: the glslang 12 resource-limits initializer.
file(READ "${GLSLANG_C_HEADER}" glslang_text)
string(FIND "${glslang_text}" "max_mesh_view_count_ext" glslang_has_ext_mesh)
string(FIND "${text}" "maxMeshOutputVerticesEXT" vkfft_has_ext_mesh)
if(glslang_has_ext_mesh EQUAL -1 OR NOT vkfft_has_ext_mesh EQUAL -1)
  # Older glslang, or a VkFFT that already lists the EXT mesh limits: the initializer fits as it is.
  message(STATUS "vkFFT.h ${version}: glslang_resource_t initializer left as it is")
else()
  set(anchor "/* .maxMeshViewCountNV = */ 4,\n\t\t\t\t/* .maxDualSourceDrawBuffersEXT = */ 1,")
  set(replacement "/* .maxMeshViewCountNV = */ 4,\n\t\t\t\t/* glslang 12 EXT mesh limits (vkvit build patch) */ 256, 256, 128, 128, 128, 128, 128, 128, 4,\n\t\t\t\t/* .maxDualSourceDrawBuffersEXT = */ 1,")
  vkvit_patch_exact(text "${anchor}" "${replacement}" 2
                    "the glslang_resource_t initializer text 'maxMeshViewCountNV ... maxDualSourceDrawBuffersEXT'")
  message(STATUS "vkFFT.h ${version}: patched the glslang_resource_t initializer for glslang 12 (2 places)")
endif()

# Patch 2: clamp descriptor ranges to the declared buffer sizes.
set(clamp_function [=[
/* vkvit build patch: VkFFT sizes some descriptor ranges from another buffer's size or rounds them
   up to whole complex elements; clamp each range to the size declared for the buffer it binds. */
static inline void vkvitClampDescriptorRange(const VkFFTApplication* app, VkDescriptorBufferInfo* info) {
	uint64_t limit = 0;
	const VkFFTConfiguration* c = &app->configuration;
	for (uint64_t i = 0; c->buffer && c->bufferSize && i < c->bufferNum; i++)
		if (c->buffer[i] == info->buffer && c->bufferSize[i] > limit) limit = c->bufferSize[i];
	for (uint64_t i = 0; c->inputBuffer && c->inputBufferSize && i < c->inputBufferNum; i++)
		if (c->inputBuffer[i] == info->buffer && c->inputBufferSize[i] > limit) limit = c->inputBufferSize[i];
	for (uint64_t i = 0; c->outputBuffer && c->outputBufferSize && i < c->outputBufferNum; i++)
		if (c->outputBuffer[i] == info->buffer && c->outputBufferSize[i] > limit) limit = c->outputBufferSize[i];
	for (uint64_t i = 0; c->tempBuffer && c->tempBufferSize && i < c->tempBufferNum; i++)
		if (c->tempBuffer[i] == info->buffer && c->tempBufferSize[i] > limit) limit = c->tempBufferSize[i];
	if (limit > info->offset && info->range != VK_WHOLE_SIZE && info->offset + info->range > limit)
		info->range = limit - info->offset;
}
]=])
set(check_anchor "static inline VkFFTResult VkFFTCheckUpdateBufferSet(VkFFTApplication* app, VkFFTAxis* axis, uint64_t planStage, VkFFTLaunchParams* launchParams) {")
vkvit_patch_exact(text "${check_anchor}" "${clamp_function}${check_anchor}" 1 "the definition of VkFFTCheckUpdateBufferSet")
set(update_anchor "vkUpdateDescriptorSets(app->configuration.device[0], 1, &writeDescriptorSet, 0, 0);")
vkvit_patch_exact(text "${update_anchor}" "vkvitClampDescriptorRange(app, &descriptorBufferInfo); ${update_anchor}" 2
                  "the descriptor update in VkFFTUpdateBufferSet*")
message(STATUS "vkFFT.h ${version}: patched descriptor ranges to stay inside the declared buffer sizes (2 places)")

# Always rewritten: the command runs only when the system header, glslang's or this script change.
file(WRITE "${VKFFT_OUT}" "${text}")
