// Bugs found with the libFuzzer targets of tests/fuzz (scripts/fuzz.sh), each kept here as a
// plain test so that it stays fixed without running the fuzzer. Each case says which target's
// check exposed it (by a fuzzing run, or on a hand-made input while the check was written) and
// what went wrong; the inputs are rebuilt here, never committed.
#include <catch2/catch.hpp>

#include "harness.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "data/decode.h"
#include "train/config.h"

using Catch::Matchers::Contains;
using vkvit::test::TempDir;

namespace {

std::vector<uint8_t> bytes_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

}  // namespace

// vkvit_fuzz_decode's overflow check (hand-made input): probe_pnm saturated each side at 2^32, and
// 2^32 * 2^32 wraps to 0 in 64 bits, so the pixel limit compared 0 with max_pixels and let the file
// through to OpenCV.
TEST_CASE("a PNM header with sides of 2^32 or more gives a pixel count that does not wrap", "[fuzz-regression]") {
  TempDir d("fuzz-pnm");
  for (const std::string side : {"4294967296", "4294967295", "99999999999999999999999"}) {
    const std::string text = "P5\n" + side + " " + side + "\n255\nxxxx";
    const vkvit::data::ImageHeader h = vkvit::data::probe_image(bytes_of(text), "big.pgm");
    INFO(side);
    REQUIRE(h.width > 0);
    REQUIRE(h.width * h.height / h.width == h.height);  // exact, no wrap
    REQUIRE(h.width * h.height > 100000000ull);

    vkvit::test::write_file(d / "big.pgm", text);
    REQUIRE_THROWS_WITH(vkvit::data::decode_image(d / "big.pgm", 3), Contains("over the limit"));
  }
}

// vkvit_fuzz_config's round-trip check (hand-made input): a string with bytes that are not UTF-8
// (here in output.dir) was accepted, but to_yaml() wrote U+FFFD in their place, so the run folder's
// config.yaml named another folder and parse(to_yaml()) differed from the config. Such strings are
// now refused with one line; well-formed non-ASCII text still round-trips.
TEST_CASE("config strings that are not UTF-8 are refused, UTF-8 ones round-trip", "[fuzz-regression]") {
  using vkvit::train::RunConfig;
  REQUIRE_THROWS_WITH(RunConfig::parse("output:\n  dir: \"runs\xff\xfe\"\n", "bad.yaml"),
                      Contains("bad.yaml:2: output.dir") && Contains("UTF-8"));
  // Overlong '/' (C0 AF) and a UTF-8-encoded surrogate (ED A0 80) are not UTF-8 either.
  REQUIRE_THROWS_WITH(RunConfig::parse("data:\n  dir: \"a\xc0\xaf\"\n", "bad.yaml"), Contains("UTF-8"));
  REQUIRE_THROWS_WITH(RunConfig::parse("data:\n  dir: \"a\xed\xa0\x80\"\n", "bad.yaml"), Contains("UTF-8"));

  RunConfig c = RunConfig::parse("output:\n  dir: \"runs\"\n", "ok.yaml");
  const RunConfig before = c;
  REQUIRE_THROWS_WITH(c.apply_override("data.dir=/data/\x80x"), Contains("data.dir") && Contains("UTF-8"));
  REQUIRE(c == before);

  c.apply_override("data.dir=/données/ünï/\xF0\x9F\x96\xBC");  // 2-, and 4-byte sequences
  REQUIRE(c.data.dir == "/données/ünï/\xF0\x9F\x96\xBC");
  REQUIRE(RunConfig::parse(c.to_yaml(), "ok.yaml") == c);
}

namespace {

// A little-endian, uncompressed 8-bit gray TIFF with one strip of `pixels` bytes; `entries` are
// (tag, type, value) in the order written (type 3 SHORT or 4 LONG, count 1, value inline).
std::string gray_tiff(std::vector<std::array<uint32_t, 3>> entries, const std::string& pixels) {
  const uint32_t data_at = uint32_t(8 + 2 + (entries.size() + 6) * 12 + 4);
  for (const auto& e : std::vector<std::array<uint32_t, 3>>{
           {258, 3, 8}, {259, 3, 1}, {262, 3, 1}, {273, 4, data_at}, {277, 3, 1}, {279, 4, uint32_t(pixels.size())}})
    entries.push_back(e);
  std::string t("II*\0\x08\0\0\0", 8);
  auto le = [&](uint32_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) t += char(v >> (8 * i));
  };
  le(uint32_t(entries.size()), 2);
  for (const auto& [tag, type, value] : entries) {
    le(tag, 2);
    le(type, 2);
    le(1, 4);
    le(value, type == 3 ? 2 : 4);
    if (type == 3) le(0, 2);
  }
  le(0, 4);  // no next directory
  return t + pixels;
}

}  // namespace

