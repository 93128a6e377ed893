// Per-op GPU time from timestamp queries, accumulated over submissions (VKVIT_PROFILE=1).
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

namespace vkvit::vk {

class Profiler {
 public:
  struct Entry {
    uint64_t count = 0;
    double total_ns = 0;
  };
  void add(const std::string& label, double ns);
  void clear() { entries_.clear(); }
  bool empty() const { return entries_.empty(); }
  const std::map<std::string, Entry>& entries() const { return entries_; }
  double total_ns() const;
  // A table sorted by total time: op, calls, total ms, mean us, share.
  void print(std::FILE* out) const;

 private:
  std::map<std::string, Entry> entries_;
};

}  // namespace vkvit::vk
