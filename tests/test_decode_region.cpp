// data: crop-aware decoding (decode_image_region) against a full decode followed by the same crop,
// on JPEGs of a real photograph (tests/fixtures/pillow: 251x187, so MCUs of 8 and 16 do not
// divide it): 4:2:0, 4:2:2, 4:4:4, progressive, greyscale, EXIF-rotated; every box position class
// (corners, edges, odd offsets, MCU boundaries, one pixel, the whole image); and the Loader's
// batches against transform + patchify of the whole decoded image.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "data/decode.h"
#include "data/loader.h"
#include "data/patchify.h"
#include "data/rng.h"
#include "data/transform.h"
#include "harness.h"

using namespace vkvit;
using namespace vkvit::data;

namespace {

const std::string kFixtures = std::string(VKVIT_SOURCE_DIR) + "/tests/fixtures/pillow/";

// Box starts and lengths along an axis of `size` pixels: both edges, MCU boundaries and odd offsets.
std::vector<std::pair<int, int>> spans(int size) {
  std::vector<std::pair<int, int>> out;
  for (int start : {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, size / 2, size - 17, size - 16, size - 9, size - 1})
    for (int len : {1, 2, 8, 15, 16, 17, 40, size}) {
      if (start < 0 || len > size - start) continue;
      out.push_back({start, len});
    }
  out.push_back({0, size});
  return out;
}

// For every box, the region holds it and its pixels there equal the full decode's.
void check_every_box(const std::string& path, int channels, bool expect_cropped) {
  const std::vector<uint8_t> bytes = read_image_file(path, 1 << 20);
  const cv::Mat full = decode_image(path, channels);
  int cropped = 0, boxes = 0;
  for (const auto& [x, w] : spans(full.cols))
    for (const auto& [y, h] : spans(full.rows)) {
      const CropBox box{x, y, w, h};
      int calls = 0;
      const SourceRegion r = decode_image_region(bytes, path, channels, {}, [&](int W, int H) {
        ++calls;
        CHECK(W == full.cols);
        CHECK(H == full.rows);
        return box;
      });
      INFO(path << " box " << x << "," << y << " " << w << "x" << h << "; region " << r.x << "," << r.y << " "
                << r.pixels.cols << "x" << r.pixels.rows);
      REQUIRE(calls == 1);
      REQUIRE((r.box.x == x && r.box.y == y && r.box.width == w && r.box.height == h));
      REQUIRE(r.width == full.cols);
      REQUIRE(r.height == full.rows);
      REQUIRE(r.pixels.type() == full.type());
      REQUIRE(r.x <= x);
      REQUIRE(r.y <= y);
      REQUIRE(r.x + r.pixels.cols >= x + w);
      REQUIRE(r.y + r.pixels.rows >= y + h);
      const cv::Mat got = r.pixels(cv::Rect(x - r.x, y - r.y, w, h)), want = full(cv::Rect(x, y, w, h));
      REQUIRE(cv::norm(got, want, cv::NORM_INF) == 0);
      ++boxes;
      cropped += r.pixels.cols * r.pixels.rows < full.cols * full.rows;
    }
  INFO(path << ": " << cropped << " of " << boxes << " boxes decoded less than the whole image");
  if (expect_cropped) CHECK(cropped > boxes / 2);
  else CHECK(cropped == 0);
}

}  // namespace

TEST_CASE("crop-aware JPEG decoding gives a full decode's pixels for every box", "[data]") {
  for (const char* name : {"chelsea.jpg", "chelsea_422.jpg", "chelsea_444.jpg", "chelsea_progressive.jpg", "coffee.jpg"}) {
    check_every_box(kFixtures + name, 3, true);
    check_every_box(kFixtures + name, 1, true);  // colour to grey after the crop, as decode_image converts
  }
  check_every_box(kFixtures + "camera.jpg", 1, true);  // greyscale JPEG
  check_every_box(kFixtures + "camera.jpg", 3, true);
  // Not a JPEG: decoded whole, the region is the image.
  test::TempDir d("decode-region");
  cv::imwrite(d / "c.png", decode_image(kFixtures + "coffee.jpg", 3));
  check_every_box(d / "c.png", 3, false);
}

