// safetensors: a written file reads back exactly and re-writes byte for byte; F16/BF16 convert to
// fp32 exactly; and each malformed file of bad input 17 of README "How it works" (built here byte by byte) is
// rejected with one line naming the file and the reason, as is a checkpoint truncated mid-write.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <unistd.h>

#include "base/error.h"
#include "harness.h"
#include "model/safetensors.h"

using namespace vkvit;
using namespace vkvit::model;
namespace fs = std::filesystem;
using vkvit::test::TempDir;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char(uint8_t(v >> (8 * i)));
  return s;
}

// A file made of `header` (its true length in front) and `data_bytes` bytes of data.
std::string raw_file(const std::string& header, size_t data_bytes) {
  std::string data(data_bytes, '\0');
  for (size_t i = 0; i < data_bytes; ++i) data[i] = char(i * 7 + 1);
  return le64(header.size()) + header + data;
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t b,
                  uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}

// The message of the Error read_safetensors throws for `bytes`.
std::string rejection(const TempDir& tmp, const std::string& bytes) {
  const std::string path = tmp.file("bad.safetensors");
  write_bytes(path, bytes);
  try {
    read_safetensors(path);
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Catch::StartsWith(path + ": "));
    CHECK(msg.find('\n') == std::string::npos);
    return msg;
  }
  FAIL("the file was accepted");
  return "";
}

}  // namespace

TEST_CASE("safetensors round trip: values, shapes, order, metadata, byte-identical re-write", "[safetensors]") {
  TempDir tmp("st-roundtrip");
  const std::vector<float> pos = test::random_floats(1 * 17 * 13, 701);
  const std::vector<float> w = test::random_floats(13 * 7, 702);
  const float scalar = 3.25f;
  // Timm names, deliberately not alphabetical: the file keeps the given order.
  const std::vector<TensorRef> tensors = {
      {"pos_embed", {1, 17, 13}, pos.data()},
      {"head.weight", {13, 7}, w.data()},
      {"logit_scale", {}, &scalar},
      {"empty", {0, 5}, nullptr},
  };
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"classes", "[\"cat\", \"dog\"]"}, {"é", "ü\n"}};
  const std::string a = tmp.file("a.safetensors");
  write_safetensors(a, tensors, meta);

  const std::string bytes = read_bytes(a);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  CHECK((8 + n) % 8 == 0);  // data starts 8-byte aligned
  CHECK(bytes[8] == '{');
  CHECK(bytes.size() == 8 + n + 4 * (pos.size() + w.size() + 1));

  const SafeTensors st = read_safetensors(a);
  CHECK(st.metadata == meta);
  REQUIRE(st.tensors.size() == 4);
  CHECK(st.tensors[0].name == "pos_embed");
  CHECK(st.tensors[0].shape == std::vector<uint64_t>{1, 17, 13});
  CHECK(st.tensors[0].data == pos);
  CHECK(st.tensors[0].dtype == DType::F32);
  CHECK(st.tensors[1].name == "head.weight");
  CHECK(st.tensors[1].data == w);
  CHECK(st.tensors[2].name == "logit_scale");
  CHECK(st.tensors[2].shape.empty());
  CHECK(st.tensors[2].data == std::vector<float>{3.25f});
  REQUIRE(st.find("empty") != nullptr);
  CHECK(st.find("empty")->numel() == 0);
  CHECK(st.find("nope") == nullptr);

  std::vector<TensorRef> again;
  for (const Tensor& t : st.tensors) again.push_back({t.name, t.shape, t.data.data()});
  const std::string b = tmp.file("b.safetensors");
  write_safetensors(b, again, st.metadata);
  CHECK(read_bytes(b) == bytes);

  // The atomic write replaces the old file and leaves no temp file behind.
  write_safetensors(b, {{"x", {2}, w.data()}});
  CHECK(read_safetensors(b).tensors.size() == 1);
  int files = 0;
  for (const auto& e : fs::directory_iterator(tmp.path)) ++files, (void)e;
  CHECK(files == 2);
}

