// The one translation unit that compiles VkFFT (header-only, ~30 s to compile): everything VkFFT
// needs from vkvit's Context, and its plans recorded into vkvit's own command buffers.
#include "vk/fft.h"

#include <algorithm>

#include "vk/context.h"
#include "vk/error.h"
#include "vk/pipeline.h"
#include "vk/recorder.h"

// The patched build-tree copy (src/vk/patch_vkfft.cmake), Vulkan backend only.
#define VKFFT_BACKEND 0
#include <vkfft_patched/vkFFT.h>

namespace vkvit::vk {

namespace {

// VkFFT 1.2.26 has no error-string function; its codes are grouped by thousands.
std::string vkfft_error_text(VkFFTResult r) {
  const int code = static_cast<int>(r);
  const char* kind = "error";
  switch (r) {
    case VKFFT_ERROR_MALLOC_FAILED: kind = "host allocation failed"; break;
    case VKFFT_ERROR_UNSUPPORTED_RADIX: kind = "unsupported radix"; break;
    case VKFFT_ERROR_UNSUPPORTED_FFT_LENGTH: kind = "unsupported FFT length"; break;
    case VKFFT_ERROR_UNSUPPORTED_FFT_LENGTH_R2C: kind = "unsupported R2C length"; break;
    case VKFFT_ERROR_FAILED_TO_ALLOCATE_MEMORY:
    case VKFFT_ERROR_FAILED_TO_ALLOCATE: kind = "device allocation failed"; break;
    case VKFFT_ERROR_FAILED_SHADER_PREPROCESS:
    case VKFFT_ERROR_FAILED_SHADER_PARSE:
    case VKFFT_ERROR_FAILED_SHADER_LINK:
    case VKFFT_ERROR_FAILED_SPIRV_GENERATE: kind = "glslang failed on a generated shader"; break;
    case VKFFT_ERROR_FAILED_TO_CREATE_PIPELINE:
    case VKFFT_ERROR_FAILED_TO_CREATE_SHADER_MODULE: kind = "pipeline creation failed"; break;
    default:
      if (code >= 1000 && code < 2000) kind = "invalid Vulkan handle or plan option";
      else if (code >= 2000 && code < 3000) kind = "missing buffer or size";
      else if (code >= 3000 && code < 4000) kind = "unsupported size";
      else if (code >= 4000) kind = "Vulkan call failed";
  }
  return "VkFFT error " + std::to_string(code) + " (" + kind + ")";
}

void check_fft(VkFFTResult r, const char* what, const FftShape& shape) {
  if (r != VKFFT_SUCCESS)
    throw Error(std::string("FFT ") + what + " for " + shape.str() + " failed: " + vkfft_error_text(r));
}

// The views a plan binds: large enough for the shape, aligned for VkFFT's element indexing,
// apart, and within one descriptor's reach.
void check_plan_views(const Context& ctx, const FftShape& shape, const View& real, const View& spectrum) {
  if (shape.batch == 0 || shape.h == 0 || shape.w < 2)
    throw Error("FFT plan for " + shape.str() + ": every size must be positive and w at least 2");
  const uint64_t real_bytes = shape.real_floats() * sizeof(float);
  const uint64_t spectrum_bytes = shape.spectrum_floats() * sizeof(float);
  if (real.buffer == VK_NULL_HANDLE || real.size < real_bytes)
    throw Error("FFT plan for " + shape.str() + ": the real view holds " + std::to_string(real.size) +
                " bytes, it needs " + std::to_string(real_bytes));
  if (spectrum.buffer == VK_NULL_HANDLE || spectrum.size < spectrum_bytes)
    throw Error("FFT plan for " + shape.str() + ": the spectrum view holds " + std::to_string(spectrum.size) +
                " bytes, it needs " + std::to_string(spectrum_bytes));
  if (real.offset % 8 != 0 || spectrum.offset % 8 != 0)
    throw Error("FFT plan for " + shape.str() + ": view offsets must be multiples of 8 bytes (VkFFT indexes in elements)");
  if (real.overlaps(spectrum))
    throw Error("FFT plan for " + shape.str() + ": the real and spectrum views overlap");
  // VkFFT binds each buffer as one descriptor from byte 0 to the end of the data it uses.
  const uint64_t max_range = ctx.info().max_storage_buffer_range;
  if (real.offset + real_bytes > max_range || spectrum.offset + spectrum_bytes > max_range)
    throw Error("FFT plan for " + shape.str() + ": a buffer binding of " +
                format_bytes(std::max(real.offset + real_bytes, spectrum.offset + spectrum_bytes)) +
                " (view offset included) exceeds the device's maxStorageBufferRange of " + format_bytes(max_range) +
                "; use a smaller batch");
}

}  // namespace

std::string FftShape::str() const {
  return "batch " + std::to_string(batch) + " of " + std::to_string(h) + "x" + std::to_string(w) + " (h x w)";
}

// Everything VkFFT keeps pointers to lives here, at a stable address, for the plan's lifetime:
// VkFFTConfiguration stores pointers to the handles and size arrays, not copies.
struct Fft2d::Impl {
  VkFFTApplication app{};
  VkPhysicalDevice physical = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  VkQueue queue = VK_NULL_HANDLE;
  VkCommandPool pool = VK_NULL_HANDLE;
  VkFence fence = VK_NULL_HANDLE;  // VkFFT's own uploads at plan time (twiddle/Bluestein tables)
  VkBuffer spectrum_buffer = VK_NULL_HANDLE;
  VkBuffer real_buffer = VK_NULL_HANDLE;
  // Bytes from the VkBuffer's start to the end of the data: VkFFT binds from byte 0 and adds the
  // offset in its shaders, and the build patch clamps its descriptor ranges to these sizes.
  uint64_t spectrum_bytes = 0;
  uint64_t real_bytes = 0;
  uint64_t spectrum_offset = 0;
  uint64_t real_offset = 0;
  bool initialized = false;
  View temp;  // VkFFT's private scratch buffer, when it made one (large axes); empty otherwise

