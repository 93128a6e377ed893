// Writes the seed corpora of the fuzz targets (scripts/fuzz.sh runs it; seeds are generated, never
// committed): small valid safetensors files from vkvit's own writer, the repository's configs and
// variants with overrides, and small images in every format decode_image reads, from OpenCV.
// Usage: vkvit_fuzz_seeds <out-dir> <configs-dir>; creates <out-dir>/{safetensors,config,decode}/.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "base/error.h"
#include "model/safetensors.h"
#include "model/vit_config.h"
#include "train/config.h"

namespace fs = std::filesystem;

namespace {

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  if (!f) throw vkvit::Error(p.string() + ": cannot write the seed file; check the folder's permissions");
}

std::string as_string(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

// Overrides as fuzz_config.cpp reads them: NUL-separated.
std::string nul_join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : std::string(1, '\0')) + p;
  return out;
}

// Values that are not all equal or zero, so the readers' conversions see real numbers.
std::vector<float> ramp(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 0.25f * float(i) - 1.5f;
  return v;
}

// A safetensors file built by hand, for the dtypes vkvit reads but its writer never writes.
std::string handmade(const std::string& dtype, const std::string& shape, const std::string& payload) {
  std::string header = "{\"t\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[0," +
                       std::to_string(payload.size()) + "]}}";
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char(uint64_t(header.size()) >> (8 * i));
  return out + header + payload;
}

void safetensors_seeds(const fs::path& dir) {
  using vkvit::model::TensorRef;
  using vkvit::model::write_safetensors;
  const std::vector<float> a = ramp(6), b = ramp(13), c = ramp(1);
  write_safetensors((dir / "empty.safetensors").string(), {});
  write_safetensors((dir / "scalar.safetensors").string(), {{"s", {}, c.data()}});
  write_safetensors((dir / "one.safetensors").string(), {{"w", {2, 3}, a.data()}});
  write_safetensors((dir / "zero_dim.safetensors").string(), {{"z", {0, 4}, nullptr}, {"w", {6}, a.data()}});
  write_safetensors((dir / "metadata.safetensors").string(), {{"w", {13}, b.data()}},
                    {{"format", "pt"}, {"vkvit.step", "7"}});
  write_safetensors((dir / "vit_names.safetensors").string(),
                    {{"cls_token", {1, 1, 6}, a.data()},
                     {"pos_embed", {1, 1, 13}, b.data()},
                     {"blocks.0.norm1.weight", {6}, a.data()},
                     {"head.bias", {1}, c.data()}});
  // F16 1.0, -2.0, a subnormal and inf; BF16 1.0 and -0.5; F64 1/3 and -2.
  write_bytes(dir / "f16.safetensors", handmade("F16", "[4]", std::string("\x00\x3c\x00\xc0\x01\x00\x00\x7c", 8)));
  write_bytes(dir / "bf16.safetensors", handmade("BF16", "[2]", std::string("\x80\x3f\x00\xbf", 4)));
  std::string f64(16, '\0');
  const double d[2] = {1.0 / 3.0, -2.0};
  std::memcpy(f64.data(), d, 16);
  write_bytes(dir / "f64.safetensors", handmade("F64", "[2,1]", f64));
}

void config_seeds(const fs::path& dir, const fs::path& configs) {
  std::vector<std::pair<std::string, std::string>> texts;
  for (const auto& e : fs::directory_iterator(configs)) {
    if (e.path().extension() != ".yaml") continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    texts.emplace_back(e.path().stem().string(), ss.str());
  }
  texts.emplace_back("defaults", vkvit::train::RunConfig().to_yaml());
  texts.emplace_back("preset_only", "model:\n  preset: vit_fmnist_tiny\ndata:\n  mean: [0.5]\n  std: [0.5]\n");
  texts.emplace_back("flow_style", "{model: {preset: vit_cifar_small, mlp_ratio: 2}, train: {lr: 1.0e-3, betas: [0.9, 0.95]}}\n");
  texts.emplace_back("empty_sections", "model:\ndata:\ntrain:\noutput:\n");
  // Overrides follow the YAML after a NUL byte, NUL-separated (see fuzz_config.cpp).
  const std::vector<std::string> overrides = {
      nul_join({"train.lr=1e-3", "train.min_lr=0"}),
      nul_join({"model.in_chans=1", "data.mean=[0.5]", "data.std=[0.5]"}),
      nul_join({"model.preset=vit_fmnist_small", "model.depth=3"}),
      "data.interpolation=lanczos",
      "data.scale=[0.5, 1.0]",
      "output.dir=/tmp/runs",
      "model.mlp_ratio=2.5",
  };
  int i = 0;
  for (const auto& [name, text] : texts) {
    write_bytes(dir / (name + ".yaml"), text);
    const std::string& ov = overrides[size_t(i++) % overrides.size()];
    write_bytes(dir / (name + "+override.yaml"), text + std::string(1, '\0') + ov);
  }
}

