// data: ImageFolder's class order and filtering, decode_image on well-formed and bad files (built
// here with cv::imwrite or by hand, never committed), transform geometry and PIL-style resampling,
// and patchify's row layout.
#include <catch2/catch.hpp>

#include "harness.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "base/error.h"
#include "data/decode.h"
#include "data/image_folder.h"
#include "data/patchify.h"
#include "data/transform.h"

using namespace vkvit;
using namespace vkvit::data;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using vkvit::test::TempDir;

namespace {

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

void touch(const std::string& path) { write_bytes(path, {'x'}); }

std::vector<uint8_t> encode(const std::string& ext, const cv::Mat& m, const std::vector<int>& params = {}) {
  std::vector<uint8_t> out;
  REQUIRE(cv::imencode(ext, m, out, params));
  return out;
}

// --- a hand-built PNG: palette, tRNS, bad CRCs and lying headers that cv::imwrite cannot make ---
uint32_t crc32(const uint8_t* d, size_t n, uint32_t c = 0) {
  c = ~c;
  for (size_t i = 0; i < n; ++i) {
    c ^= d[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
  }
  return ~c;
}

void put32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}

void chunk(std::vector<uint8_t>& png, const char* type, const std::vector<uint8_t>& data) {
  put32(png, uint32_t(data.size()));
  std::vector<uint8_t> body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  png.insert(png.end(), body.begin(), body.end());
  put32(png, crc32(body.data(), body.size()));
}

// rows: raw scanlines without filter bytes. Deflate "stored" blocks keep this free of zlib.
std::vector<uint8_t> make_png(uint32_t w, uint32_t h, uint8_t depth, uint8_t color_type,
                              const std::vector<std::vector<uint8_t>>& rows,
                              const std::vector<std::pair<const char*, std::vector<uint8_t>>>& extra = {}) {
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  put32(ihdr, w);
  put32(ihdr, h);
  ihdr.insert(ihdr.end(), {depth, color_type, 0, 0, 0});
  chunk(png, "IHDR", ihdr);
  for (const auto& [type, data] : extra) chunk(png, type, data);
  std::vector<uint8_t> raw;
  for (const auto& r : rows) {
    raw.push_back(0);
    raw.insert(raw.end(), r.begin(), r.end());
  }
  std::vector<uint8_t> z = {0x78, 0x01, 1, uint8_t(raw.size()), uint8_t(raw.size() >> 8), uint8_t(~raw.size()),
                            uint8_t(~raw.size() >> 8)};
  REQUIRE(raw.size() < 65536);
  z.insert(z.end(), raw.begin(), raw.end());
  uint32_t a = 1, b = 0;
  for (uint8_t c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  put32(z, b << 16 | a);
  chunk(png, "IDAT", z);
  chunk(png, "IEND", {});
  return png;
}

cv::Vec3b px3(const cv::Mat& m, int y, int x) { return m.at<cv::Vec3b>(y, x); }

}  // namespace

// ---------------------------------------------------------------- ImageFolder

TEST_CASE("image folder sorts classes in byte order and ignores hidden and foreign files", "[data]") {
  TempDir d("folder");
  for (const char* f : {"class10/a.png", "class2/b.JPG", "class2/a.png", "class2/sub/c.JpEg", "class2/x.webp",
                        "class2/y.TIFF", "class2/z.pgm", "Class3/q.bmp", "class2/.hidden.png", "class2/.dir/d.png",
                        "class2/notes.txt", "class2/noext", "class2/png", ".hiddenclass/e.png", "stray.png"})
    touch(d.file(f));
  const ImageFolder f = ImageFolder::scan(d.path.string());
  CHECK(f.classes == std::vector<std::string>{"Class3", "class10", "class2"});
  std::vector<std::string> got;
  for (const Sample& s : f.samples) got.push_back(fs::path(s.path).lexically_relative(d.path).string() + "#" + std::to_string(s.label));
  CHECK(got == std::vector<std::string>{"Class3/q.bmp#0", "class10/a.png#1", "class2/a.png#2", "class2/b.JPG#2",
                                        "class2/sub/c.JpEg#2", "class2/x.webp#2", "class2/y.TIFF#2", "class2/z.pgm#2"});
}

TEST_CASE("image folder errors name the path and what to do", "[data]") {
  TempDir d("folder-errors");
  CHECK_THROWS_WITH(ImageFolder::scan(d.file("missing")), Contains("does not exist") && Contains("missing"));
  touch(d.file("only-a-file.png"));
  fs::create_directories(d.path / ".git");
  CHECK_THROWS_WITH(ImageFolder::scan(d.path.string()), Contains("no class folders"));
  touch(d.file("cat/1.png"));
  touch(d.file("dog/.hidden.png"));
  touch(d.file("dog/readme.txt"));
  CHECK_THROWS_WITH(ImageFolder::scan(d.path.string()), Contains("dog") && Contains("has no images"));
}

TEST_CASE("image folder follows symlinks but ends a symlink loop", "[data]") {
  TempDir d("folder-loop");
  touch(d.file("cls/a/1.png"));
  touch(d.file(".elsewhere/2.png"));  // hidden, so not a class; reached through the link
  fs::create_directory_symlink(d.path / "cls", d.path / "cls/a/loop");   // a folder containing itself
  fs::create_directory_symlink(d.path / ".elsewhere", d.path / "cls/ext");  // a real link to follow
  fs::create_symlink(d.path / "cls/self.png", d.path / "cls/self.png");    // ELOOP on stat
  fs::create_symlink(d.path / "nowhere.png", d.path / "cls/dangling.png");
  const ImageFolder f = ImageFolder::scan(d.path.string());
  // The links to nothing stay in the list: reading them fails, and the loader skips them by name.
  REQUIRE(f.samples.size() == 4);
  CHECK(f.samples[0].path == d.file("cls/a/1.png"));
  CHECK(f.samples[1].path == d.file("cls/dangling.png"));
  CHECK(f.samples[2].path == d.file("cls/ext/2.png"));
  CHECK(f.samples[3].path == d.file("cls/self.png"));
}

// ---------------------------------------------------------------- decode

TEST_CASE("decode returns RGB, expands gray, and makes gray for one channel", "[data]") {
  TempDir d("decode-basic");
  cv::Mat bgr(5, 7, CV_8UC3);
  cv::randu(bgr, 0, 256);
  cv::imwrite(d.file("c.png"), bgr);
  const cv::Mat rgb = decode_image(d.file("c.png"), 3);
  REQUIRE(rgb.type() == CV_8UC3);
  REQUIRE(rgb.size() == bgr.size());
  cv::Mat want;
  cv::cvtColor(bgr, want, cv::COLOR_BGR2RGB);
  CHECK(cv::norm(rgb, want, cv::NORM_INF) == 0);

  const cv::Mat gray = decode_image(d.file("c.png"), 1);
  REQUIRE(gray.type() == CV_8UC1);
  cv::cvtColor(bgr, want, cv::COLOR_BGR2GRAY);  // ITU-R 601 luma, as PIL's convert('L')
  CHECK(cv::norm(gray, want, cv::NORM_INF) == 0);

  cv::Mat g1(3, 4, CV_8UC1);
  cv::randu(g1, 0, 256);
  cv::imwrite(d.file("g.png"), g1);
  const cv::Mat g3 = decode_image(d.file("g.png"), 3);
  REQUIRE(g3.type() == CV_8UC3);
  cv::Mat planes[3];
  cv::split(g3, planes);
  for (auto& p : planes) CHECK(cv::norm(p, g1, cv::NORM_INF) == 0);
  CHECK(cv::norm(decode_image(d.file("g.png"), 1), g1, cv::NORM_INF) == 0);

  // Other lossless formats OpenCV writes: the header probe must read their sizes.
  for (const char* ext : {".bmp", ".tiff", ".ppm", ".webp"}) {
    if (!cv::haveImageWriter(ext)) continue;
    INFO(ext);
    std::vector<int> params;
    if (std::string(ext) == ".webp") params = {cv::IMWRITE_WEBP_QUALITY, 101};  // lossless
    write_bytes(d.file(std::string("c") + ext), encode(ext, bgr, params));
    cv::cvtColor(bgr, want, cv::COLOR_BGR2RGB);
    CHECK(cv::norm(decode_image(d.file(std::string("c") + ext), 3), want, cv::NORM_INF) == 0);
  }
  write_bytes(d.file("g.pgm"), encode(".pgm", g1));
  CHECK(cv::norm(decode_image(d.file("g.pgm"), 1), g1, cv::NORM_INF) == 0);
}

TEST_CASE("decode scales 16-bit images by 255 over 65535 instead of clamping", "[data]") {
  TempDir d("decode-16");
  cv::Mat g16 = (cv::Mat_<uint16_t>(1, 6) << 0, 257, 1000, 32896, 65000, 65535);
  cv::imwrite(d.file("g16.png"), g16);
  const cv::Mat g = decode_image(d.file("g16.png"), 1);
  REQUIRE(g.type() == CV_8UC1);
  CHECK(g.at<uint8_t>(0, 0) == 0);
  CHECK(g.at<uint8_t>(0, 1) == 1);
  CHECK(g.at<uint8_t>(0, 2) == 4);  // 3.89
  CHECK(g.at<uint8_t>(0, 3) == 128);
  CHECK(g.at<uint8_t>(0, 4) == 253);  // 252.9
  CHECK(g.at<uint8_t>(0, 5) == 255);
  const cv::Mat c = decode_image(d.file("g16.png"), 3);
  CHECK(px3(c, 0, 3) == cv::Vec3b(128, 128, 128));

  cv::Mat bgr16(1, 1, CV_16UC3, cv::Scalar(65535, 32896, 0));  // blue, half green
  cv::imwrite(d.file("c16.png"), bgr16);
  CHECK(px3(decode_image(d.file("c16.png"), 3), 0, 0) == cv::Vec3b(0, 128, 255));
}

TEST_CASE("decode composites alpha over white, for RGBA and palette with transparency", "[data]") {
  TempDir d("decode-alpha");
  // BGRA: opaque red, transparent green, half-transparent black.
  cv::Mat bgra(1, 3, CV_8UC4);
  bgra.at<cv::Vec4b>(0, 0) = {0, 0, 255, 255};
  bgra.at<cv::Vec4b>(0, 1) = {0, 255, 0, 0};
  bgra.at<cv::Vec4b>(0, 2) = {0, 0, 0, 128};
  cv::imwrite(d.file("rgba.png"), bgra);
  const cv::Mat m = decode_image(d.file("rgba.png"), 3);
  CHECK(px3(m, 0, 0) == cv::Vec3b(255, 0, 0));
  CHECK(px3(m, 0, 1) == cv::Vec3b(255, 255, 255));
  CHECK(px3(m, 0, 2) == cv::Vec3b(127, 127, 127));  // 255 * (1 - 128/255)
  CHECK(decode_image(d.file("rgba.png"), 1).at<uint8_t>(0, 1) == 255);

  // Palette: 0 = opaque blue, 1 = fully transparent red.
  write_bytes(d.file("pal.png"), make_png(2, 1, 8, 3, {{0, 1}}, {{"PLTE", {0, 0, 255, 255, 0, 0}}, {"tRNS", {255, 0}}}));
  const cv::Mat p = decode_image(d.file("pal.png"), 3);
  CHECK(px3(p, 0, 0) == cv::Vec3b(0, 0, 255));
  CHECK(px3(p, 0, 1) == cv::Vec3b(255, 255, 255));

  // Gray + alpha (colour type 4).
  write_bytes(d.file("ga.png"), make_png(2, 1, 8, 4, {{10, 255, 10, 0}}));
  const cv::Mat ga = decode_image(d.file("ga.png"), 1);
  CHECK(ga.at<uint8_t>(0, 0) == 10);
  CHECK(ga.at<uint8_t>(0, 1) == 255);
}

TEST_CASE("decode applies EXIF orientation", "[data]") {
  TempDir d("decode-exif");
  cv::Mat bgr(16, 32, CV_8UC3, cv::Scalar(0, 0, 255));              // red ...
  bgr(cv::Rect(16, 0, 16, 16)).setTo(cv::Scalar(255, 0, 0));         // ... left of blue
  std::vector<uint8_t> jpg = encode(".jpg", bgr, {cv::IMWRITE_JPEG_QUALITY, 95});
  // APP1 "Exif": a big-endian TIFF header and one IFD entry, Orientation (0x0112) = 6: rotate 90° clockwise.
  const std::vector<uint8_t> app1 = {0xFF, 0xE1, 0, 34, 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8,
                                     0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0};
  jpg.insert(jpg.begin() + 2, app1.begin(), app1.end());
  write_bytes(d.file("rot.jpg"), jpg);
  const cv::Mat m = decode_image(d.file("rot.jpg"), 3);
  REQUIRE(m.cols == 16);
  REQUIRE(m.rows == 32);
  const cv::Vec3b top = px3(m, 8, 8), bottom = px3(m, 24, 8);  // the left (red) half is now on top
  CHECK(top[0] > 200);
  CHECK(top[2] < 60);
  CHECK(bottom[2] > 200);
  CHECK(bottom[0] < 60);
}

TEST_CASE("decode rejects truncated JPEGs, empty files and non-images with the file name", "[data]") {
  TempDir d("decode-bad");
  cv::Mat bgr(64, 64, CV_8UC3);
  cv::randu(bgr, 0, 256);
  for (bool progressive : {false, true}) {
    INFO("progressive " << progressive);
    const std::vector<uint8_t> jpg = encode(".jpg", bgr, {cv::IMWRITE_JPEG_PROGRESSIVE, progressive ? 1 : 0});
    write_bytes(d.file("ok.jpg"), jpg);
    CHECK(decode_image(d.file("ok.jpg"), 3).size() == cv::Size(64, 64));
    write_bytes(d.file("half.jpg"), std::vector<uint8_t>(jpg.begin(), jpg.begin() + jpg.size() / 2));
    CHECK_THROWS_WITH(decode_image(d.file("half.jpg"), 3), Contains("half.jpg") && Contains("truncated"));
    write_bytes(d.file("noeoi.jpg"), std::vector<uint8_t>(jpg.begin(), jpg.end() - 2));
    CHECK_THROWS_WITH(decode_image(d.file("noeoi.jpg"), 3), Contains("noeoi.jpg") && Contains("FFD9"));
    std::vector<uint8_t> trailing = jpg;  // bytes after the end marker are harmless
    trailing.insert(trailing.end(), {0, 0, 0x12, 0x34});
    write_bytes(d.file("trailing.jpg"), trailing);
    CHECK(decode_image(d.file("trailing.jpg"), 3).size() == cv::Size(64, 64));
  }

  write_bytes(d.file("zero.jpg"), {});
  CHECK_THROWS_WITH(decode_image(d.file("zero.jpg"), 3), Contains("zero.jpg") && Contains("empty file"));
  CHECK_THROWS_WITH(decode_image(d.file("absent.jpg"), 3), Contains("absent.jpg") && Contains("cannot open"));
  write_bytes(d.file("text.png"), {'h', 'e', 'l', 'l', 'o', '\n'});
  CHECK_THROWS_WITH(decode_image(d.file("text.png"), 3), Contains("text.png") && Contains("not a supported image"));
  write_bytes(d.file("anim.gif"), {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0});
  CHECK_THROWS_WITH(decode_image(d.file("anim.gif"), 3), Contains("GIF"));

  // A PNG named .jpg: the content decides.
  write_bytes(d.file("png-named.jpg"), encode(".png", bgr));
  CHECK(decode_image(d.file("png-named.jpg"), 3).size() == cv::Size(64, 64));

  // A PNG cut short, and one with a damaged IDAT CRC.
  const std::vector<uint8_t> png = make_png(3, 2, 8, 0, {{1, 2, 3}, {4, 5, 6}});
  CHECK(decode_image([&] { write_bytes(d.file("ok.png"), png); return d.file("ok.png"); }(), 1).at<uint8_t>(1, 2) == 6);
  write_bytes(d.file("cut.png"), std::vector<uint8_t>(png.begin(), png.end() - 20));
  CHECK_THROWS_WITH(decode_image(d.file("cut.png"), 3), Contains("cut.png") && Contains("truncated"));
  std::vector<uint8_t> bad_crc = png;
  bad_crc[bad_crc.size() - 13] ^= 0xFF;  // last byte of IDAT's CRC (IEND is the final 12 bytes)
  write_bytes(d.file("crc.png"), bad_crc);
  CHECK_THROWS_WITH(decode_image(d.file("crc.png"), 3), Contains("crc.png") && Contains("corrupt PNG"));
}

TEST_CASE("decode checks pixel and file-size limits from the header before decoding", "[data]") {
  TempDir d("decode-limits");
  // Headers that claim 65536x65536 and 20000x20000 over a few bytes of pixel data: refused from the
  // header alone (decoding would need 12 GiB / 1.2 GB).
  for (uint32_t side : {65536u, 20000u}) {
    write_bytes(d.file("huge.png"), make_png(side, side, 8, 2, {{1, 2, 3}}));
    CHECK_THROWS_WITH(decode_image(d.file("huge.png"), 3), Contains("huge.png") && Contains("over the limit") &&
                                                               Contains(std::to_string(side) + "x" + std::to_string(side)));
  }
  // A JPEG whose frame header is edited to 60000x60000.
  cv::Mat bgr(16, 16, CV_8UC3, cv::Scalar(1, 2, 3));
  std::vector<uint8_t> jpg = encode(".jpg", bgr);
  for (size_t i = 2; i + 8 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {
      jpg[i + 5] = jpg[i + 7] = 0xEA;
      jpg[i + 6] = jpg[i + 8] = 0x60;
      break;
    }
  write_bytes(d.file("huge.jpg"), jpg);
  CHECK_THROWS_WITH(decode_image(d.file("huge.jpg"), 3), Contains("60000x60000"));

  cv::imwrite(d.file("small.png"), bgr);
  DecodeLimits limits;
  limits.max_pixels = 255;
  CHECK_THROWS_WITH(decode_image(d.file("small.png"), 3, limits), Contains("256 pixels is over the limit of 255"));
  limits.max_pixels = 256;
  CHECK(decode_image(d.file("small.png"), 3, limits).size() == cv::Size(16, 16));
  limits.max_file_bytes = 10;
  CHECK_THROWS_WITH(decode_image(d.file("small.png"), 3, limits), Contains("max_file_bytes"));

  // Extreme shapes still decode.
  cv::imwrite(d.file("one.png"), cv::Mat(1, 1, CV_8UC3, cv::Scalar(9, 8, 7)));
  CHECK(px3(decode_image(d.file("one.png"), 3), 0, 0) == cv::Vec3b(7, 8, 9));
  cv::imwrite(d.file("wide.png"), cv::Mat(16, 10000, CV_8UC1, cv::Scalar(5)));
  CHECK(decode_image(d.file("wide.png"), 3).size() == cv::Size(10000, 16));
}

TEST_CASE("image folder and decode accept file names that are not UTF-8", "[data]") {
  TempDir d("non-utf8");
  const std::string name = std::string("cls/caf") + char(0xE9) + char(0xFF) + ".png";  // Latin-1 bytes
  fs::create_directories(d.path / "cls");
  cv::imwrite(d.file(name), cv::Mat(3, 3, CV_8UC3, cv::Scalar(1, 2, 3)));
  const ImageFolder f = ImageFolder::scan(d.path.string());
  REQUIRE(f.samples.size() == 1);
  CHECK(f.samples[0].path == d.file(name));
  CHECK(px3(decode_image(f.samples[0].path, 3), 1, 1) == cv::Vec3b(3, 2, 1));
}
