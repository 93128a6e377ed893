// data: JPEG DCT scaling (data.jpeg_dct_scaling). A region decoded at 1/2, 1/4 or 1/8 equals
// libjpeg's whole reduced decode (OpenCV's IMREAD_REDUCED_*, the same library) over the box; the
// scale is chosen only where the crop keeps at least the output's size; the transforms on such a
// region stay close to the exact full-size path (the tolerance is measured and stated below); the
// Loader uses it only when asked.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

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

// libjpeg's whole decode at 1/d, through OpenCV, in decode_image's channel order.
cv::Mat reduced_decode(const std::string& path, int d, int channels, bool grey_jpeg) {
  const int colour = d == 2 ? cv::IMREAD_REDUCED_COLOR_2 : d == 4 ? cv::IMREAD_REDUCED_COLOR_4 : cv::IMREAD_REDUCED_COLOR_8;
  const int grey = d == 2 ? cv::IMREAD_REDUCED_GRAYSCALE_2 : d == 4 ? cv::IMREAD_REDUCED_GRAYSCALE_4
                                                                     : cv::IMREAD_REDUCED_GRAYSCALE_8;
  cv::Mat m = cv::imread(path, grey_jpeg ? grey : colour), out;
  if (m.channels() == 1) {
    if (channels == 3) cv::cvtColor(m, out, cv::COLOR_GRAY2RGB);
    else out = m;
  } else {
    cv::cvtColor(m, out, channels == 3 ? cv::COLOR_BGR2RGB : cv::COLOR_BGR2GRAY);
  }
  return out;
}

// A 1280 x 960 photograph-like JPEG (quality 90, 4:2:0): a mosaic of the fixture photographs at
// their own resolution, so it has a photograph's detail at every scale (an upscaled image would
// make reduced decoding look better than it is).
std::string write_large_jpeg(const test::TempDir& dir, const std::string& name) {
  const cv::Mat tiles[3] = {decode_image(kFixtures + "coffee.jpg", 3), decode_image(kFixtures + "chelsea.jpg", 3),
                            decode_image(kFixtures + "camera.jpg", 3)};
  cv::Mat big(960, 1280, CV_8UC3);
  int k = 0;
  for (int y = 0; y < big.rows; y += 180)
    for (int x = 0; x < big.cols; x += 150, ++k) {
      const cv::Mat& t = tiles[k % 3];
      const int w = std::min(150, big.cols - x), h = std::min(180, big.rows - y);
      const int sx = (k * 37) % (t.cols - w + 1), sy = (k * 23) % (t.rows - h + 1);
      t(cv::Rect(sx, sy, w, h)).copyTo(big(cv::Rect(x, y, w, h)));
    }
  cv::Mat bgr;
  cv::cvtColor(big, bgr, cv::COLOR_RGB2BGR);
  const std::string path = dir / name;
  REQUIRE(cv::imwrite(path, bgr, {cv::IMWRITE_JPEG_QUALITY, 90}));
  return path;
}

// Absolute differences of two 8-bit images: the largest, the mean and the 99.9th percentile.
struct Diff {
  int max = 0;
  double mean = 0;
  int p999 = 0;
};
Diff diff(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat d;
  cv::absdiff(a, b, d);
  std::vector<uint8_t> v(d.datastart, d.dataend);  // absdiff's output is continuous: every channel value
  std::sort(v.begin(), v.end());
  Diff out;
  out.max = v.back();
  double sum = 0;
  for (uint8_t x : v) sum += x;
  out.mean = sum / double(v.size());
  out.p999 = v[std::min(v.size() - 1, size_t(double(v.size()) * 0.999))];
  return out;
}

}  // namespace

