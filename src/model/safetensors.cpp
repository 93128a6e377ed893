// safetensors reader and writer. The reader validates the whole header against the file size
// before it allocates or reads any tensor data, so a hostile or truncated file costs at most the
// header's bytes and ends in one clear line.
#include "model/safetensors.h"

#include <cstdlib>

#include <chrono>

#include <thread>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"
#include "vk/fault.h"

// Tensor bytes are copied to and from memory as they are: the file is little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "vkvit's safetensors io assumes a little-endian host");

namespace vkvit::model {

using json = nlohmann::json;

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
  }
  return "?";
}

uint64_t dtype_size(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    default: return 2;
  }
}

uint64_t Tensor::numel() const {
  uint64_t n = 1;
  for (uint64_t s : shape) n *= s;
  return n;
}

const Tensor* SafeTensors::find(const std::string& name) const {
  for (const Tensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      // Subnormal half: mant * 2^-24, which is a normal float; renormalise the mantissa.
      int e = -1;
      uint32_t m = mant;
      do {
        ++e;
        m <<= 1;
      } while ((m & 0x400u) == 0);
      bits = sign | uint32_t(127 - 15 - e) << 23 | (m & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;  // inf or NaN (payload kept)
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_f32(uint16_t h) {
  const uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

namespace {

// One tensor's header entry, checked.
struct Entry {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
  uint64_t begin, end;
};

std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

struct FileCloser {
  std::FILE* f;
  ~FileCloser() {
    if (f) std::fclose(f);
  }
};

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void bad(const std::string& reason) const {
    throw Error(path_ + ": not a valid safetensors file: " + reason);
  }

  SafeTensors read() {
    std::FILE* f = std::fopen(path_.c_str(), "rb");
    if (!f) throw Error(path_ + ": cannot open: " + std::strerror(errno));
    FileCloser closer{f};
    struct stat st {};
    if (fstat(fileno(f), &st) != 0) throw Error(path_ + ": cannot stat: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw Error(path_ + ": not a regular file");
    const uint64_t file_size = uint64_t(st.st_size);
    if (file_size < 8)
      bad("the file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");

    uint8_t len_bytes[8];
    read_exact(f, len_bytes, 8);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = header_len << 8 | len_bytes[i];
    if (header_len > kMaxSafetensorsHeader)
      bad("header length " + std::to_string(header_len) + " is over the " + std::to_string(kMaxSafetensorsHeader) +
          "-byte limit");
    if (header_len > file_size - 8)
      bad("header length " + std::to_string(header_len) + " runs past the end of the file (" +
          std::to_string(file_size) + " bytes; truncated?)");
    std::string header(header_len, '\0');
    read_exact(f, header.data(), header_len);
    if (header.empty() || header[0] != '{') bad("the header does not start with '{'");

    SafeTensors out;
    std::vector<Entry> entries = parse_header(header, out.metadata);
    const uint64_t data_size = file_size - 8 - header_len;
    check_layout(entries, data_size);

    out.tensors.reserve(entries.size());
    for (const Entry& e : entries) {
      Tensor t;
      t.name = e.name;
      t.dtype = e.dtype;
      t.shape = e.shape;
      const uint64_t n = t.numel();
      t.data.resize(n);
      if (e.dtype == DType::F32) {
        read_exact(f, t.data.data(), n * 4);
      } else if (e.dtype == DType::F64) {  // rounded to the nearest float
        std::vector<double> raw(n);
        read_exact(f, raw.data(), n * 8);
        for (uint64_t i = 0; i < n; ++i) t.data[i] = static_cast<float>(raw[i]);
      } else {
        std::vector<uint16_t> raw(n);
        read_exact(f, raw.data(), n * 2);
        for (uint64_t i = 0; i < n; ++i) t.data[i] = e.dtype == DType::F16 ? f16_to_f32(raw[i]) : bf16_to_f32(raw[i]);
      }
      out.tensors.push_back(std::move(t));
    }
    return out;
  }

 private:
  void read_exact(std::FILE* f, void* dst, uint64_t n) const {
    if (n && std::fread(dst, 1, n, f) != n)
      throw Error(path_ + ": read failed: " + (std::ferror(f) ? std::strerror(errno) : "unexpected end of file"));
  }

  // nlohmann keeps the last of duplicate keys, so duplicates are caught while parsing: one set of
  // keys per open object.
  json parse_json(const std::string& header) const {
    std::vector<std::set<std::string>> open;
    std::string duplicate;
    int duplicate_depth = 0;
    auto cb = [&](int depth, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::object_start) {
        open.emplace_back();
      } else if (ev == json::parse_event_t::object_end) {
        open.pop_back();
      } else if (ev == json::parse_event_t::key && !open.empty() && duplicate.empty()) {
        const std::string& k = parsed.get_ref<const std::string&>();
        if (!open.back().insert(k).second) {
          duplicate = k;
          duplicate_depth = depth;
        }
      }
      return true;
    };
    json j;
    try {
      j = json::parse(header, cb);
    } catch (const json::exception& e) {
      // Drop nlohmann's "[json.exception.parse_error.101] " tag: the rest is the useful part.
      std::string msg = e.what();
      const size_t close = msg.find("] ");
      bad("the header is not valid JSON: " + (close == std::string::npos ? msg : msg.substr(close + 2)));
    }
    if (!duplicate.empty()) {
      if (duplicate_depth <= 1) bad("duplicate tensor name '" + duplicate + "' in the header");
      bad("duplicate key '" + duplicate + "' in the header");
    }
    if (!j.is_object()) bad("the header is not a JSON object");
    return j;
  }

  std::vector<Entry> parse_header(const std::string& header, std::map<std::string, std::string>& metadata) const {
    const json j = parse_json(header);
    std::vector<Entry> entries;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "__metadata__") {
        if (!it->is_object()) bad("__metadata__ must be an object of strings");
        for (auto m = it->begin(); m != it->end(); ++m) {
          if (!m->is_string()) bad("__metadata__ value of '" + m.key() + "' is not a string");
          metadata[m.key()] = m->get<std::string>();
        }
        continue;
      }
      entries.push_back(parse_entry(it.key(), *it));
    }
    return entries;
  }

  static bool get_u64(const json& v, uint64_t& out) {
    if (!v.is_number_unsigned()) return false;  // negatives are number_integer, fractions number_float
    out = v.get<uint64_t>();
    return true;
  }

  Entry parse_entry(const std::string& name, const json& v) const {
    const std::string who = "tensor '" + name + "': ";
    if (!v.is_object()) bad(who + "expected an object with dtype, shape and data_offsets");
    for (auto f = v.begin(); f != v.end(); ++f)
      if (f.key() != "dtype" && f.key() != "shape" && f.key() != "data_offsets") bad(who + "unknown field '" + f.key() + "'");
    for (const char* need : {"dtype", "shape", "data_offsets"})
      if (!v.contains(need)) bad(who + "missing " + need);

    Entry e;
    e.name = name;
    const json& dt = v["dtype"];
    if (!dt.is_string()) bad(who + "dtype is not a string");
    const std::string d = dt.get<std::string>();
    if (d == "F32") e.dtype = DType::F32;
    else if (d == "F16") e.dtype = DType::F16;
    else if (d == "BF16") e.dtype = DType::BF16;
    else if (d == "F64") e.dtype = DType::F64;
    else bad(who + "dtype " + d + " is not supported (vkvit reads F32, F16, BF16, F64)");

    const json& sh = v["shape"];
    if (!sh.is_array()) bad(who + "shape is not a list");
    uint64_t count = 1;
    bool overflow = false;
    for (const json& s : sh) {
      uint64_t dim;
      if (!get_u64(s, dim)) bad(who + "shape holds " + s.dump() + ", not a non-negative integer");
      e.shape.push_back(dim);
      if (dim != 0 && count > std::numeric_limits<uint64_t>::max() / dim) overflow = true;
      else count *= dim;
    }
    // A zero dimension makes the product 0 whatever the rest; only a non-zero product can overflow.
    if (std::find(e.shape.begin(), e.shape.end(), 0) != e.shape.end()) count = 0, overflow = false;
    const uint64_t esize = dtype_size(e.dtype);
    if (overflow || count > std::numeric_limits<uint64_t>::max() / esize)
      bad(who + "shape " + shape_text(e.shape) + " overflows 64-bit byte sizes");

    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !get_u64(off[0], e.begin) || !get_u64(off[1], e.end))
      bad(who + "data_offsets must be two non-negative integers [begin, end]");
    if (e.begin > e.end)
      bad(who + "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] are out of order");
    if (e.end - e.begin != count * esize)
      bad(who + "dtype " + d + " with shape " + shape_text(e.shape) + " needs " + std::to_string(count * esize) +
          " bytes but data_offsets span " + std::to_string(e.end - e.begin));
    return e;
  }

  // Sorted by offset, the tensors must tile [0, data_size) exactly.
  void check_layout(std::vector<Entry>& entries, uint64_t data_size) const {
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    uint64_t pos = 0;
    const Entry* prev = nullptr;
    for (const Entry& e : entries) {
      if (e.end > data_size)
        bad("tensor '" + e.name + "' ends at data byte " + std::to_string(e.end) + ", past the end of the file (" +
            std::to_string(data_size) + " data bytes; truncated?)");
      if (e.begin < pos)
        bad("tensor '" + e.name + "' overlaps tensor '" + prev->name + "' (starts at " + std::to_string(e.begin) +
            ", before " + std::to_string(pos) + ")");
      if (e.begin > pos)
        bad("a hole of " + std::to_string(e.begin - pos) + " bytes before tensor '" + e.name + "' (data bytes " +
            std::to_string(pos) + " to " + std::to_string(e.begin) + " belong to no tensor)");
      pos = e.end;
      prev = &e;
    }
    if (pos < data_size)
      bad(std::to_string(data_size - pos) + " trailing bytes after the last tensor");
  }

  std::string path_;
};

}  // namespace

