// Records many dispatches into one command buffer and submits them together. Barriers are
// inserted only where a command touches a buffer range that an earlier, not yet fenced command
// touched (treated as read+write), so independent dispatches may overlap. With profiling on,
// every command is timestamped and its GPU time lands in the context's Profiler under its label.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include <vulkan/vulkan.h>

#include "vk/memory.h"
#include "vk/pipeline.h"

namespace vkvit::vk {

class Context;

// Workgroup counts. Shaders that may need more than 65535 groups read their linear group id with
// linear_group_id() from shaders/common/index.glsl, which folds y into x.
struct Groups {
  uint32_t x = 1, y = 1, z = 1;
};

class Recorder {
 public:
  explicit Recorder(Context& ctx);
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  Context& context() { return ctx_; }

  // Splits `count` workgroups into x (<= the device's limit) and y.
  Groups groups_1d(uint64_t count) const;

  // Binds `views` to bindings 0..n-1 and dispatches. Checks binding count, push size and that
  // every view fits maxStorageBufferRange; `label` names the op in errors and the profile.
  void dispatch(const Kernel& kernel, std::initializer_list<View> views, const void* push, uint32_t push_bytes,
                Groups groups, const char* label);
  template <class Push>
  void dispatch(const Kernel& kernel, std::initializer_list<View> views, const Push& push, Groups groups,
                const char* label) {
    dispatch(kernel, views, &push, sizeof(Push), groups, label);
  }

  // Records commands that are not our own dispatches (VkFFT's) with the same hazard tracking:
  // `views` are the ranges they touch, `record` receives the command buffer.
  void external(std::initializer_list<View> views, const char* label, const std::function<void(VkCommandBuffer)>& record);

  void fill(const View& dst, float value);  // every float of dst = value (explicit zeroing of grads)
  void copy(const View& src, const View& dst);
  void barrier();  // full compute/transfer barrier

  void submit();           // end recording and submit; returns immediately
  void wait();             // wait for the submission (and every flushed part), collect timestamps
  void submit_and_wait();  // both
  // Submits what was recorded so far as a part of its own and goes on recording into a fresh
  // command buffer, so the host can act on the part's results (wait_flushed) while the GPU runs
  // the rest: the data-parallel step sends gradient buckets while the backward pass goes on.
  // Returns the part's id, or -1 when nothing was submitted (profiling on: one timestamp pool per
  // submission; the part then completes with the final wait()).
  int flush();
  void wait_flushed(int id);  // waits for part `id` (no-op for -1)
  // Fault injection (VKVIT_FAULT_DEVICE_LOST_AT_STEP): the next wait() still waits for the work,
  // then reports `result` through the same check() as a failing vkWaitForFences.
  void inject_wait_result(VkResult result) { injected_ = result; }
  uint32_t commands() const { return commands_; }
  // Barriers the overlap tracking inserted between commands over this recorder's life (not those
  // that open and close a submission or that barrier() records), for the barrier tests.
  uint64_t overlap_barriers() const { return overlap_barriers_; }

 private:
  void begin_if_needed();
  void before_command(std::initializer_list<View> views, const char* label);
  void after_command();

  Context& ctx_;
  VkCommandBuffer cb_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  VkQueryPool queries_ = VK_NULL_HANDLE;
  uint32_t query_capacity_ = 0;
  bool recording_ = false;
  bool submitted_ = false;
  uint32_t commands_ = 0;
  uint64_t overlap_barriers_ = 0;
  std::vector<View> pending_;  // ranges touched since the last barrier
  std::vector<std::string> labels_;
  VkResult injected_ = VK_SUCCESS;
  struct Part {
    VkCommandBuffer cb;
    VkFence fence;
  };
  std::vector<Part> flushed_;  // parts submitted by flush() since the last wait(), in order
  std::vector<Part> spare_;    // command buffers and fences of parts that completed
};

}  // namespace vkvit::vk
