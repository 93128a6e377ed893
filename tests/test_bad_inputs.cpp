// Bad inputs (README "How it works") that tests/test_data.cpp, test_loader.cpp, test_safetensors.cpp and
// test_config.cpp leave out, at library level: CMYK and progressive JPEGs, PNGs with a damaged
// IDAT behind a valid CRC, a real 20000x20000 deflate bomb, headers of every format claiming more
// pixels than the limit, extreme shapes through both transforms and the loader, multi-page TIFF,
// animated GIF, folders that are empty or not folders, class folder names that are not UTF-8,
// stale temp files after a crash between write and rename, and model sizes that are zero,
// negative or overflow. Every file is built
// here at run time (tests/bad_files.h). The whole-command cases are in test_bad_inputs_cli.cpp.
#include <catch2/catch.hpp>

#include "bad_files.h"
#include "harness.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "base/error.h"
#include "data/decode.h"
#include "data/image_folder.h"
#include "data/loader.h"
#include "data/transform.h"
#include "model/safetensors.h"
#include "train/config.h"

using namespace vkvit;
using namespace vkvit::test::bad;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using vkvit::test::error_of;
using vkvit::test::TempDir;

namespace {

std::string decode_error(const std::string& path, int channels = 3) {
  return error_of([&] { data::decode_image(path, channels); });
}

// One line: no newline inside, and the file named at the start.
void check_one_line_naming(const std::string& msg, const std::string& path) {
  INFO(msg);
  CHECK(msg.find('\n') == std::string::npos);
  CHECK_THAT(msg, Catch::StartsWith(path + ": "));
}

int channel_diff(const cv::Vec3b& a, const cv::Vec3b& b) {
  int d = 0;
  for (int c = 0; c < 3; ++c) d = std::max(d, std::abs(int(a[c]) - int(b[c])));
  return d;
}

}  // namespace

// ------------------------------------------------------------------ 8: CMYK and progressive JPEG

TEST_CASE("a CMYK JPEG decodes to the colour its inverted Adobe samples encode", "[bad-inputs]") {
  TempDir d("bad-cmyk");
  struct Case {
    uint8_t samples[4];  // C, M, Y, K as stored: inverted, 255 = no ink
    cv::Vec3b rgb;       // (1 - C)(1 - K) per channel: PIL's CMYK -> RGB of the inverted samples
  };
  const Case cases[] = {
      {{200, 100, 50, 255}, {200, 100, 50}},  // no black ink: the samples are the RGB
      {{255, 255, 255, 128}, {128, 128, 128}},  // half black
      {{255, 0, 255, 255}, {255, 0, 255}},  // full magenta ink
  };
  for (const Case& c : cases) {
    const std::string path = d.file("cmyk.jpg");
    write_bytes(path, cmyk_jpeg(c.samples, true));
    INFO("samples " << int(c.samples[0]) << " " << int(c.samples[1]) << " " << int(c.samples[2]) << " "
                    << int(c.samples[3]));
    const cv::Mat rgb = data::decode_image(path, 3);
    REQUIRE(rgb.type() == CV_8UC3);
    REQUIRE(rgb.size() == cv::Size(8, 8));
    // OpenCV's CMYK conversion divides by 256 instead of 255: within 2 levels of PIL's.
    for (int y = 0; y < 8; y += 7)
      for (int x = 0; x < 8; x += 7) CHECK(channel_diff(rgb.at<cv::Vec3b>(y, x), c.rgb) <= 2);
    const cv::Mat gray = data::decode_image(path, 1);
    REQUIRE(gray.type() == CV_8UC1);
    const double luma = 0.299 * c.rgb[0] + 0.587 * c.rgb[1] + 0.114 * c.rgb[2];
    CHECK(std::abs(gray.at<uint8_t>(4, 4) - luma) <= 2.5);
  }
  // A CMYK JPEG cut short or without its end marker is refused like any other JPEG.
  const uint8_t s[4] = {10, 20, 30, 40};
  const Bytes whole = cmyk_jpeg(s, true);
  write_bytes(d.file("cut.jpg"), Bytes(whole.begin(), whole.begin() + long(whole.size() / 2)));
  const std::string cut = decode_error(d.file("cut.jpg"));
  check_one_line_naming(cut, d.file("cut.jpg"));
  CHECK_THAT(cut, Contains("truncated"));
  write_bytes(d.file("noeoi.jpg"), Bytes(whole.begin(), whole.end() - 2));
  CHECK_THAT(decode_error(d.file("noeoi.jpg")), Contains("FFD9"));
}