TEST_CASE("safetensors writer refuses bad names and unwritable paths", "[safetensors]") {
  TempDir tmp("st-writer");
  const float v[2] = {1, 2};
  auto err = [&](const std::vector<TensorRef>& t, const std::string& path) {
    try {
      write_safetensors(path, t);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string p = tmp.file("w.safetensors");
  CHECK_THAT(err({{"a", {2}, v}, {"a", {2}, v}}, p), Catch::Contains("tensor name 'a' given twice"));
  CHECK_THAT(err({{"__metadata__", {2}, v}}, p), Catch::Contains("may not be named __metadata__"));
  CHECK_THAT(err({{"", {2}, v}}, p), Catch::Contains("empty name"));
  CHECK_THAT(err({{"a", {2}, nullptr}}, p), Catch::Contains("has no data"));
  CHECK_THAT(err({{"a", {2}, v}}, tmp.file("no/such/dir/w.safetensors")),
             Catch::StartsWith(tmp.file("no/such/dir/w.safetensors") + ": cannot write"));
  CHECK_FALSE(fs::exists(p));
}

TEST_CASE("safetensors F16 and BF16 tensors load as exact fp32", "[safetensors]") {
  // Half: 1, -2, 0.5, 65504 (max), 2^-24 (smallest subnormal), 2^-15 (subnormal), 2^-14 (smallest
  // normal), -0, +inf, NaN.
  const uint16_t h[] = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x0200, 0x0400, 0x8000, 0x7C00, 0x7E00};
  const float hf[] = {1.0f, -2.0f, 0.5f, 65504.0f, std::ldexp(1.0f, -24), std::ldexp(1.0f, -15),
                      std::ldexp(1.0f, -14), -0.0f, std::numeric_limits<float>::infinity()};
  for (int i = 0; i < 9; ++i) {
    INFO("half 0x" << std::hex << h[i]);
    CHECK(f16_to_f32(h[i]) == hf[i]);
  }
  CHECK(std::signbit(f16_to_f32(0x8000)));
  CHECK(std::isnan(f16_to_f32(0x7E00)));
  // Every finite half converts to the value its bits define.
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const uint32_t e = (bits >> 10) & 31, m = bits & 1023;
    if (e == 31) continue;
    const double mag = e == 0 ? std::ldexp(double(m), -24) : std::ldexp(1.0 + m / 1024.0, int(e) - 15);
    if (double(f16_to_f32(uint16_t(bits))) != ((bits & 0x8000) ? -mag : mag)) FAIL("half bits " << bits);
  }
  // BF16: the top half of an fp32.
  const uint16_t bf[] = {0x3F80, 0xC020, 0x4049, 0x0001};
  const float bff[] = {1.0f, -2.5f, 3.140625f, std::ldexp(1.0f, -133)};
  for (int i = 0; i < 4; ++i) CHECK(bf16_to_f32(bf[i]) == bff[i]);

  TempDir tmp("st-half");
  std::string data(reinterpret_cast<const char*>(h), sizeof h);
  data += std::string(reinterpret_cast<const char*>(bf), sizeof bf);
  const std::string header = "{" + entry("h", "F16", "[2,5]", 0, 20) + "," + entry("b", "BF16", "[4]", 20, 28) + "}";
  const std::string path = tmp.file("half.safetensors");
  write_bytes(path, le64(header.size()) + header + data);
  const SafeTensors st = read_safetensors(path);
  REQUIRE(st.tensors.size() == 2);
  CHECK(st.tensors[0].dtype == DType::F16);
  CHECK(st.tensors[0].shape == std::vector<uint64_t>{2, 5});
  for (int i = 0; i < 9; ++i) CHECK(st.tensors[0].data[i] == hf[i]);
  CHECK(std::isnan(st.tensors[0].data[9]));
  CHECK(st.tensors[1].dtype == DType::BF16);
  CHECK(st.tensors[1].data == std::vector<float>(bff, bff + 4));
}

