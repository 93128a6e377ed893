// Helpers the `vkvit bench` modes share (bench.cpp, bench_model.cpp).
#pragma once
#include <sys/resource.h>

namespace vkvit::cli {

// CPU time of this process, all threads (lavapipe's workers included), in ms. On a CPU driver it
// counts the work done rather than the time waited for a shared core, so on a busy machine it
// moves less than wall time.
inline double process_cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-3;
}

}  // namespace vkvit::cli
