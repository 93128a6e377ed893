// Helpers the `vkvit bench` modes share (bench.cpp, bench_model.cpp, bench_mixer.cpp).
#pragma once
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "vk/context.h"
#include "vk/profiler.h"
#include "vk/recorder.h"

namespace vkvit::cli {

// CPU time of this process, all threads (lavapipe's workers included), in ms. On a CPU driver it
// counts the work done rather than the time waited for a shared core, so on a busy machine it
// moves less than wall time.
inline double process_cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-3;
}

struct Timing {
  double ms = 0;      // median device time
  double cpu_ms = 0;  // median process CPU time per run (CPU drivers: robust to other load)
};

// Medians over `repeat` submissions of what `record` records, after one warm-up (which also
// builds the pipelines). GPU timestamps when the device has them, else wall clock around submit
// and wait; the per-op profile is cleared, since the bench prints its own table.
template <class Record>
Timing time_recording(vk::Context& ctx, int repeat, Record&& record) {
  const bool gpu_clock = ctx.profiling() && ctx.info().timestamps;
  std::vector<double> ms, cpu;
  vk::Recorder rec(ctx);
  for (int r = -1; r < repeat; ++r) {
    ctx.profiler().clear();
    const double c0 = process_cpu_ms();
    const auto t0 = std::chrono::steady_clock::now();
    record(rec);
    rec.submit_and_wait();
    const auto t1 = std::chrono::steady_clock::now();
    const double c1 = process_cpu_ms();
    if (r < 0) continue;  // warm-up
    ms.push_back(gpu_clock ? ctx.profiler().total_ns() * 1e-6
                           : std::chrono::duration<double, std::milli>(t1 - t0).count());
    cpu.push_back(c1 - c0);
  }
  ctx.profiler().clear();
  std::sort(ms.begin(), ms.end());
  std::sort(cpu.begin(), cpu.end());
  return Timing{ms[ms.size() / 2], cpu[cpu.size() / 2]};
}

}  // namespace vkvit::cli