// vkvit_fuzz_decode's size-agreement check (hand-made input): probe_tiff kept the last of repeated
// ImageWidth/ImageLength tags while libtiff decodes with the first, so a directory "width 4, ...,
// width 1" was checked as 1 pixel and decoded as 4: the pixel limit could be dodged by any factor.
// The probe now keeps the first, as libtiff.
TEST_CASE("a TIFF that repeats ImageWidth is sized by the first one, as libtiff decodes it", "[fuzz-regression]") {
  TempDir d("fuzz-tiff");
  // Repeated next to each other and far apart (libtiff also reads unsorted directories).
  const std::string near = gray_tiff({{256, 3, 4}, {256, 3, 1}, {257, 3, 1}}, "\x0a\x14\x1e\x28");
  const std::string far = gray_tiff({{256, 4, 4}, {257, 3, 1}, {278, 3, 1}, {256, 3, 1}}, "\x0a\x14\x1e\x28");
  for (const std::string& tiff : {near, far}) {
    const vkvit::data::ImageHeader h = vkvit::data::probe_image(bytes_of(tiff), "dup.tiff");
    REQUIRE(h.width == 4);
    REQUIRE(h.height == 1);
    vkvit::test::write_file(d / "dup.tiff", tiff);
    const cv::Mat m = vkvit::data::decode_image(d / "dup.tiff", 1);
    REQUIRE(m.cols == 4);
    REQUIRE(m.rows == 1);
    REQUIRE(int(m.at<uint8_t>(0, 3)) == 0x28);
    vkvit::data::DecodeLimits small;
    small.max_pixels = 2;
    REQUIRE_THROWS_WITH(vkvit::data::decode_image(d / "dup.tiff", 1, small), Contains("over the limit"));
  }
}

// vkvit_fuzz_decode, in its first 15 s of fuzzing: "P5\n3# 5\n255\n..." was probed as 3x255 (the
// '#' read as a comment) but OpenCV decoded 3x5, since its reader consumes the byte after a number
// whatever it is; and a comment ended at \n only where OpenCV also ends it at \r. With "W# W\n1" a
// header probed as W x 1 decoded as W x W: the pixel limit no longer bounded the allocation.
TEST_CASE("a PNM header is read the way OpenCV reads it, '#' after a number and \\r included", "[fuzz-regression]") {
  struct Case {
    std::string header;
    uint64_t w, h;
  };
  const std::vector<Case> cases = {
      {"P5\n3# 5\n255\n", 3, 5},          // the fuzzer's input: '#' ends the number, 5 is the height
      {"P5\n40000# 40000\n1\n255\n", 40000, 40000},
      {"P5\n4\n# c\r2\n255\n", 4, 2},     // the comment ends at \r
      {"P5 2 #x\n 3\n255\n", 2, 3},       // '#' after whitespace is a comment
      {"P5\n3x5\n255\n", 3, 5},           // any byte ends a number
  };
  TempDir d("fuzz-pnm-comment");
  for (const Case& c : cases) {
    INFO(c.header);
    const std::string file = c.header + std::string(size_t(c.w * c.h < 64 ? c.w * c.h : 64), 'x');
    const vkvit::data::ImageHeader h = vkvit::data::probe_image(bytes_of(file), "c.pgm");
    REQUIRE(h.width == c.w);
    REQUIRE(h.height == c.h);
    vkvit::test::write_file(d / "c.pgm", file);
    if (c.w * c.h <= 64) {
      const cv::Mat m = vkvit::data::decode_image(d / "c.pgm", 1);
      REQUIRE(uint64_t(m.cols) == c.w);
      REQUIRE(uint64_t(m.rows) == c.h);
    } else {
      REQUIRE_THROWS_WITH(vkvit::data::decode_image(d / "c.pgm", 1), Contains("over the limit"));
    }
  }
}

// vkvit_fuzz_decode, in a 120 s run: an "FF 00" between a JPEG's segments was taken for a marker
// with a length, so probe_jpeg skipped the two bytes after it as a segment length (256 bytes here)
// and read the size from a later frame header: probed 13x65472, decoded 40x2. libjpeg treats FF 00
// outside a scan as junk and looks on for the next marker; the probe now does the same.
TEST_CASE("FF 00 between JPEG segments is junk, not a marker, as libjpeg reads it", "[fuzz-regression]") {
  TempDir d("fuzz-jpeg-ff00");
  const std::string kFixture = std::string(VKVIT_SOURCE_DIR) + "/tests/fixtures/pillow/chelsea.jpg";
  const std::vector<uint8_t> original = vkvit::data::read_image_file(kFixture, 1 << 20);
  std::vector<uint8_t> jpg(original.begin(), original.begin() + 2);  // SOI
  for (uint8_t b : {0xFF, 0x00, 0x01, 0x00, 0x00}) jpg.push_back(b);  // FF 00, then bytes a length would be read from
  jpg.insert(jpg.end(), original.begin() + 2, original.end());
  const vkvit::data::ImageHeader h = vkvit::data::probe_image(jpg, "ff00.jpg");
  CHECK(h.width == 251);
  CHECK(h.height == 187);
  vkvit::test::write_file(d / "ff00.jpg", std::string(jpg.begin(), jpg.end()));
  const cv::Mat m = vkvit::data::decode_image(d / "ff00.jpg", 3);
  CHECK(m.cols == 251);
  CHECK(m.rows == 187);
}