TEST_CASE("a progressive JPEG decodes to the same pixels as its baseline twin", "[bad-inputs]") {
  TempDir d("bad-progressive");
  cv::Mat bgr(37, 53, CV_8UC3);
  cv::randu(bgr, 0, 256);
  cv::GaussianBlur(bgr, bgr, cv::Size(5, 5), 2.0);  // some structure, so the AC scans carry data
  for (int quality : {50, 95}) {
    INFO("quality " << quality);
    const Bytes base = encode(".jpg", bgr, {cv::IMWRITE_JPEG_QUALITY, quality});
    const Bytes prog = encode(".jpg", bgr, {cv::IMWRITE_JPEG_QUALITY, quality, cv::IMWRITE_JPEG_PROGRESSIVE, 1});
    REQUIRE(!base.empty());
    REQUIRE(!prog.empty());
    REQUIRE(prog != base);
    write_bytes(d.file("base.jpg"), base);
    write_bytes(d.file("prog.jpg"), prog);
    // The same quantized coefficients, sent in several scans: identical pixels.
    const cv::Mat a = data::decode_image(d.file("base.jpg"), 3), b = data::decode_image(d.file("prog.jpg"), 3);
    REQUIRE(a.size() == b.size());
    CHECK(cv::norm(a, b, cv::NORM_INF) == 0);
    // A progressive file cut after its first scans would decode to a blurry picture: refused.
    write_bytes(d.file("prog-cut.jpg"), Bytes(prog.begin(), prog.begin() + long(prog.size() * 3 / 4)));
    CHECK_THAT(decode_error(d.file("prog-cut.jpg")), Contains("prog-cut.jpg") && Contains("truncated"));
  }
}

// ------------------------------------------------------------------ 5: PNG with a damaged IDAT

TEST_CASE("a PNG whose IDAT is damaged is refused even when every CRC is valid", "[bad-inputs]") {
  TempDir d("bad-idat");
  const std::vector<Bytes> rows = {{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 11, 12}};
  const Bytes raw = filtered_rows(rows);
  write_bytes(d.file("ok.png"), gray_png(rows));
  REQUIRE(data::decode_image(d.file("ok.png"), 1).at<uint8_t>(2, 3) == 12);

  struct Case {
    const char* name;
    Bytes png;
  };
  Bytes bad_block = zlib_stored(raw);
  bad_block[2] = 0x07;  // BFINAL 1, BTYPE 11: a reserved block type
  Bytes short_stream = zlib_stored(Bytes(raw.begin(), raw.begin() + 10));  // two of the three rows
  Bytes bad_header = zlib_stored(raw);
  bad_header[1] = 0x02;  // zlib header check bits no longer divide by 31
  const Case cases[] = {
      {"reserved-block.png", png_file({ihdr(4, 3, 8, 0), {"IDAT", bad_block}, {"IEND", {}}})},
      {"missing-rows.png", png_file({ihdr(4, 3, 8, 0), {"IDAT", short_stream}, {"IEND", {}}})},
      {"bad-zlib-header.png", png_file({ihdr(4, 3, 8, 0), {"IDAT", bad_header}, {"IEND", {}}})},
      {"no-idat.png", png_file({ihdr(4, 3, 8, 0), {"IEND", {}}})},
      {"bad-filter.png", [&] {  // filter type 9 does not exist
         Bytes r = raw;
         r[5] = 9;
         return png_file({ihdr(4, 3, 8, 0), {"IDAT", zlib_stored(r)}, {"IEND", {}}});
       }()},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    write_bytes(d.file(c.name), c.png);
    const std::string msg = decode_error(d.file(c.name), 1);
    check_one_line_naming(msg, d.file(c.name));
    CHECK_THAT(msg, Contains("corrupt PNG"));
  }
  // Damage inside IDAT as a disk or a download makes it: the CRC no longer matches.
  Bytes flipped = gray_png(rows);
  flipped[8 + 25 + 8 + 9] ^= 0x40;  // a pixel byte inside the stored block (after IHDR, IDAT header, zlib and block headers)
  write_bytes(d.file("flipped.png"), flipped);
  CHECK_THAT(decode_error(d.file("flipped.png"), 1), Contains("flipped.png") && Contains("corrupt PNG"));
}