SafeTensors read_safetensors(const std::string& path) { return Reader(path).read(); }

void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  auto fail = [&](const std::string& reason) { throw Error(path + ": cannot write safetensors: " + reason); };
  std::string header = "{";
  try {
    if (!metadata.empty()) {
      header += "\"__metadata__\":{";
      bool first = true;
      for (const auto& [k, v] : metadata) {
        header += (first ? "" : ",") + json(k).dump() + ":" + json(v).dump();
        first = false;
      }
      header += "}";
    }
    std::set<std::string> names;
    uint64_t offset = 0;
    for (const TensorRef& t : tensors) {
      if (t.name.empty()) fail("a tensor has an empty name");
      if (t.name == "__metadata__") fail("a tensor may not be named __metadata__");
      if (!names.insert(t.name).second) fail("tensor name '" + t.name + "' given twice");
      uint64_t n = 1;
      for (uint64_t s : t.shape) {
        if (s != 0 && n > std::numeric_limits<uint64_t>::max() / 4 / s) fail("tensor '" + t.name + "' is too large");
        n *= s;
      }
      if (n && !t.data) fail("tensor '" + t.name + "' has no data");
      std::string shape;
      for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? "," : "") + std::to_string(t.shape[i]);
      header += (header.size() > 1 ? "," : "") + json(t.name).dump() + ":{\"dtype\":\"F32\",\"shape\":[" + shape +
                "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + n * 4) + "]}";
      offset += n * 4;
    }
  } catch (const json::exception&) {
    fail("a tensor name or metadata string is not valid UTF-8");
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // data starts 8-byte aligned after the 8-byte length
  if (header.size() > kMaxSafetensorsHeader) fail("the header would exceed the format's 100 MB limit");

  write_file_atomic(path, [&](std::FILE* f) {
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
    if (std::fwrite(len, 1, 8, f) != 8 || std::fwrite(header.data(), 1, header.size(), f) != header.size())
      return false;
    for (const TensorRef& t : tensors) {
      uint64_t n = 1;
      for (uint64_t s : t.shape) n *= s;
      if (n && std::fwrite(t.data, 4, n, f) != n) return false;
    }
    return true;
  });
}