TEST_CASE("safetensors F64 tensors load rounded to the nearest float", "[safetensors]") {
  const double d[] = {1.0, -0.1, 1e-40, 3.4028235677973366e38, 1.0 + 1e-12};
  TempDir tmp("st-f64");
  const std::string header = "{" + entry("d", "F64", "[5]", 0, 40) + "}";
  const std::string path = tmp.file("double.safetensors");
  write_bytes(path, le64(header.size()) + header + std::string(reinterpret_cast<const char*>(d), sizeof d));
  const SafeTensors st = read_safetensors(path);
  REQUIRE(st.tensors.size() == 1);
  CHECK(st.tensors[0].dtype == DType::F64);
  for (int i = 0; i < 5; ++i) CHECK(st.tensors[0].data[i] == static_cast<float>(d[i]));
}

TEST_CASE("safetensors header entries may come in any order, the data order decides", "[safetensors]") {
  TempDir tmp("st-order");
  const std::string header = "{" + entry("b", "F32", "[1]", 4, 8) + "," + entry("a", "F32", "[1]", 0, 4) + "}  ";
  const std::string path = tmp.file("o.safetensors");
  const float v[2] = {1.5f, -7.0f};
  write_bytes(path, le64(header.size()) + header + std::string(reinterpret_cast<const char*>(v), 8));
  const SafeTensors st = read_safetensors(path);
  REQUIRE(st.tensors.size() == 2);
  CHECK(st.tensors[0].name == "a");
  CHECK(st.tensors[0].data == std::vector<float>{1.5f});
  CHECK(st.tensors[1].name == "b");
  CHECK(st.tensors[1].data == std::vector<float>{-7.0f});
}

TEST_CASE("malformed safetensors files are rejected with the reason", "[safetensors]") {
  TempDir tmp("st-bad");
  const std::string a4 = entry("a", "F32", "[1]", 0, 4);
  struct Case {
    const char* what;
    std::string bytes;
    std::string reason;
  };
  const Case cases[] = {
      {"shorter than the length field", std::string("\x10\0\0", 3), "shorter than the 8-byte header length"},
      {"header length past EOF", le64(1000) + "{}", "header length 1000 runs past the end of the file (10 bytes"},
      {"header length over 100 MB", le64(100'000'001) + "{}", "header length 100000001 is over the 100000000-byte limit"},
      {"header length 2^64-1", le64(~0ull) + "{}", "is over the 100000000-byte limit"},
      {"not starting with {", raw_file(" {" + a4 + "}", 4), "the header does not start with '{'"},
      {"a JSON array", raw_file("[1,2]", 0), "does not start with '{'"},
      {"empty header", le64(0), "does not start with '{'"},
      {"invalid JSON", raw_file("{\"a\":{\"dtype\":\"F32\",", 4), "the header is not valid JSON"},
      {"duplicate names", raw_file("{" + a4 + "," + entry("a", "F32", "[1]", 4, 8) + "}", 8),
       "duplicate tensor name 'a' in the header"},
      {"duplicate field", raw_file("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
       "duplicate key 'dtype' in the header"},
      {"overlapping offsets", raw_file("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}", 12),
       "tensor 'b' overlaps tensor 'a' (starts at 4, before 8)"},
      {"same offsets twice", raw_file("{" + a4 + "," + entry("b", "F32", "[1]", 0, 4) + "}", 4), "overlaps"},
      {"hole", raw_file("{" + a4 + "," + entry("b", "F32", "[1]", 8, 12) + "}", 12),
       "a hole of 4 bytes before tensor 'b'"},
      {"data not starting at 0", raw_file("{" + entry("a", "F32", "[1]", 4, 8) + "}", 8), "a hole of 4 bytes before tensor 'a'"},
      {"trailing bytes", raw_file("{" + a4 + "}", 12), "8 trailing bytes after the last tensor"},
      {"data past EOF", raw_file("{" + entry("a", "F32", "[4]", 0, 16) + "}", 8),
       "tensor 'a' ends at data byte 16, past the end of the file (8 data bytes"},
      {"shape product overflow", raw_file("{" + entry("a", "F32", "[4294967296,4294967296,16]", 0, 0) + "}", 0),
       "tensor 'a': shape [4294967296, 4294967296, 16] overflows 64-bit byte sizes"},
      {"byte size overflow", raw_file("{" + entry("a", "F32", "[4611686018427387905]", 0, 4) + "}", 4), "overflows"},
      {"dtype size mismatch", raw_file("{" + entry("a", "F16", "[3]", 0, 12) + "}", 12),
       "tensor 'a': dtype F16 with shape [3] needs 6 bytes but data_offsets span 12"},
      {"reversed offsets", raw_file("{" + entry("a", "F32", "[1]", 8, 4) + "}", 8), "data_offsets [8, 4] are out of order"},
      {"unsupported dtype", raw_file("{" + entry("a", "I64", "[1]", 0, 8) + "}", 8),
       "dtype I64 is not supported (vkvit reads F32, F16, BF16, F64)"},
      {"negative dimension", raw_file("{" + entry("a", "F32", "[-1]", 0, 4) + "}", 4), "shape holds -1, not a non-negative integer"},
      {"fractional offset", raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}}", 4),
       "data_offsets must be two non-negative integers"},
      {"missing field", raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "tensor 'a': missing data_offsets"},
      {"unknown field", raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4),
       "tensor 'a': unknown field 'x'"},
      {"entry not an object", raw_file("{\"a\":[1]}", 0), "tensor 'a': expected an object"},
      {"non-string metadata", raw_file("{\"__metadata__\":{\"epoch\":3}," + a4 + "}", 4),
       "__metadata__ value of 'epoch' is not a string"},
      {"metadata not an object", raw_file("{\"__metadata__\":\"x\"," + a4 + "}", 4), "__metadata__ must be an object"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const std::string msg = rejection(tmp, c.bytes);
    CHECK_THAT(msg, Catch::Contains("not a valid safetensors file: "));
    CHECK_THAT(msg, Catch::Contains(c.reason));
  }
}

