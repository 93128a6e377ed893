#include "vk/profiler.h"

#include <algorithm>
#include <vector>

namespace vkvit::vk {

void Profiler::add(const std::string& label, double ns) {
  Entry& e = entries_[label];
  e.count++;
  e.total_ns += ns;
}

double Profiler::total_ns() const {
  double t = 0;
  for (const auto& [k, e] : entries_) t += e.total_ns;
  return t;
}

void Profiler::print(std::FILE* out) const {
  std::vector<std::pair<std::string, Entry>> rows(entries_.begin(), entries_.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.total_ns > b.second.total_ns; });
  const double total = std::max(total_ns(), 1.0);
  std::fprintf(out, "%-32s %8s %12s %12s %7s\n", "op", "calls", "total ms", "mean us", "share");
  for (const auto& [label, e] : rows)
    std::fprintf(out, "%-32s %8llu %12.3f %12.1f %6.1f%%\n", label.c_str(), static_cast<unsigned long long>(e.count),
                 e.total_ns * 1e-6, e.total_ns * 1e-3 / double(e.count), 100.0 * e.total_ns / total);
  std::fprintf(out, "%-32s %8s %12.3f\n", "total", "", total * 1e-6);
}

}  // namespace vkvit::vk