void write_file_atomic(const std::string& path, const std::function<bool(std::FILE*)>& fill) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  // Hidden, per process: a crash leaves at most a dot-file that no reader picks up as a checkpoint.
  const fs::path tmp = dir / ("." + target.filename().string() + ".tmp-" + std::to_string(getpid()));
  auto fail = [&](const std::string& what, int err) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write (" + what + "): " + std::strerror(err));
  };
  // Temp files of this target left by processes that were killed mid-write: their process no
  // longer exists, so nobody will rename them; remove them instead of letting them pile up.
  const std::string stale_prefix = "." + target.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(stale_prefix, 0) != 0) continue;
    const long pid = std::strtol(name.c_str() + stale_prefix.size(), nullptr, 10);
    if (pid > 0 && pid != getpid() && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
      fs::remove(entry.path(), ec);
  }

  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("create " + tmp.string(), errno);
  std::FILE* f = fdopen(fd, "wb");
  if (!f) {
    const int err = errno;
    ::close(fd);
    fail("fdopen", err);
  }
  errno = 0;
  bool ok = fill(f);
  int err = errno ? errno : EIO;
  if (ok && std::fflush(f) != 0) ok = false, err = errno;
  // Fault injection for the kill test (tests/test_kill.cpp): hold the written, not yet renamed
  // temp file open this long, so that a kill lands inside a save.
  if (const uint64_t ms = vk::fault::save_delay_ms()) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  if (ok && fsync(fileno(f)) != 0) ok = false, err = errno;
  if (std::fclose(f) != 0 && ok) ok = false, err = errno;
  if (!ok) fail("write", err);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("rename", errno);
  // The rename is durable only once the folder's entry is on disk.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace vkvit::model