// ------------------------------------------------------------------ 6, 7: bombs and lying headers

TEST_CASE("a real 20000x20000 deflate bomb is refused from its header before inflating", "[bad-inputs]") {
  TempDir d("bad-bomb");
  // The builder makes genuine PNGs: a small one decodes to black.
  write_bytes(d.file("small-bomb.png"), png_bomb(300));
  const cv::Mat small = data::decode_image(d.file("small-bomb.png"), 1);
  REQUIRE(small.size() == cv::Size(300, 300));
  CHECK(cv::countNonZero(small) == 0);

  const Bytes bomb = png_bomb(20000);
  CHECK(bomb.size() < 3'000'000);  // 400 MB of pixels in under 3 MB
  write_bytes(d.file("bomb.png"), bomb);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string msg = decode_error(d.file("bomb.png"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  check_one_line_naming(msg, d.file("bomb.png"));
  CHECK_THAT(msg, Contains("20000x20000") && Contains("over the limit"));
  // Inflating 400 MB takes seconds; reading the header takes milliseconds (generous for a busy CPU).
  CHECK(seconds < 1.0);
}

TEST_CASE("headers of every format claiming more pixels than the limit are refused", "[bad-inputs]") {
  TempDir d("bad-headers");
  cv::Mat bgr(8, 8, CV_8UC3, cv::Scalar(10, 20, 30));
  struct Case {
    const char* ext;
    std::vector<int> params;
    std::function<void(Bytes&)> edit;
    std::string size;
  };
  const Case cases[] = {
      {".jpg", {}, [](Bytes& b) {  // the largest a JPEG frame header can say
         const size_t at = jpeg_size_field(b);
         REQUIRE(at > 0);
         b[at] = b[at + 1] = b[at + 2] = b[at + 3] = 0xFF;
       }, "65535x65535"},
      {".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1}, [](Bytes& b) {
         const size_t at = jpeg_size_field(b);
         REQUIRE(at > 0);
         b[at] = b[at + 2] = 0x80, b[at + 1] = b[at + 3] = 0x00;
       }, "32768x32768"},
      {".png", {}, [](Bytes& b) {  // 65536x65536 in IHDR (CRC fixed, so only the size is wrong)
         for (int i : {16, 20}) b[i] = 0, b[i + 1] = 1, b[i + 2] = 0, b[i + 3] = 0;
         const uint32_t crc = crc32(b.data() + 12, 17);
         for (int k = 0; k < 4; ++k) b[29 + k] = uint8_t(crc >> (24 - 8 * k));
       }, "65536x65536"},
      {".bmp", {}, [](Bytes& b) {  // BITMAPINFOHEADER width and height, little-endian
         for (int i : {18, 22}) b[i] = 0, b[i + 1] = 0, b[i + 2] = 1, b[i + 3] = 0;
       }, "65536x65536"},
      {".ppm", {}, [](Bytes& b) {  // "P6\n8 8\n255\n" -> "P6\n99999 99999\n255\n"
         const std::string head = "P6\n99999 99999\n255\n";
         const std::string old(b.begin(), b.begin() + 11);
         REQUIRE(old == "P6\n8 8\n255\n");
         b.erase(b.begin(), b.begin() + 11);
         b.insert(b.begin(), head.begin(), head.end());
       }, "99999x99999"},
  };
  std::vector<Case> all(std::begin(cases), std::end(cases));
  if (cv::haveImageWriter(".webp"))  // lossless WebP: VP8L holds width - 1 and height - 1 in 14 bits each
    all.push_back({".webp", {cv::IMWRITE_WEBP_QUALITY, 101}, [](Bytes& b) {
                     REQUIRE(std::string(b.begin() + 12, b.begin() + 16) == "VP8L");
                     b[21] = 0xFF, b[22] = 0xFF, b[23] = 0xFF, b[24] = uint8_t((b[24] & 0xF0) | 0x0F);
                   }, "16384x16384"});
  for (const Case& c : all) {
    INFO(c.ext << " claiming " << c.size);
    Bytes b = encode(c.ext, bgr, c.params);
    REQUIRE(!b.empty());
    c.edit(b);
    const std::string path = d.file(std::string("huge") + c.ext);
    write_bytes(path, b);
    const std::string msg = decode_error(path);
    check_one_line_naming(msg, path);
    CHECK_THAT(msg, Contains(c.size) && Contains("over the limit"));
  }
  // A header that claims no pixels at all.
  Bytes zero = encode(".png", bgr);
  for (int i = 16; i < 20; ++i) zero[size_t(i)] = 0;
  const uint32_t crc = crc32(zero.data() + 12, 17);
  for (int k = 0; k < 4; ++k) zero[size_t(29 + k)] = uint8_t(crc >> (24 - 8 * k));
  write_bytes(d.file("zero-width.png"), zero);
  CHECK_THAT(decode_error(d.file("zero-width.png")), Contains("zero-width.png") && Contains("0x8"));
}

// ------------------------------------------------------------------ 9, 10: depth and alpha

TEST_CASE("a 16-bit RGBA PNG composites over white at full precision", "[bad-inputs]") {
  TempDir d("bad-16a");
  // BGRA 16-bit: opaque (65535, 0, 32896), then half-transparent black, then transparent.
  cv::Mat bgra(1, 3, CV_16UC4);
  bgra.at<cv::Vec<uint16_t, 4>>(0, 0) = {65535, 0, 32896, 65535};
  bgra.at<cv::Vec<uint16_t, 4>>(0, 1) = {0, 0, 0, 32768};
  bgra.at<cv::Vec<uint16_t, 4>>(0, 2) = {1000, 2000, 3000, 0};
  REQUIRE(cv::imwrite(d.file("rgba16.png"), bgra));
  const cv::Mat m = data::decode_image(d.file("rgba16.png"), 3);
  REQUIRE(m.type() == CV_8UC3);
  CHECK(m.at<cv::Vec3b>(0, 0) == cv::Vec3b(128, 0, 255));
  CHECK(m.at<cv::Vec3b>(0, 1) == cv::Vec3b(127, 127, 127));  // 65535 * (1 - 32768/65535) -> 127.5 -> 127
  CHECK(m.at<cv::Vec3b>(0, 2) == cv::Vec3b(255, 255, 255));
}

// ------------------------------------------------------------------ 11: extreme shapes

TEST_CASE("1x1, 10000x16, 16x10000 and 1x300000 images give the right patches in train and eval", "[bad-inputs]") {
  TempDir d("bad-shapes");
  const uint8_t value = 200;
  const std::vector<cv::Size> sizes = {{1, 1}, {10000, 16}, {16, 10000}, {300000, 1}, {1, 300000}};
  std::vector<data::Sample> samples;
  for (const cv::Size& s : sizes) {
    const std::string path = d.file(std::to_string(s.width) + "x" + std::to_string(s.height) + ".png");
    REQUIRE(cv::imwrite(path, cv::Mat(s, CV_8UC1, cv::Scalar(value))));
    samples.push_back({path, uint32_t(samples.size() % 2)});
  }
  for (bool train : {false, true}) {
    INFO((train ? "train" : "eval"));
    data::LoaderConfig c;
    c.batch_size = uint32_t(samples.size());
    c.workers = 0;
    c.train = train;
    c.seed = 3;
    c.patch_size = 4;
    c.transform.image_size = 16;
    c.transform.channels = 1;
    c.transform.mean = {0.5f};
    c.transform.std = {0.25f};
    data::Loader loader(samples, c);
    loader.start_epoch(0);
    data::Batch b;
    REQUIRE(loader.next(b));
    CHECK(loader.skipped_this_epoch() == 0);
    REQUIRE(b.size == samples.size());
    REQUIRE(b.patches.size() == samples.size() * 16 * 16);
    // A flat picture stays flat through any crop, resize and flip: every value is (200/255 - 0.5) / 0.25.
    const float want = (value / 255.0f - 0.5f) / 0.25f;
    float worst = 0;
    for (float v : b.patches) worst = std::max(worst, std::abs(v - want));
    CHECK(worst < 1e-4f);
  }

  // At ImageNet size the eval resize of a 1x300000 image is 256 x 76.8 million pixels: only the
  // centre crop may be computed, or this takes gigabytes. A vertical ramp must come out as the
  // middle of the ramp, increasing downwards.
  cv::Mat ramp(300000, 1, CV_8UC1);
  for (int y = 0; y < ramp.rows; ++y) ramp.at<uint8_t>(y, 0) = uint8_t(y * 256 / ramp.rows);
  data::TransformConfig t;
  t.channels = 1;
  t.mean = {0.0f};
  t.std = {1.0f};
  const auto t0 = std::chrono::steady_clock::now();
  const cv::Mat out = data::transform_eval(ramp, t);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(out.size() == cv::Size(224, 224));
  CHECK(seconds < 5.0);
  // 224 of 76.8 million rows around the middle: all within a grey level of 128.
  double lo = 1e9, hi = -1e9;
  cv::minMaxLoc(out, &lo, &hi);
  CHECK(lo * 255 >= 126.5);
  CHECK(hi * 255 <= 128.5);
  CHECK(out.at<float>(0, 100) <= out.at<float>(223, 100));
}

// ------------------------------------------------------------------ 13: animated GIF, multi-page TIFF

TEST_CASE("an animated GIF is refused by its content whatever its name, and folders skip .gif", "[bad-inputs]") {
  TempDir d("bad-gif");
  const Bytes gif = animated_gif();
  for (const char* name : {"anim.gif", "anim-named.png", "anim-named.jpg"}) {
    INFO(name);
    write_bytes(d.file(name), gif);
    const std::string msg = decode_error(d.file(name));
    check_one_line_naming(msg, d.file(name));
    CHECK_THAT(msg, Contains("GIF is not supported") && Contains("convert it to PNG"));
  }
  CHECK_FALSE(data::is_image_extension("anim.gif"));
  write_bytes(d.file("root/cls/anim.gif"), gif);  // creates root/cls
  REQUIRE(cv::imwrite(d.file("root/cls/ok.png"), cv::Mat(2, 2, CV_8UC1, cv::Scalar(1))));
  const data::ImageFolder f = data::ImageFolder::scan(d.file("root"));
  REQUIRE(f.samples.size() == 1);
  CHECK(fs::path(f.samples[0].path).filename() == "ok.png");
}

TEST_CASE("a multi-page TIFF reads its first page, as PIL's Image.open does", "[bad-inputs]") {
  TempDir d("bad-tiff");
  std::vector<cv::Mat> pages = {cv::Mat(6, 5, CV_8UC3, cv::Scalar(10, 20, 30)), cv::Mat(9, 4, CV_8UC3, cv::Scalar(200, 0, 0)),
                                cv::Mat(6, 5, CV_8UC3, cv::Scalar(1, 2, 3))};
  cv::randu(pages[0], 0, 256);
  REQUIRE(cv::imwritemulti(d.file("pages.tiff"), pages));
  std::vector<cv::Mat> back;
  REQUIRE(cv::imreadmulti(d.file("pages.tiff"), back));
  REQUIRE(back.size() == 3);  // the file really holds three pages
  const cv::Mat m = data::decode_image(d.file("pages.tiff"), 3);
  REQUIRE(m.size() == cv::Size(5, 6));
  cv::Mat want;
  cv::cvtColor(pages[0], want, cv::COLOR_BGR2RGB);
  CHECK(cv::norm(m, want, cv::NORM_INF) == 0);
  // Cut inside the first directory: refused.
  const std::string bytes = test::read_file(d.file("pages.tiff"));
  write_bytes(d.file("cut.tiff"), Bytes(bytes.begin(), bytes.begin() + 40));
  const std::string msg = decode_error(d.file("cut.tiff"));
  check_one_line_naming(msg, d.file("cut.tiff"));
}

// ------------------------------------------------------------------ 14: folders

TEST_CASE("an empty class folder, a root that is a file and a root of hidden folders are one line", "[bad-inputs]") {
  TempDir d("bad-folders");
  for (const char* dir : {"root/cat", "root/dog", "hidden/.cache"}) fs::create_directories(d.path / dir);
  REQUIRE(cv::imwrite(d.file("root/cat/1.png"), cv::Mat(2, 2, CV_8UC1, cv::Scalar(1))));
  // root/dog holds nothing at all.
  std::string msg = error_of([&] { data::ImageFolder::scan(d.file("root")); });
  CHECK(msg.find('\n') == std::string::npos);
  CHECK_THAT(msg, Contains(d.file("root/dog")) && Contains("has no images") && Contains("remove the folder"));

  msg = error_of([&] { data::ImageFolder::scan(d.file("root/cat/1.png")); });
  CHECK_THAT(msg, Contains("1.png") && Contains("is not a folder"));

  REQUIRE(cv::imwrite(d.file("hidden/.cache/1.png"), cv::Mat(2, 2, CV_8UC1, cv::Scalar(1))));
  REQUIRE(cv::imwrite(d.file("hidden/stray.png"), cv::Mat(2, 2, CV_8UC1, cv::Scalar(1))));
  msg = error_of([&] { data::ImageFolder::scan(d.file("hidden")); });
  CHECK_THAT(msg, Contains("no class folders") && Contains("hidden folders are ignored"));
}

// ------------------------------------------------------------------ 15: non-UTF-8 names

TEST_CASE("a class folder name that is not UTF-8 is one line, image file names may be anything", "[bad-inputs]") {
  TempDir d("bad-utf8");
  const std::string latin1 = std::string("caf") + char(0xE9);
  for (const std::string& cls : {std::string("ok"), latin1}) fs::create_directories(d.path / "root" / cls);
  REQUIRE(cv::imwrite(d.file("root/ok/" + latin1 + ".png"), cv::Mat(2, 2, CV_8UC1, cv::Scalar(1))));
  REQUIRE(cv::imwrite(d.file("root/" + latin1 + "/1.png"), cv::Mat(2, 2, CV_8UC1, cv::Scalar(1))));
  const std::string msg = error_of([&] { data::ImageFolder::scan(d.file("root")); });
  CHECK(msg.find('\n') == std::string::npos);
  CHECK_THAT(msg, Contains(d.file("root/" + latin1)) && Contains("not UTF-8") && Contains("rename the folder"));
  // UTF-8 class names of every length (2, 3 and 4 bytes) and a non-UTF-8 file name are fine.
  fs::remove_all(d.path / "root" / latin1);
  for (const char* cls : {"caf\xC3\xA9", "\xE7\x8C\xAB", "\xF0\x9F\x90\x88"}) {
    fs::create_directories(d.path / "root" / cls);
    REQUIRE(cv::imwrite(d.file(std::string("root/") + cls + "/1.png"), cv::Mat(2, 2, CV_8UC1, cv::Scalar(1))));
  }
  const data::ImageFolder f = data::ImageFolder::scan(d.file("root"));
  CHECK(f.classes.size() == 4);
  CHECK(f.samples.size() == 4);
  // Overlong, surrogate and truncated sequences are not UTF-8.
  for (const char* cls : {"\xC0\xAF", "\xED\xA0\x80", "\xE7\x8C", "\xF5\x80\x80\x80"}) {
    INFO(cls);
    fs::create_directories(d.path / "root" / cls);
    REQUIRE(cv::imwrite(d.file(std::string("root/") + cls + "/1.png"), cv::Mat(2, 2, CV_8UC1, cv::Scalar(1))));
    CHECK_THAT(error_of([&] { data::ImageFolder::scan(d.file("root")); }), Contains("not UTF-8"));
    fs::remove_all(d.path / "root" / cls);
  }
}

// ------------------------------------------------------------------ 18: crash between write and rename

TEST_CASE("a crash between write and rename leaves the old checkpoint and a temp file the next save removes",
          "[bad-inputs]") {
  TempDir d("bad-rename");
  const std::string path = d.file("last.safetensors");
  const std::vector<float> old_values = {1, 2, 3}, new_values = {4, 5, 6, 7};
  model::write_safetensors(path, {{"w", {3}, old_values.data()}});
  // A process that wrote the whole new file but died before its rename: its temp file stays.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  REQUIRE(child > 0);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  const fs::path stale = d.path / (".last.safetensors.tmp-" + std::to_string(child));
  model::write_safetensors(stale.string(), {{"w", {4}, new_values.data()}});
  // A temp file of a process that is still alive (this one's parent) must be left alone.
  const fs::path live = d.path / (".last.safetensors.tmp-" + std::to_string(getppid()));
  test::write_file(live, "in progress");

  // Readers see the old, complete file; a folder scan never picks up the hidden temp files.
  const model::SafeTensors st = model::read_safetensors(path);
  REQUIRE(st.tensors.size() == 1);
  CHECK(st.tensors[0].data == old_values);
  // The next save of the same target replaces the file and removes the dead process's temp file.
  model::write_safetensors(path, {{"w", {4}, new_values.data()}});
  CHECK(model::read_safetensors(path).tensors[0].data == new_values);
  CHECK_FALSE(fs::exists(stale));
  CHECK(fs::exists(live));
}

// ------------------------------------------------------------------ config: sizes and model rules

TEST_CASE("zero, negative and overflowing model sizes are one line naming key and line", "[bad-inputs]") {
  auto parse_error = [](const std::string& yaml) {
    return error_of([&] { train::RunConfig::parse(yaml, "cfg/bad.yaml"); });
  };
  struct Case {
    std::string yaml, start;
  };
  const Case cases[] = {
      {"model:\n  image_size: 0\n", "cfg/bad.yaml:2: model.image_size: must be in [1, "},
      {"model:\n  in_chans: 0\n", "cfg/bad.yaml:2: model.in_chans: must be in [1, "},
      {"model:\n  depth: 0\n", "cfg/bad.yaml:2: model.depth: must be in [1, "},
      {"model:\n  heads: -2\n", "cfg/bad.yaml:2: model.heads: must be in [1, "},
      {"model:\n  mlp_dim: 0\n", "cfg/bad.yaml:2: model.mlp_dim: must be in [1, "},
      {"model:\n  num_classes: -10\n", "cfg/bad.yaml:2: model.num_classes: must be in [1, "},
      {"model:\n  image_size: 99999999999\n", "cfg/bad.yaml:2: model.image_size: must be in [1, "},
      {"model:\n  heads: 8\n  dim: 4\n", "cfg/bad.yaml:3: model.dim: dim 4 must be a multiple of heads 8"},
      {"model:\n  image_size: 16\n  patch_size: 32\n",
       "cfg/bad.yaml:2: model.image_size: image_size 16 must be a multiple of patch_size 32"},
      {"train:\n  batch_size: -1\n", "cfg/bad.yaml:2: train.batch_size: must be in [1, "},
      {"train:\n  epochs: 0\n", "cfg/bad.yaml:2: train.epochs: must be in [1, "},
      {"model:\n  image_size: [224]\n", "cfg/bad.yaml:2: model.image_size: expected an integer"},
      {"model:\n  dim: 1e3\n", "cfg/bad.yaml:2: model.dim: expected an integer"},
      {"model:\n\tdim: 32\n", "cfg/bad.yaml:2: malformed YAML"},
      {"model:\n  dim: 32\n  dim: 64\n", "cfg/bad.yaml:3: model.dim: key given twice"},
  };
  for (const Case& c : cases) {
    INFO(c.yaml);
    const std::string e = parse_error(c.yaml);
    CHECK(e.find('\n') == std::string::npos);
    CHECK_THAT(e, Catch::StartsWith(c.start));
  }
  // Sizes each fine alone whose products overflow 32-bit token or weight counts.
  for (const char* yaml : {"model:\n  image_size: 65536\n  patch_size: 1\n",
                           "model:\n  dim: 65536\n  mlp_dim: 65536\n  heads: 1\n",
                           "model:\n  in_chans: 3\n  patch_size: 32768\n  image_size: 32768\n"}) {
    INFO(yaml);
    const std::string e = parse_error(yaml);
    CHECK(e.find('\n') == std::string::npos);
    CHECK_THAT(e, Catch::StartsWith("cfg/bad.yaml"));
    CHECK_THAT(e, Contains("model"));
  }
}