TEST_CASE("an EXIF-rotated JPEG is decoded whole, with the rotated size given to the chooser", "[data]") {
  test::TempDir d("decode-region-exif");
  // APP1 "Exif": big-endian TIFF header, one IFD entry, Orientation (0x0112) = 6 (90° clockwise).
  // OpenCV reads the TIFF header 6 bytes into the first APP1 segment whatever its identifier says,
  // so a mangled identifier (found by fuzzing: "ExRIFF") rotates the image too.
  for (const std::string& id : {std::string("Exif\0\0", 6), std::string("ExRIFF")}) {
    INFO("identifier " << id.substr(0, 4));
    std::vector<uint8_t> jpg = read_image_file(kFixtures + "chelsea.jpg", 1 << 20);
    std::vector<uint8_t> app1 = {0xFF, 0xE1, 0, 34};
    app1.insert(app1.end(), id.begin(), id.end());
    app1.insert(app1.end(), {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0});
    jpg.insert(jpg.begin() + 2, app1.begin(), app1.end());
    const std::string file = d / (id[2] == 'i' ? "rot.jpg" : "rot-mangled.jpg");
    test::write_file(file, std::string(jpg.begin(), jpg.end()));
    const cv::Mat full = decode_image(file, 3);
    REQUIRE(full.rows == 251);  // rotated: 187 wide, 251 high
    check_every_box(file, 3, false);
  }
}

TEST_CASE("the loader's crop-aware batches equal transform + patchify of the whole image", "[data]") {
  test::TempDir d("decode-region-loader");
  std::vector<Sample> samples;
  for (const char* name : {"chelsea.jpg", "chelsea_444.jpg", "chelsea_progressive.jpg", "coffee.jpg", "camera.jpg"})
    samples.push_back({kFixtures + name, 0});
  for (bool train : {true, false}) {
    for (bool rrc : {true, false}) {
      LoaderConfig lc;
      lc.batch_size = uint32_t(samples.size());
      lc.workers = 2;
      lc.train = train;
      lc.seed = 5;
      lc.transform.image_size = 96;
      lc.transform.random_resized_crop = rrc;
      lc.patch_size = 16;
      Loader loader(samples, lc);
      for (uint64_t epoch : {0, 1}) {
        loader.start_epoch(epoch);
        Batch b;
        REQUIRE(loader.next(b));
        const std::vector<uint32_t> order = Loader::epoch_order(uint32_t(samples.size()), train, lc.seed, epoch);
        std::vector<float> want(loader.floats_per_image());
        for (uint32_t i = 0; i < b.size; ++i) {
          const cv::Mat rgb = decode_image(samples[order[i]].path, 3);
          std::mt19937_64 rng(mix_seed(lc.seed, epoch, order[i]));
          const cv::Mat image = train ? transform_train(rgb, lc.transform, rng) : transform_eval(rgb, lc.transform);
          patchify(image, lc.patch_size, want.data());
          INFO("train " << train << " rrc " << rrc << " epoch " << epoch << " image " << samples[order[i]].path);
          CHECK(std::equal(want.begin(), want.end(), b.patches.begin() + ptrdiff_t(i * want.size())));
        }
      }
    }
  }
}

TEST_CASE("a JPEG with corrupt entropy-coded data decodes through the region path as through decode_image", "[data]") {
  test::TempDir d("decode-region-corrupt");
  const std::vector<uint8_t> good = read_image_file(kFixtures + "chelsea.jpg", 1 << 20);
  // Bytes of the scan (past the headers, before the end marker) overwritten: the structure that
  // probe_image walks stays intact, libjpeg meets bad Huffman codes or stray markers.
  int compared = 0;
  for (size_t at : {size_t(900), good.size() / 3, good.size() / 2, good.size() - 200})
    for (uint8_t value : {uint8_t(0x00), uint8_t(0xFF), uint8_t(0x5A)}) {
      std::vector<uint8_t> bad = good;
      for (size_t i = at; i < at + 24; ++i) bad[i] = value;
      const std::string path = d / "bad.jpg";
      test::write_file(path, std::string(bad.begin(), bad.end()));
      INFO("24 bytes of " << int(value) << " at " << at);
      cv::Mat full;
      std::string full_error, region_error;
      try {
        full = decode_image(path, 3);
      } catch (const std::exception& e) {
        full_error = e.what();
      }
      SourceRegion r;
      const CropBox box{40, 50, 120, 90};
      try {
        r = decode_image_region(bad, path, 3, {}, [&](int, int) { return box; });
      } catch (const std::exception& e) {
        region_error = e.what();
      }
      REQUIRE(region_error == full_error);
      if (!full_error.empty()) continue;
      const cv::Mat got = r.pixels(cv::Rect(box.x - r.x, box.y - r.y, box.width, box.height));
      CHECK(cv::norm(got, full(cv::Rect(box.x, box.y, box.width, box.height)), cv::NORM_INF) == 0);
      ++compared;
    }
  CHECK(compared > 0);
}
