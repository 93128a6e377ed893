// Device memory: Buffers (one VkBuffer over its own allocation), Views (a byte range of a buffer,
// what ops bind), and Arenas (a few large allocations sub-allocated by offset: params, grads,
// optimizer state, activations, scratch). Arenas respect maxMemoryAllocationSize by spreading
// over chunks; a single tensor must fit one chunk.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <vulkan/vulkan.h>

namespace vkvit::vk {

class Context;

// A byte range of a buffer. Ops take Views; the shape lives in the op's arguments.
struct View {
  VkBuffer buffer = VK_NULL_HANDLE;
  uint64_t offset = 0;  // bytes
  uint64_t size = 0;    // bytes

  uint64_t floats() const { return size / sizeof(float); }
  // Sub-range in bytes; throws when it leaves this view.
  View bytes(uint64_t first, uint64_t count) const;
  // Sub-range in float elements.
  View slice(uint64_t first_float, uint64_t count_floats) const { return bytes(first_float * 4, count_floats * 4); }
  bool overlaps(const View& o) const {
    return buffer == o.buffer && offset < o.offset + o.size && o.offset < offset + size;
  }
};

enum class MemoryKind {
  device,        // device-local; where tensors live
  host_staging,  // host-visible + coherent, mapped; uploads and downloads
  host_readback, // host-visible, cached when possible, mapped; reading results every step
};

class Buffer {
 public:
  // `what` names the buffer in errors ("parameters", "activations", ...).
  Buffer(Context& ctx, uint64_t bytes, MemoryKind kind, const std::string& what);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  VkBuffer handle() const { return buffer_; }
  uint64_t size() const { return size_; }
  View view() const { return View{buffer_, 0, size_}; }
  void* mapped() const { return mapped_; }  // null for device memory
  const std::string& what() const { return what_; }

 private:
  Context& ctx_;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
  uint64_t size_ = 0;
  uint64_t allocation_size_ = 0;
  void* mapped_ = nullptr;
  std::string what_;
};

// Bump allocator over up to `capacity` bytes, allocated in chunks of at most
// maxMemoryAllocationSize as needed. Sub-allocations are aligned for storage-buffer binding.
class Arena {
 public:
  Arena(Context& ctx, std::string what, uint64_t capacity, MemoryKind kind = MemoryKind::device);

  // A view of `bytes` bytes; `name` is used in the error when it does not fit.
  View alloc(uint64_t bytes, const std::string& name);
  View alloc_floats(uint64_t count, const std::string& name) { return alloc(count * sizeof(float), name); }
  void reset();  // forget all sub-allocations, keep the memory
  uint64_t used() const;
  uint64_t capacity() const { return capacity_; }
  const std::vector<std::unique_ptr<Buffer>>& chunks() const { return chunks_; }

 private:
  Context& ctx_;
  std::string what_;
  uint64_t capacity_;
  MemoryKind kind_;
  uint64_t chunk_limit_;
  uint64_t alignment_;
  std::vector<std::unique_ptr<Buffer>> chunks_;
  std::vector<uint64_t> chunk_used_;
  uint64_t reserved_ = 0;  // bytes of capacity already given to chunks
};

std::string format_bytes(uint64_t bytes);

}  // namespace vkvit::vk