  void bind(Context& ctx, const View& real, const View& spectrum, const FftShape& shape);
  VkFFTConfiguration configuration(const FftShape& shape, FftNorm norm, FftDirections directions);
  void initialize(const VkFFTConfiguration& c, const FftShape& shape);
};

// The device handles and buffer ranges VkFFT will point at; creates the fence of its plan-time uploads.
void Fft2d::Impl::bind(Context& ctx, const View& real, const View& spectrum, const FftShape& shape) {
  physical = ctx.physical_device();
  device = ctx.device();
  queue = ctx.queue();
  pool = ctx.command_pool();
  VkFenceCreateInfo fi{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  check(vkCreateFence(device, &fi, nullptr, &fence), "vkCreateFence (FFT plan)");
  spectrum_buffer = spectrum.buffer;
  real_buffer = real.buffer;
  spectrum_offset = spectrum.offset;
  real_offset = real.offset;
  spectrum_bytes = spectrum.offset + shape.spectrum_floats() * sizeof(float);
  real_bytes = real.offset + shape.real_floats() * sizeof(float);
}

VkFFTConfiguration Fft2d::Impl::configuration(const FftShape& shape, FftNorm norm, FftDirections directions) {
  VkFFTConfiguration c{};
  c.FFTdim = 2;
  c.size[0] = shape.w;  // VkFFT's axis 0 is the contiguous one
  c.size[1] = shape.h;
  c.size[2] = 1;
  c.numberBatches = shape.batch;
  c.physicalDevice = &physical;
  c.device = &device;
  c.queue = &queue;
  c.commandPool = &pool;
  c.fence = &fence;
  c.performR2C = 1;
  // Out of place: the real grids are the "input buffer" (unpadded rows of w floats), the complex
  // half spectrum is VkFFT's working "buffer"; the inverse writes back into the input buffer.
  c.isInputFormatted = 1;
  c.inverseReturnToInputBuffer = 1;
  c.inputBufferStride[0] = shape.w;  // real elements
  c.inputBufferStride[1] = shape.w * shape.h;
  c.inputBufferStride[2] = shape.w * shape.h;
  c.bufferStride[0] = shape.spectrum_w();  // complex elements
  c.bufferStride[1] = shape.spectrum_w() * shape.h;
  c.bufferStride[2] = shape.spectrum_w() * shape.h;
  c.bufferNum = 1;
  c.inputBufferNum = 1;
  c.buffer = &spectrum_buffer;
  c.bufferSize = &spectrum_bytes;
  c.bufferOffset = spectrum_offset;
  c.inputBuffer = &real_buffer;
  c.inputBufferSize = &real_bytes;
  c.inputBufferOffset = real_offset;
  c.normalize = norm == FftNorm::backward ? 1 : 0;
  c.makeForwardPlanOnly = directions == FftDirections::forward_only ? 1 : 0;
  c.makeInversePlanOnly = directions == FftDirections::inverse_only ? 1 : 0;
  return c;
}

// Compiles the plan; on failure releases what was made (the fence included) and throws.
void Fft2d::Impl::initialize(const VkFFTConfiguration& c, const FftShape& shape) {
  VkFFTResult r = initializeVkFFT(&app, c);
  if (r != VKFFT_SUCCESS) {
    // initializeVkFFT releases what it made on most failures; deleteVkFFT is safe on the rest.
    deleteVkFFT(&app);
    vkDestroyFence(device, fence, nullptr);
    check_fft(r, "plan creation", shape);
  }
  initialized = true;
  if (app.configuration.allocateTempBuffer && app.configuration.tempBuffer && app.configuration.tempBufferSize)
    temp = View{app.configuration.tempBuffer[0], 0, app.configuration.tempBufferSize[0]};
}

Fft2d::Fft2d(Context& ctx, const FftShape& shape, const View& real, const View& spectrum, FftNorm norm,
             FftDirections directions)
    : ctx_(ctx), shape_(shape), norm_(norm), directions_(directions), real_(real), spectrum_(spectrum),
      impl_(std::make_unique<Impl>()) {
  check_plan_views(ctx, shape, real, spectrum);
  // Only the used prefix of each view is touched: hazard tracking should not see the rest.
  real_ = real.bytes(0, shape.real_floats() * sizeof(float));
  spectrum_ = spectrum.bytes(0, shape.spectrum_floats() * sizeof(float));
  impl_->bind(ctx, real, spectrum, shape);
  impl_->initialize(impl_->configuration(shape, norm, directions), shape);
}

Fft2d::~Fft2d() {
  if (impl_->initialized) deleteVkFFT(&impl_->app);
  vkDestroyFence(impl_->device, impl_->fence, nullptr);
}

void Fft2d::forward(Recorder& rec) {
  if (directions_ == FftDirections::inverse_only)
    throw Error("internal: forward FFT on an inverse-only plan for " + shape_.str());
  Impl& im = *impl_;
  rec.external({real_, spectrum_, im.temp}, "fft2d_r2c", [&](VkCommandBuffer cb) {
    VkFFTLaunchParams lp{};
    lp.commandBuffer = &cb;
    // No buffers here, and the offsets the plan was built with: any difference makes VkFFT rewrite
    // its descriptor sets or offsets at record time (see fft.h, Binding).
    lp.bufferOffset = im.spectrum_offset;
    lp.inputBufferOffset = im.real_offset;
    check_fft(VkFFTAppend(&im.app, -1, &lp), "forward (R2C) recording", shape_);
  });
}

void Fft2d::inverse(Recorder& rec) {
  if (directions_ == FftDirections::forward_only)
    throw Error("internal: inverse FFT on a forward-only plan for " + shape_.str());
  Impl& im = *impl_;
  // torch.fft.irfft2 semantics for any spectrum, not only Hermitian ones (see the shader).
  struct HermitianPush {
    uint32_t batch, h, wc, columns, pairs;
  } push{static_cast<uint32_t>(shape_.batch), static_cast<uint32_t>(shape_.h), static_cast<uint32_t>(shape_.spectrum_w()),
         shape_.w % 2 == 0 ? 2u : 1u, static_cast<uint32_t>(shape_.h / 2 + 1)};
  constexpr uint32_t group = 64;
  const Kernel& k = ctx_.pipelines().get("fft_hermitian_columns", 1, sizeof(push), WorkgroupSpec{group});
  const uint64_t invocations = uint64_t(push.batch) * push.columns * push.pairs;
  rec.dispatch(k, {spectrum_}, push, rec.groups_1d((invocations + group - 1) / group), "fft2d_hermitian_columns");
  rec.external({spectrum_, real_, im.temp}, "fft2d_c2r", [&](VkCommandBuffer cb) {
    VkFFTLaunchParams lp{};
    lp.commandBuffer = &cb;
    lp.bufferOffset = im.spectrum_offset;
    lp.inputBufferOffset = im.real_offset;
    check_fft(VkFFTAppend(&im.app, 1, &lp), "inverse (C2R) recording", shape_);
  });
}

}  // namespace vkvit::vk
