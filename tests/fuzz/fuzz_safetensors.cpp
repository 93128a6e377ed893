// Fuzz target: arbitrary bytes as a .safetensors file -> model::read_safetensors.
// A vkvit::Error is the expected answer to a bad file; anything else (another exception, a
// sanitizer report, a broken promise checked below) is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "base/error.h"
#include "memfile.h"
#include "model/safetensors.h"

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "vkvit fuzz safetensors: accepted file breaks a promise: %s\n", what);
  std::abort();
}

// What a file that read_safetensors accepts must satisfy (safetensors.h): every tensor holds
// numel() floats, names are unique, and the tensors tile the data section exactly.
void check_accepted(const vkvit::model::SafeTensors& st, const uint8_t* data, size_t size) {
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | data[i];
  const uint64_t data_bytes = uint64_t(size) - 8 - header_len;
  uint64_t covered = 0;
  std::set<std::string> names;
  for (const auto& t : st.tensors) {
    if (t.data.size() != t.numel()) broken("a tensor's data size differs from its shape's element count");
    if (!names.insert(t.name).second) broken("two tensors share a name");
    if (t.name == "__metadata__") broken("a tensor is named __metadata__");
    if (st.find(t.name) != &t) broken("find() does not return the tensor of that name");
    covered += t.numel() * vkvit::model::dtype_size(t.dtype);
  }
  if (covered != data_bytes) broken("the tensors do not cover the data section exactly");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vkvit::fuzz::MemFile file("vkvit-fuzz-safetensors");
  const std::string& path = file.write(data, size);
  vkvit::model::SafeTensors st;
  try {
    st = vkvit::model::read_safetensors(path);
  } catch (const vkvit::Error&) {
    return 0;  // rejected with a message: the expected outcome for bad input
  }
  check_accepted(st, data, size);
  return 0;
}
