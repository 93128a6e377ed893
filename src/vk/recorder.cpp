#include "vk/recorder.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "vk/context.h"
#include "vk/error.h"
#include "vk/profiler.h"

namespace vkvit::vk {

namespace {
constexpr uint32_t kQueryCapacity = 8192;  // timestamps per submission when profiling
}

Recorder::Recorder(Context& ctx) : ctx_(ctx) {
  VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  ai.commandPool = ctx.command_pool();
  ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  ai.commandBufferCount = 1;
  check(vkAllocateCommandBuffers(ctx.device(), &ai, &cb_), "vkAllocateCommandBuffers");
  VkFenceCreateInfo fi{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  check(vkCreateFence(ctx.device(), &fi, nullptr, &fence_), "vkCreateFence");
  if (ctx.profiling() && ctx.info().timestamps) {
    VkQueryPoolCreateInfo qi{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
    qi.queryType = VK_QUERY_TYPE_TIMESTAMP;
    qi.queryCount = kQueryCapacity;
    check(vkCreateQueryPool(ctx.device(), &qi, nullptr, &queries_), "vkCreateQueryPool");
    query_capacity_ = kQueryCapacity;
  }
}

Recorder::~Recorder() {
  if (submitted_) vkWaitForFences(ctx_.device(), 1, &fence_, VK_TRUE, UINT64_MAX);
  for (const Part& p : flushed_) vkWaitForFences(ctx_.device(), 1, &p.fence, VK_TRUE, UINT64_MAX);
  spare_.insert(spare_.end(), flushed_.begin(), flushed_.end());
  for (const Part& p : spare_) {
    vkDestroyFence(ctx_.device(), p.fence, nullptr);
    vkFreeCommandBuffers(ctx_.device(), ctx_.command_pool(), 1, &p.cb);
  }
  if (queries_) vkDestroyQueryPool(ctx_.device(), queries_, nullptr);
  vkDestroyFence(ctx_.device(), fence_, nullptr);
  vkFreeCommandBuffers(ctx_.device(), ctx_.command_pool(), 1, &cb_);
}

Groups Recorder::groups_1d(uint64_t count) const {
  const uint64_t max_x = ctx_.info().max_workgroup_count[0];
  if (count <= max_x) return Groups{static_cast<uint32_t>(std::max<uint64_t>(count, 1)), 1, 1};
  const uint64_t y = (count + max_x - 1) / max_x;
  if (y > ctx_.info().max_workgroup_count[1])
    throw Error("dispatch of " + std::to_string(count) + " workgroups exceeds the device's limits; split the batch");
  const uint64_t x = (count + y - 1) / y;
  return Groups{static_cast<uint32_t>(x), static_cast<uint32_t>(y), 1};
}

void Recorder::begin_if_needed() {
  if (submitted_) throw Error("internal: recording into a submitted command buffer; call wait() first");
  if (recording_) return;
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(vkBeginCommandBuffer(cb_, &bi), "vkBeginCommandBuffer");
  recording_ = true;
  commands_ = 0;
  labels_.clear();
  pending_.clear();
  // Work recorded earlier (uploads, previous submissions) is fenced, but make its writes visible.
  barrier();
  if (queries_) {
    vkCmdResetQueryPool(cb_, queries_, 0, query_capacity_);
    vkCmdWriteTimestamp(cb_, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, queries_, 0);
  }
}

void Recorder::barrier() {
  if (!recording_) return;
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_HOST_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                     VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_HOST_READ_BIT;
  const VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  vkCmdPipelineBarrier(cb_, stages | VK_PIPELINE_STAGE_HOST_BIT, stages | VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0,
                       nullptr, 0, nullptr);
  pending_.clear();
}

void Recorder::before_command(std::initializer_list<View> views, const char* label) {
  begin_if_needed();
  // A zero-length range touches no byte: it neither needs a barrier nor makes a later one.
  bool hazard = false;
  for (const View& v : views)
    for (const View& p : pending_)
      if (v.size > 0 && p.size > 0 && v.overlaps(p)) hazard = true;
  if (hazard && !ctx_.tuning().drop_barriers) {
    barrier();
    ++overlap_barriers_;
  }
  pending_.insert(pending_.end(), views.begin(), views.end());
  labels_.emplace_back(label);
}

void Recorder::after_command() {
  ++commands_;
  if (queries_) {
    if (commands_ + 1 > query_capacity_)
      throw Error("more than " + std::to_string(query_capacity_ - 1) + " commands in one profiled submission");
    vkCmdWriteTimestamp(cb_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_, commands_);
  }
}

void Recorder::dispatch(const Kernel& kernel, std::initializer_list<View> views, const void* push,
                        uint32_t push_bytes, Groups groups, const char* label) {
  if (push_bytes != kernel.push_bytes)
    throw Error(std::string("internal: ") + label + ": push constants of " + std::to_string(push_bytes) +
                " bytes for shader " + kernel.name + " which takes " + std::to_string(kernel.push_bytes));
  const DeviceInfo& info = ctx_.info();
  for (const View& v : views) {
    if (v.buffer == VK_NULL_HANDLE || v.size == 0)
      throw Error(std::string("internal: ") + label + ": empty buffer binding");
    if (v.size > info.max_storage_buffer_range)
      throw Error(std::string(label) + ": a buffer binding of " + format_bytes(v.size) +
                  " exceeds the device's maxStorageBufferRange of " + format_bytes(info.max_storage_buffer_range) +
                  "; use a smaller batch");
  }
  if (groups.x > info.max_workgroup_count[0] || groups.y > info.max_workgroup_count[1] ||
      groups.z > info.max_workgroup_count[2])
    throw Error(std::string("internal: ") + label + ": dispatch of " + std::to_string(groups.x) + "x" +
                std::to_string(groups.y) + "x" + std::to_string(groups.z) +
                " workgroups exceeds maxComputeWorkGroupCount");
  VkDescriptorSet set = ctx_.pipelines().descriptor_set(kernel, views.begin(), static_cast<uint32_t>(views.size()));
  before_command(views, label);
  vkCmdBindPipeline(cb_, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.pipeline);
  vkCmdBindDescriptorSets(cb_, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.layout, 0, 1, &set, 0, nullptr);
  if (push_bytes) vkCmdPushConstants(cb_, kernel.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes, push);
  vkCmdDispatch(cb_, groups.x, groups.y, groups.z);
  after_command();
}

void Recorder::external(std::initializer_list<View> views, const char* label,
                        const std::function<void(VkCommandBuffer)>& record) {
  before_command(views, label);
  record(cb_);
  after_command();
}

void Recorder::fill(const View& dst, float value) {
  before_command({dst}, "fill");
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  vkCmdFillBuffer(cb_, dst.buffer, dst.offset, dst.size / 4 * 4, bits);
  after_command();
}

void Recorder::copy(const View& src, const View& dst) {
  if (dst.size < src.size) throw Error("internal: copy into a smaller view");
  before_command({src, dst}, "copy");
  VkBufferCopy region{src.offset, dst.offset, src.size};
  vkCmdCopyBuffer(cb_, src.buffer, dst.buffer, 1, &region);
  after_command();
}

void Recorder::submit() {
  begin_if_needed();
  barrier();  // results visible to the host and to the next submission
  check(vkEndCommandBuffer(cb_), "vkEndCommandBuffer");
  recording_ = false;
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &cb_;
  check(vkQueueSubmit(ctx_.queue(), 1, &si, fence_), "vkQueueSubmit");
  submitted_ = true;
}

int Recorder::flush() {
  if (queries_ || !recording_) return -1;
  barrier();  // the part's results visible to the host and to what follows
  check(vkEndCommandBuffer(cb_), "vkEndCommandBuffer");
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &cb_;
  check(vkQueueSubmit(ctx_.queue(), 1, &si, fence_), "vkQueueSubmit");
  flushed_.push_back({cb_, fence_});
  if (spare_.empty()) {
    Part p;
    VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = ctx_.command_pool();
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    check(vkAllocateCommandBuffers(ctx_.device(), &ai, &p.cb), "vkAllocateCommandBuffers");
    VkFenceCreateInfo fi{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    check(vkCreateFence(ctx_.device(), &fi, nullptr, &p.fence), "vkCreateFence");
    spare_.push_back(p);
  }
  cb_ = spare_.back().cb;
  fence_ = spare_.back().fence;
  spare_.pop_back();
  // The next command begins the fresh buffer with a full barrier, which orders it after the
  // flushed parts (barriers reach back over earlier submissions to the same queue).
  recording_ = false;
  return static_cast<int>(flushed_.size()) - 1;
}

void Recorder::wait_flushed(int id) {
  if (id < 0) return;
  if (static_cast<size_t>(id) >= flushed_.size()) throw Error("internal: wait_flushed: no part " + std::to_string(id));
  check(vkWaitForFences(ctx_.device(), 1, &flushed_[size_t(id)].fence, VK_TRUE, UINT64_MAX), "vkWaitForFences");
}

void Recorder::wait() {
  // Flushed parts came before the final submission on the same queue.
  for (const Part& p : flushed_) {
    check(vkWaitForFences(ctx_.device(), 1, &p.fence, VK_TRUE, UINT64_MAX), "vkWaitForFences");
    check(vkResetFences(ctx_.device(), 1, &p.fence), "vkResetFences");
    check(vkResetCommandBuffer(p.cb, 0), "vkResetCommandBuffer");
    spare_.push_back(p);
  }
  flushed_.clear();
  if (!submitted_) return;
  VkResult r = vkWaitForFences(ctx_.device(), 1, &fence_, VK_TRUE, UINT64_MAX);
  submitted_ = false;
  if (r == VK_SUCCESS && injected_ != VK_SUCCESS) r = std::exchange(injected_, VK_SUCCESS);
  check(r, "vkWaitForFences");
  check(vkResetFences(ctx_.device(), 1, &fence_), "vkResetFences");
  if (queries_ && commands_ > 0) {
    std::vector<uint64_t> t(commands_ + 1);
    check(vkGetQueryPoolResults(ctx_.device(), queries_, 0, commands_ + 1, t.size() * 8, t.data(), 8,
                                VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
          "vkGetQueryPoolResults");
    const double period = ctx_.info().timestamp_period_ns;
    for (uint32_t i = 0; i < commands_; ++i)
      ctx_.profiler().add(labels_[i], double(t[i + 1] - t[i]) * period);
  }
  check(vkResetCommandBuffer(cb_, 0), "vkResetCommandBuffer");
}

void Recorder::submit_and_wait() {
  submit();
  wait();
}

}  // namespace vkvit::vk
