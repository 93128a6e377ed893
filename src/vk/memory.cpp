#include "vk/memory.h"

#include <algorithm>
#include <cstdio>

#include "vk/context.h"
#include "vk/error.h"
#include "vk/fault.h"
#include "vk/pipeline.h"

namespace vkvit::vk {

std::string format_bytes(uint64_t bytes) {
  char buf[64];
  if (bytes >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(1ull << 30));
  else if (bytes >= (1ull << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / double(1ull << 20));
  else if (bytes >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", bytes / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  return buf;
}

View View::bytes(uint64_t first, uint64_t count) const {
  if (first + count > size)
    throw Error("view range [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") is outside a view of " + std::to_string(size) + " bytes");
  return View{buffer, offset + first, count};
}

Buffer::Buffer(Context& ctx, uint64_t bytes, MemoryKind kind, const std::string& what)
    : ctx_(ctx), size_(bytes), what_(what) {
  const DeviceInfo& info = ctx.info();
  if (bytes == 0) throw Error("cannot allocate an empty buffer for " + what);
  if (bytes > info.max_memory_allocation_size)
    throw OutOfMemoryError("cannot allocate " + format_bytes(bytes) + " for " + what + " on " + info.name +
                               ": the device allows at most " + format_bytes(info.max_memory_allocation_size) +
                               " per allocation (maxMemoryAllocationSize)",
                           "use a smaller batch or model");

  VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bci.size = bytes;
  // Uniform texel buffer too: the lavapipe matmul reads its operands through texel views of any buffer.
  bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
              VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  check(vkCreateBuffer(ctx.device(), &bci, nullptr, &buffer_), "vkCreateBuffer");

  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(ctx.device(), buffer_, &req);
  VkMemoryPropertyFlags required = 0, preferred = 0;
  switch (kind) {
    case MemoryKind::device:
      preferred = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
      break;
    case MemoryKind::host_staging:
      required = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
      break;
    case MemoryKind::host_readback:
      required = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
      preferred = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
      break;
  }
  VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  mai.allocationSize = req.size;
  mai.memoryTypeIndex = ctx.memory_type(req.memoryTypeBits, required, preferred);
  // VKVIT_FAULT_DEVICE_MEMORY_LIMIT: fail as the driver would on a heap of that size.
  const uint64_t limit = fault::faults().device_memory_limit;
  VkResult r = limit && ctx.allocated_bytes() + req.size > limit
                   ? VK_ERROR_OUT_OF_DEVICE_MEMORY
                   : vkAllocateMemory(ctx.device(), &mai, nullptr, &memory_);
  if (r != VK_SUCCESS) {
    vkDestroyBuffer(ctx.device(), buffer_, nullptr);
    buffer_ = VK_NULL_HANDLE;
    memory_ = VK_NULL_HANDLE;
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
      throw OutOfMemoryError("out of device memory allocating " + format_bytes(bytes) + " for " + what + " on " +
                                 info.name + " (memory heap " +
                                 format_bytes(ctx.heap_bytes_of_type(mai.memoryTypeIndex)) + ", " +
                                 format_bytes(ctx.allocated_bytes()) + " of it already allocated by vkvit; at most " +
                                 format_bytes(info.max_memory_allocation_size) + " per allocation)",
                             "use a smaller batch or model");
    check(r, ("vkAllocateMemory for " + what).c_str());
  }
  check(vkBindBufferMemory(ctx.device(), buffer_, memory_, 0), "vkBindBufferMemory");
  if (kind != MemoryKind::device)
    check(vkMapMemory(ctx.device(), memory_, 0, VK_WHOLE_SIZE, 0, &mapped_), "vkMapMemory");
  allocation_size_ = req.size;
  ctx_.note_allocation(static_cast<int64_t>(req.size));
}

Buffer::~Buffer() {
  ctx_.pipelines().forget_buffer(buffer_);
  if (mapped_) vkUnmapMemory(ctx_.device(), memory_);
  if (buffer_) vkDestroyBuffer(ctx_.device(), buffer_, nullptr);
  if (memory_) {
    vkFreeMemory(ctx_.device(), memory_, nullptr);
    ctx_.note_allocation(-static_cast<int64_t>(allocation_size_));
  }
}

Arena::Arena(Context& ctx, std::string what, uint64_t capacity, MemoryKind kind)
    : ctx_(ctx), what_(std::move(what)), capacity_(capacity), kind_(kind) {
  chunk_limit_ = ctx.info().max_memory_allocation_size;
  alignment_ = std::max<uint64_t>(ctx.info().min_storage_offset_alignment, 16);
}

View Arena::alloc(uint64_t bytes, const std::string& name) {
  bytes = std::max<uint64_t>(bytes, 4);
  const uint64_t padded = (bytes + alignment_ - 1) / alignment_ * alignment_;
  for (size_t i = 0; i < chunks_.size(); ++i) {
    if (chunk_used_[i] + padded <= chunks_[i]->size()) {
      View v{chunks_[i]->handle(), chunk_used_[i], bytes};
      chunk_used_[i] += padded;
      return v;
    }
  }
  if (padded > chunk_limit_)
    throw OutOfMemoryError(name + " (" + what_ + ") needs " + format_bytes(bytes) + " in one piece but " +
                               ctx_.info().name + " allows at most " + format_bytes(chunk_limit_) +
                               " per allocation (maxMemoryAllocationSize)",
                           "use a smaller batch or model");
  if (reserved_ + padded > capacity_)
    throw Error(what_ + " arena is full: " + name + " needs " + format_bytes(bytes) + ", " +
                format_bytes(capacity_ - reserved_) + " of " + format_bytes(capacity_) + " left");
  // New chunk: as large as the remaining capacity allows, within the per-allocation limit.
  uint64_t chunk = std::min(capacity_ - reserved_, chunk_limit_ / alignment_ * alignment_);
  chunk = std::max(chunk, padded);
  chunks_.push_back(std::make_unique<Buffer>(ctx_, chunk, kind_, what_));
  chunk_used_.push_back(padded);
  reserved_ += chunk;
  return View{chunks_.back()->handle(), 0, bytes};
}

void Arena::reset() { std::fill(chunk_used_.begin(), chunk_used_.end(), 0); }

uint64_t Arena::used() const {
  uint64_t u = 0;
  for (uint64_t c : chunk_used_) u += c;
  return u;
}

}  // namespace vkvit::vk