TEST_CASE("a JPEG region decoded at 1/2, 1/4, 1/8 equals libjpeg's whole reduced decode over the box", "[data]") {
  struct Case {
    const char* name;
    bool grey_jpeg;
  };
  for (const Case& c : {Case{"chelsea.jpg", false}, Case{"chelsea_422.jpg", false}, Case{"chelsea_444.jpg", false},
                        Case{"chelsea_progressive.jpg", false}, Case{"coffee.jpg", false}, Case{"camera.jpg", true}})
    for (int channels : {3, 1})
      for (int d : {2, 4, 8}) {
        const std::string path = kFixtures + c.name;
        const std::vector<uint8_t> bytes = read_image_file(path, 1 << 20);
        const cv::Mat full = decode_image(path, channels);
        const cv::Mat want = reduced_decode(path, d, channels, c.grey_jpeg);
        REQUIRE(want.cols == (full.cols + d - 1) / d);
        REQUIRE(want.rows == (full.rows + d - 1) / d);
        int cropped = 0, boxes = 0;
        for (int x : {0, 1, 9, 17, 33, full.cols / 2, full.cols - 40})
          for (int y : {0, 7, 16, 31, full.rows / 2, full.rows - 40})
            for (int len : {1, 17, 40}) {
              const CropBox box{x, y, std::min(len * d, full.cols - x), std::min(len * d, full.rows - y)};
              const SourceRegion r =
                  decode_image_region(bytes, path, channels, {}, [&](int, int) { return RegionRequest(box, d); });
              INFO(c.name << " channels " << channels << " 1/" << d << " box " << box.x << "," << box.y << " "
                          << box.width << "x" << box.height << "; region " << r.x << "," << r.y << " " << r.pixels.cols
                          << "x" << r.pixels.rows);
              REQUIRE(r.scale_denom == d);
              REQUIRE((r.width == full.cols && r.height == full.rows));
              const int x0 = box.x / d, y0 = box.y / d;
              const int x1 = (box.x + box.width + d - 1) / d, y1 = (box.y + box.height + d - 1) / d;
              REQUIRE((r.x <= x0 && r.y <= y0 && r.x + r.pixels.cols >= x1 && r.y + r.pixels.rows >= y1));
              const cv::Rect covering(x0, y0, x1 - x0, y1 - y0);
              const cv::Mat got = r.pixels(covering - cv::Point(r.x, r.y));
              REQUIRE(cv::norm(got, want(covering), cv::NORM_INF) == 0);
              ++boxes;
              cropped += r.pixels.cols < want.cols || r.pixels.rows < want.rows;
            }
        CHECK(cropped > boxes / 2);
      }
}

TEST_CASE("DCT scaling is not used for other formats, and the request is checked", "[data]") {
  test::TempDir d("dct-png");
  cv::imwrite(d / "c.png", decode_image(kFixtures + "coffee.jpg", 3));
  const std::vector<uint8_t> png = read_image_file(d / "c.png", 1 << 22);
  const SourceRegion r = decode_image_region(png, d / "c.png", 3, {}, [](int w, int h) {
    return RegionRequest(CropBox{0, 0, w, h}, 4);
  });
  CHECK(r.scale_denom == 1);
  CHECK((r.pixels.cols == r.width && r.pixels.rows == r.height));
  const std::vector<uint8_t> jpg = read_image_file(kFixtures + "coffee.jpg", 1 << 22);
  CHECK_THROWS_WITH(decode_image_region(jpg, "coffee.jpg", 3, {}, [](int w, int h) {
    return RegionRequest(CropBox{0, 0, w, h}, 3);
  }), Catch::Contains("scale_denom must be 1, 2, 4 or 8 (got 3)"));
}