// An APP1 Exif segment holding only Orientation = 6 (rotate 90 degrees clockwise to display).
std::string exif_orientation6() {
  const std::string tiff = std::string("II*\0\x08\0\0\0", 8) +          // little-endian, IFD at 8
                           std::string("\x01\0", 2) +                      // one entry
                           std::string("\x12\x01\x03\0\x01\0\0\0\x06\0\0\0", 12) +  // 0x0112 SHORT 1 = 6
                           std::string(4, '\0');                           // no next IFD
  const std::string body = std::string("Exif\0\0", 6) + tiff;
  const size_t len = body.size() + 2;
  return std::string("\xFF\xE1", 2) + char(len >> 8) + char(len & 0xFF) + body;
}

void image_seeds(const fs::path& dir) {
  cv::Mat rgb(7, 13, CV_8UC3), gray(5, 3, CV_8UC1), gray16(4, 9, CV_16UC1), rgba(6, 5, CV_8UC4), one(1, 1, CV_8UC3);
  cv::randu(rgb, 0, 256);
  cv::randu(gray, 0, 256);
  cv::randu(gray16, 0, 65536);
  cv::randu(rgba, 0, 256);
  one.setTo(cv::Scalar(10, 200, 30));
  cv::Mat wide(2, 40, CV_8UC3);
  cv::randu(wide, 0, 256);

  auto enc = [&](const std::string& name, const cv::Mat& m, const std::string& ext, std::vector<int> params = {}) {
    std::vector<uint8_t> buf;
    if (!cv::imencode(ext, m, buf, params)) {
      std::fprintf(stderr, "vkvit_fuzz_seeds: OpenCV here cannot write %s; that seed is skipped\n", ext.c_str());
      return std::string();
    }
    write_bytes(dir / name, as_string(buf));
    return as_string(buf);
  };
  enc("rgb.png", rgb, ".png");
  enc("gray.png", gray, ".png");
  enc("gray16.png", gray16, ".png");
  enc("rgba.png", rgba, ".png");
  enc("one.png", one, ".png");
  enc("wide.png", wide, ".png");
  const std::string jpg = enc("rgb.jpg", rgb, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 80});
  enc("gray.jpg", gray, ".jpg");
  enc("progressive.jpg", rgb, ".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1});
  enc("restart.jpg", wide, ".jpg", {cv::IMWRITE_JPEG_RST_INTERVAL, 1});
  if (jpg.size() > 2) write_bytes(dir / "exif6.jpg", jpg.substr(0, 2) + exif_orientation6() + jpg.substr(2));
  enc("rgb.bmp", rgb, ".bmp");
  enc("gray.bmp", gray, ".bmp");
  enc("rgb.tiff", rgb, ".tiff");
  enc("gray16.tiff", gray16, ".tiff");
  enc("rgb.ppm", rgb, ".ppm");
  enc("gray.pgm", gray, ".pgm");
  enc("ascii.pgm", gray, ".pgm", {cv::IMWRITE_PXM_BINARY, 0});
  enc("rgb.webp", rgb, ".webp", {cv::IMWRITE_WEBP_QUALITY, 80});
  enc("lossless.webp", rgba, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101});
  // Two pages: decode reads the first.
  const std::vector<cv::Mat> pages = {rgb, rgb * 0.5};
  if (!cv::imwritemulti((dir / "pages.tiff").string(), pages))
    std::fprintf(stderr, "vkvit_fuzz_seeds: OpenCV here cannot write multi-page TIFF; that seed is skipped\n");
  // A 1x1 two-colour GIF89a (OpenCV writes no GIF; decode rejects GIF with a message).
  static const char gif[] =
      "GIF89a\x01\0\x01\0\x80\0\0"  // screen 1x1, global colour table of 2
      "\0\0\0\xff\xff\xff"            // black, white
      "\x2c\0\0\0\0\x01\0\x01\0\0"  // image descriptor at 0,0 size 1x1
      "\x02\x02\x44\x01\0"             // LZW code size 2, one 2-byte block, end
      "\x3b";                              // trailer
  write_bytes(dir / "one.gif", std::string(gif, sizeof gif - 1));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <out-dir> <configs-dir>\n", argv[0]);
    return 2;
  }
  try {
    const fs::path out = argv[1];
    for (const char* sub : {"safetensors", "config", "decode"}) fs::create_directories(out / sub);
    safetensors_seeds(out / "safetensors");
    config_seeds(out / "config", argv[2]);
    image_seeds(out / "decode");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vkvit_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
