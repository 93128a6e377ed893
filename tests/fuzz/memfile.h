// An in-memory file with a path: vkvit's readers take paths, and a fuzz input written to disk on
// every run would cost a disk write per execution. memfd_create gives a regular file that lives
// in memory; /proc/self/fd/<n> opens it by name (read_safetensors checks S_ISREG, which holds).
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace vkvit::fuzz {

class MemFile {
 public:
  explicit MemFile(const char* name) {
    fd_ = memfd_create(name, MFD_CLOEXEC);
    if (fd_ < 0) {
      std::perror("vkvit fuzz: memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;

  // Replaces the content with `n` bytes and returns the path that reads them.
  const std::string& write(const uint8_t* data, size_t n) {
    if (ftruncate(fd_, 0) != 0) fail("ftruncate");
    size_t done = 0;
    while (done < n) {
      const ssize_t w = pwrite(fd_, data + done, n - done, off_t(done));
      if (w <= 0) fail("pwrite");
      done += size_t(w);
    }
    return path_;
  }

 private:
  // The harness itself failing is not a finding about vkvit: say so and stop.
  [[noreturn]] static void fail(const char* what) {
    std::perror(what);
    std::abort();
  }
  int fd_ = -1;
  std::string path_;
};

}  // namespace vkvit::fuzz