TEST_CASE("dct_scale_denom keeps the reduced crop at least gap times the output's size", "[data]") {
  TransformConfig c;
  c.image_size = 224;
  c.crop_pct = 0.875f;  // eval: shorter side to 256
  CHECK(dct_scale_denom(4000, 3000, {0, 0, 4000, 3000}, c, true) == 1);  // off by default
  c.jpeg_dct_scaling = 1;
  // Train (RandomResizedCrop): the box is resized to 224 x 224.
  CHECK(dct_scale_denom(4000, 3000, {10, 10, 1792, 1792}, c, true) == 8);
  CHECK(dct_scale_denom(4000, 3000, {10, 10, 1791, 1792}, c, true) == 4);
  CHECK(dct_scale_denom(4000, 3000, {10, 10, 2000, 900}, c, true) == 4);
  CHECK(dct_scale_denom(4000, 3000, {10, 10, 448, 2000}, c, true) == 2);
  CHECK(dct_scale_denom(4000, 3000, {10, 10, 447, 2000}, c, true) == 1);
  // Eval (and train without RandomResizedCrop): the whole image is resized, shorter side to 256.
  CHECK(dct_scale_denom(4000, 3000, {0, 0, 1, 1}, c, false) == 8);  // 3000 >= 8 x 256
  CHECK(dct_scale_denom(1500, 1000, {0, 0, 1, 1}, c, false) == 2);  // 1000 >= 2 x 256, < 4 x 256
  CHECK(dct_scale_denom(500, 375, {0, 0, 1, 1}, c, false) == 1);    // ImageNet's usual size: never
  c.random_resized_crop = false;
  CHECK(dct_scale_denom(1500, 1000, {10, 10, 300, 300}, c, true) == 2);
  c.random_resized_crop = true;
  c.jpeg_dct_scaling = 2;  // the reduced crop at least twice the output
  CHECK(dct_scale_denom(4000, 3000, {10, 10, 1792, 1792}, c, true) == 4);
  CHECK(dct_scale_denom(4000, 3000, {10, 10, 896, 896}, c, true) == 2);
  CHECK(dct_scale_denom(4000, 3000, {10, 10, 895, 2000}, c, true) == 1);
  CHECK(dct_scale_denom(4000, 3000, {0, 0, 1, 1}, c, false) == 4);  // 3000 >= 2 x 4 x 256, < 2 x 8 x 256
}

// The stated tolerance. A reduced decode averages each 8x8 block in the DCT domain before the
// antialiased resize instead of filtering the full-size pixels, so detail near the output's Nyquist
// limit differs most when the reduced crop is close to the output's size. Measured on the mosaic
// (1280 x 960, quality 90; its tile seams are sharper than most photographs' edges), eval at 224
// and 64 px and train crops of 200 to 1280 px to 96 px:
//   gap 1 (the reduced crop at least the output's size): mean |difference| 0.7-4.7 grey levels,
//     99.9th percentile up to 43, largest 53 (a 800 px crop to 96 px at 1/8);
//   gap 2 (at least twice, Pillow's thumbnail default): mean 0.5-1.1, 99.9th percentile up to 17,
//     largest 21; where no scaling is allowed the pixels are the exact path's.
// The bounds below sit just above those figures: an error in the reduced box's position (half a
// decoded pixel) or in the region's offset exceeds them.
TEST_CASE("transforms on a region decoded at a reduced scale stay close to the full-size path", "[data]") {
  test::TempDir dir("dct-close");
  const std::string path = write_large_jpeg(dir, "large.jpg");
  const std::vector<uint8_t> bytes = read_image_file(path, 1 << 24);
  const cv::Mat full = decode_image(path, 3);
  struct Tolerance {
    double gap, mean;
    int p999;
    std::vector<int> eval_denoms, train_denoms;
  };
  for (const Tolerance& t : {Tolerance{1, 5.0, 45, {2, 8}, {8, 8, 4, 2, 2}}, Tolerance{2, 1.2, 18, {1, 4}, {4, 4, 2, 1, 1}}}) {
    TransformConfig c;
    c.jpeg_dct_scaling = t.gap;
    c.crop_pct = 0.875f;
    std::vector<int> used;
    for (int size : {224, 64}) {
      c.image_size = size;
      const CropBox box = eval_source_box(full.cols, full.rows, c);
      const int d = dct_scale_denom(full.cols, full.rows, box, c, false);
      used.push_back(d);
      const SourceRegion r = decode_image_region(bytes, path, 3, {}, [&](int, int) { return RegionRequest(box, d); });
      const Diff e = diff(transform_eval_8bit(r, c), transform_eval_8bit(full, c));
      INFO("gap " << t.gap << " eval " << size << " at 1/" << d << ": max " << e.max << " mean " << e.mean << " p99.9 " << e.p999);
      CHECK(e.mean <= t.mean);
      CHECK(e.p999 <= t.p999);
    }
    CHECK(used == t.eval_denoms);
    used.clear();
    c.image_size = 96;
    c.hflip = 0;
    for (const CropBox& box : {CropBox{0, 0, 1280, 960}, CropBox{101, 37, 800, 777}, CropBox{333, 211, 400, 390},
                               CropBox{3, 500, 200, 450}, CropBox{1079, 759, 201, 201}}) {
      const int d = dct_scale_denom(full.cols, full.rows, box, c, true);
      used.push_back(d);
      const SourceRegion r = decode_image_region(bytes, path, 3, {}, [&](int, int) { return RegionRequest(box, d); });
      const SourceRegion whole{full, 0, 0, full.cols, full.rows, box, 1};
      std::mt19937_64 a(1), b(1);
      const Diff e = diff(transform_train_8bit(r, c, a), transform_train_8bit(whole, c, b));
      INFO("gap " << t.gap << " train box " << box.x << "," << box.y << " " << box.width << "x" << box.height << " at 1/"
                  << d << ": max " << e.max << " mean " << e.mean << " p99.9 " << e.p999);
      CHECK(e.mean <= t.mean);
      CHECK(e.p999 <= t.p999);
      if (d == 1) CHECK(e.max == 0);
    }
    CHECK(used == t.train_denoms);
  }
}

