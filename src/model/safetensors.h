// safetensors weights files (https://github.com/huggingface/safetensors, "Format"): an 8-byte
// little-endian header length N, N bytes of JSON header, then the tensors' bytes back to back.
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the byte after the header) plus an optional "__metadata__" of string -> string.
//
// vkvit writes F32 only and reads F32, F16, BF16 and F64 (converted to fp32), which covers timm
// and torchvision exports and state_dicts saved in double. The reader is strict (README "How it works", bad input 17): a file is either read
// completely and consistently or rejected with one line "<path>: not a valid safetensors file:
// <reason>" — never partially loaded.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace vkvit::model {

enum class DType { F32, F16, BF16, F64 };
const char* dtype_name(DType d);  // "F32", "F16", "BF16", "F64" as in the header
uint64_t dtype_size(DType d);     // bytes per element

// Headers larger than this are refused before they are read (as the reference implementation).
constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

struct Tensor {
  std::string name;
  DType dtype = DType::F32;     // as stored in the file; `data` is fp32 whatever it was
  std::vector<uint64_t> shape;  // empty = scalar
  std::vector<float> data;      // numel() values, row-major
  uint64_t numel() const;
};

struct SafeTensors {
  std::vector<Tensor> tensors;                  // in the order of their bytes in the file
  std::map<std::string, std::string> metadata;  // "__metadata__"
  const Tensor* find(const std::string& name) const;  // nullptr when absent
};

// Reads and checks a whole file. Rejected (vkvit::Error naming the file and the reason):
// header length past the end of the file or over kMaxSafetensorsHeader; a header that is not a
// JSON object starting with '{'; duplicate keys anywhere in the header; "__metadata__" that is not
// string -> string; a tensor entry with a missing or unknown field; dtypes other than F32/F16/BF16/F64;
// shape products that overflow 64 bits; a byte span that is not dtype size x element count;
// reversed offsets (begin > end); tensors that overlap, leave a hole between them or start after
// byte 0; data running past the end of the file; trailing bytes after the last tensor.
// Entries may appear in the header in any order; they are matched to the data by offset.
SafeTensors read_safetensors(const std::string& path);

// A tensor to write: `data` holds the product of `shape` floats (may be null when that is 0).
struct TensorRef {
  std::string name;
  std::vector<uint64_t> shape;
  const float* data = nullptr;
};

// Writes F32 tensors in the given order, the header padded with spaces so the data starts on an
// 8-byte boundary (the format allows trailing whitespace in the header). Atomic (see
// write_file_atomic): a crash leaves the old file or the new one, never half of one. Throws Error
// on duplicate or empty names, a tensor named "__metadata__", or an I/O failure.
void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes `path` through a temp file in the same folder: `fill` writes the content (returns false
// on a short write), then fsync, rename over `path`, fsync the folder. The temp file is removed on
// failure. Throws Error naming `path` and the system's reason.
void write_file_atomic(const std::string& path, const std::function<bool(std::FILE*)>& fill);

// IEEE half and bfloat16 bit patterns to float (exact: both are subsets of fp32).
float f16_to_f32(uint16_t bits);
float bf16_to_f32(uint16_t bits);

}  // namespace vkvit::model