TEST_CASE("a checkpoint truncated mid-write is rejected, not half-loaded", "[safetensors]") {
  TempDir tmp("st-trunc");
  const std::vector<float> a = test::random_floats(1000, 711), b = test::random_floats(300, 712);
  const std::string path = tmp.file("last.safetensors");
  write_safetensors(path, {{"a", {1000}, a.data()}, {"b", {10, 30}, b.data()}}, {{"epoch", "3"}});
  const std::string full = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, full.data(), 8);
  // Cut inside the data, inside the header and inside the length field.
  CHECK_THAT(rejection(tmp, full.substr(0, full.size() - 5)), Catch::Contains("tensor 'b' ends at data byte"));
  CHECK_THAT(rejection(tmp, full.substr(0, 8 + n / 2)), Catch::Contains("runs past the end of the file"));
  CHECK_THAT(rejection(tmp, full.substr(0, 5)), Catch::Contains("shorter than the 8-byte header length"));
  CHECK_THAT(rejection(tmp, ""), Catch::Contains("the file is 0 bytes"));
  // A missing file is named too.
  try {
    read_safetensors(tmp.file("missing.safetensors"));
    FAIL("a missing file was accepted");
  } catch (const Error& e) {
    CHECK_THAT(std::string(e.what()), Catch::StartsWith(tmp.file("missing.safetensors") + ": cannot open"));
  }
}

TEST_CASE("an atomic write that fails leaves the old file and no temp file", "[safetensors]") {
  TempDir tmp("st-atomic");
  const std::string path = tmp.file("best.safetensors");
  write_bytes(path, "old");
  // A writer that stops half way, as a full disk or a crash before the rename would.
  try {
    write_file_atomic(path, [](std::FILE* f) {
      std::fputs("half", f);
      errno = ENOSPC;
      return false;
    });
    FAIL("a failed write was not reported");
  } catch (const Error& e) {
    CHECK_THAT(std::string(e.what()), Catch::StartsWith(path + ": cannot write (write): "));
  }
  CHECK(read_bytes(path) == "old");
  int files = 0;
  for (const auto& e : fs::directory_iterator(tmp.path)) ++files, (void)e;
  CHECK(files == 1);
}
