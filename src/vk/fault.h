// Fault injection for the reliability tests: environment variables that make the GPU path fail
// the way real hardware and real training runs do, so that the detection and recovery code runs
// for real (not a mock of it). They are read here, once per process, and nowhere else; none is set
// in normal use. Steps are numbered as in steps.csv and --max-steps: step S is the S-th optimizer
// update (1-based), and a step whose update is skipped keeps its number for the next attempt.
//
//   VKVIT_FAULT_NAN_AT_STEP=S[,C]
//       The trainer writes a NaN into the first input float of step S's batch on the GPU (a fill
//       recorded into the step's own command buffer), for C attempts of step S in a row (default
//       1). The loss, the gradients and the gradient norm turn NaN on the device, the optimizer
//       skips the update there, and the trainer's non-finite check sees it as it would a real
//       divergence. C above train.max_nonfinite_steps makes the run stop.
//   VKVIT_FAULT_DEVICE_MEMORY_LIMIT=BYTES
//       The device behaves as if its memory heap held BYTES (suffixes K, M, G for KiB, MiB, GiB):
//       the context reports heaps and maxMemoryAllocationSize no larger, and an allocation that
//       would take vkvit's device memory past BYTES fails with VK_ERROR_OUT_OF_DEVICE_MEMORY.
//       Every vkvit allocation counts (staging too), as on a device with one heap (lavapipe).
//   VKVIT_FAULT_DEVICE_LOST_AT_STEP=S
//       The wait for step S's submission reports VK_ERROR_DEVICE_LOST (after the work really
//       finished), through the same check() as a real lost device; once per process.
//   VKVIT_FAULT_SAVE_DELAY_MS=MS
//       A checkpoint save holds its written, not yet renamed temp file open MS milliseconds, so
//       that the kill test (tests/test_kill.cpp) can land a kill inside a save. Read as atoi
//       reads it: anything but a positive number is no delay.
#pragma once
#include <cstdint>

namespace vkvit::vk::fault {

struct Faults {
  uint64_t nan_step = 0;             // 0: no NaN injection
  uint64_t nan_count = 1;            // attempts of nan_step that get the NaN
  uint64_t device_memory_limit = 0;  // bytes; 0: no limit
  uint64_t device_lost_step = 0;     // 0: never
};

// The parsed environment, read on the first call. Throws vkvit::Error naming a malformed variable.
const Faults& faults();

// Whether attempt `attempt` (0 for the first try) of step `step` gets the injected NaN.
bool nan_at(uint64_t step, uint64_t attempt);
// Whether the wait of step `step` reports a lost device: true once, for that step.
bool device_lost_at(uint64_t step);
// Milliseconds a checkpoint save waits before its fsync (VKVIT_FAULT_SAVE_DELAY_MS), 0 for none;
// read on the first call. Kept out of Faults so that a save never fails on another variable.
uint64_t save_delay_ms();

}  // namespace vkvit::vk::fault