TEST_CASE("the loader decodes at a reduced scale only with data.jpeg_dct_scaling", "[data]") {
  test::TempDir dir("dct-loader");
  const std::vector<Sample> samples = {{write_large_jpeg(dir, "a.jpg"), 0}, {kFixtures + "coffee.jpg", 1}};
  for (bool scaling : {false, true})
    for (bool train : {true, false}) {
      LoaderConfig lc;
      lc.batch_size = uint32_t(samples.size());
      lc.workers = 2;
      lc.train = train;
      lc.seed = 3;
      lc.transform.image_size = 96;
      lc.transform.jpeg_dct_scaling = scaling ? 1.0 : 0.0;
      lc.patch_size = 16;
      Loader loader(samples, lc);
      loader.start_epoch(0);
      Batch b;
      REQUIRE(loader.next(b));
      const std::vector<uint32_t> order = Loader::epoch_order(uint32_t(samples.size()), train, lc.seed, 0);
      std::vector<float> want(loader.floats_per_image());
      for (uint32_t i = 0; i < b.size; ++i) {
        const std::string& path = samples[order[i]].path;
        std::mt19937_64 rng(mix_seed(lc.seed, 0, order[i]));
        int denom = 0;
        const SourceRegion r = decode_image_region(read_image_file(path, 1 << 24), path, 3, {}, [&](int w, int h) {
          const CropBox box = train ? train_source_box(w, h, lc.transform, rng) : eval_source_box(w, h, lc.transform);
          denom = dct_scale_denom(w, h, box, lc.transform, train);
          return RegionRequest(box, denom);
        });
        const bool large = path == samples[0].path;
        INFO("scaling " << scaling << " train " << train << " " << path << " at 1/" << denom);
        // At 96 px the 1280 x 960 image's eval resize (shorter side 109) allows 1/8 and its random crops
        // (sides >= 271) at least 1/2; the 251 x 187 photograph allows none.
        CHECK((scaling && large) == (denom > 1));
        const cv::Mat image8 = train ? transform_train_8bit(r, lc.transform, rng) : transform_eval_8bit(r, lc.transform);
        patchify_8bit(image8, normalize_table(lc.transform), lc.patch_size, want.data());
        CHECK(std::equal(want.begin(), want.end(), b.patches.begin() + ptrdiff_t(i * want.size())));
      }
    }
}
