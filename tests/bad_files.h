// Builders for the broken and unusual image files of README "How it works" (bad inputs), made byte by byte at
// run time (never committed): PNG chunks with their CRCs, a deflate bomb that really inflates to
// 20000x20000 pixels, a CMYK JPEG (libjpeg can read one but OpenCV cannot write one), and an
// animated GIF. Header-only so that both bad-input test files share it without a CMake change.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

namespace vkvit::test::bad {

using Bytes = std::vector<uint8_t>;

inline void write_bytes(const std::filesystem::path& path, const Bytes& bytes) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// cv::imencode, or an empty vector when this OpenCV cannot write `ext` (callers REQUIRE non-empty).
inline Bytes encode(const std::string& ext, const cv::Mat& m, const std::vector<int>& params = {}) {
  Bytes out;
  if (!cv::imencode(ext, m, out, params)) out.clear();
  return out;
}

inline void put_be32(Bytes& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}
inline void put_be16(Bytes& v, uint32_t x) {
  v.push_back(uint8_t(x >> 8));
  v.push_back(uint8_t(x));
}

// ------------------------------------------------------------------------------------------ PNG

// CRC-32 of PNG chunks (ISO 3309 polynomial, reflected), bit by bit: speed does not matter here.
inline uint32_t crc32(const uint8_t* d, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= d[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
  }
  return ~c;
}

inline uint32_t adler32(const Bytes& raw) {
  uint32_t a = 1, b = 0;
  for (uint8_t c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  return b << 16 | a;
}

struct Chunk {
  std::string type;  // four letters
  Bytes data;
};

inline void append_chunk(Bytes& png, const Chunk& c) {
  put_be32(png, uint32_t(c.data.size()));
  Bytes body(c.type.begin(), c.type.end());
  body.insert(body.end(), c.data.begin(), c.data.end());
  png.insert(png.end(), body.begin(), body.end());
  put_be32(png, crc32(body.data(), body.size()));
}

inline Chunk ihdr(uint32_t w, uint32_t h, uint8_t depth, uint8_t color_type) {
  Bytes d;
  put_be32(d, w);
  put_be32(d, h);
  d.insert(d.end(), {depth, color_type, 0, 0, 0});
  return {"IHDR", d};
}

// A zlib stream of stored (uncompressed) deflate blocks holding `raw`.
inline Bytes zlib_stored(const Bytes& raw) {
  Bytes z = {0x78, 0x01};
  size_t at = 0;
  do {
    const size_t n = std::min<size_t>(raw.size() - at, 65535);
    const bool last = at + n == raw.size();
    z.insert(z.end(), {uint8_t(last ? 1 : 0), uint8_t(n), uint8_t(n >> 8), uint8_t(~n), uint8_t(~n >> 8)});
    z.insert(z.end(), raw.begin() + long(at), raw.begin() + long(at + n));
    at += n;
  } while (at < raw.size());
  put_be32(z, adler32(raw));
  return z;
}

// Scanlines with filter byte 0 in front of each row.
inline Bytes filtered_rows(const std::vector<Bytes>& rows) {
  Bytes raw;
  for (const Bytes& r : rows) {
    raw.push_back(0);
    raw.insert(raw.end(), r.begin(), r.end());
  }
  return raw;
}

inline Bytes png_file(const std::vector<Chunk>& chunks) {
  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  for (const Chunk& c : chunks) append_chunk(png, c);
  return png;
}

// An 8-bit gray PNG of `rows`, optionally with `extra` chunks before IDAT.
inline Bytes gray_png(const std::vector<Bytes>& rows, const std::vector<Chunk>& extra = {}) {
  std::vector<Chunk> chunks = {ihdr(uint32_t(rows[0].size()), uint32_t(rows.size()), 8, 0)};
  chunks.insert(chunks.end(), extra.begin(), extra.end());
  chunks.push_back({"IDAT", zlib_stored(filtered_rows(rows))});
  chunks.push_back({"IEND", {}});
  return png_file(chunks);
}

// LSB-first bit writer for deflate streams.
struct BitWriter {
  Bytes out;
  uint32_t acc = 0;
  int bits = 0;
  void put(uint32_t value, int n) {  // value's low n bits, LSB first
    for (int i = 0; i < n; ++i) {
      acc |= ((value >> i) & 1u) << bits;
      if (++bits == 8) out.push_back(uint8_t(acc)), acc = 0, bits = 0;
    }
  }
  void put_huffman(uint32_t code, int n) {  // Huffman codes go MSB first
    for (int i = n - 1; i >= 0; --i) put((code >> i) & 1u, 1);
  }
  void flush() {
    if (bits) out.push_back(uint8_t(acc)), acc = 0, bits = 0;
  }
};

// A genuine decompression bomb: a valid 8-bit gray PNG of side x side black pixels whose IDAT is
// one fixed-Huffman deflate block (a literal 0, then copies of 258 bytes at distance 1), about
// 1/160 of a byte per pixel: 20000x20000 is a 2.5 MB file that inflates to 400 MB.
inline Bytes png_bomb(uint32_t side) {
  const uint64_t total = uint64_t(side) * (uint64_t(side) + 1);  // rows with their filter bytes, all 0
  BitWriter w;
  w.put(0x78, 8);
  w.put(0x01, 8);
  w.put(1, 1);      // BFINAL
  w.put(1, 2);      // BTYPE 01: fixed Huffman
  w.put_huffman(0x30, 8);  // literal 0: codes 0-143 are 0x30 + value, 8 bits
  uint64_t left = total - 1;
  while (left >= 258 + 3 || left == 258) {
    w.put_huffman(0xC5, 8);  // length 258: symbol 285, code 11000101, no extra bits
    w.put_huffman(0, 5);     // distance 1: distance code 0, no extra bits
    left -= 258;
  }
  while (left >= 3) {  // the tail in copies of 3 (symbol 257: 7-bit code 0000001)
    w.put_huffman(0x01, 7);
    w.put_huffman(0, 5);
    left -= 3;
  }
  for (; left > 0; --left) w.put_huffman(0x30, 8);
  w.put_huffman(0, 7);  // end of block: symbol 256, code 0000000
  w.flush();
  // Adler-32 of `total` zero bytes: a stays 1, b adds 1 per byte.
  put_be32(w.out, uint32_t(total % 65521) << 16 | 1u);
  return png_file({ihdr(side, side, 8, 0), {"IDAT", w.out}, {"IEND", {}}});
}

// ----------------------------------------------------------------------------------------- JPEG

// A baseline 8x8 four-component JPEG, every block flat: quantization 1 and only DC coefficients,
// so the decoded samples are exactly `samples` (C, M, Y, K as stored). With `adobe` an APP14
// "Adobe" marker (transform 0) says, as Photoshop writes them, that the samples are inverted
// (255 = no ink): libjpeg and PIL read such a file as CMYK.
inline Bytes cmyk_jpeg(const uint8_t samples[4], bool adobe) {
  Bytes j = {0xFF, 0xD8};
  if (adobe) {
    j.insert(j.end(), {0xFF, 0xEE, 0, 14, 'A', 'd', 'o', 'b', 'e', 0, 100, 0, 0, 0, 0, 0});
  }
  j.insert(j.end(), {0xFF, 0xDB, 0, 67, 0x00});  // DQT: table 0, 8-bit, all ones
  j.insert(j.end(), 64, uint8_t(1));
  j.insert(j.end(), {0xFF, 0xC0, 0, 20, 8, 0, 8, 0, 8, 4});  // SOF0: 8 bits, 8x8, 4 components
  for (uint8_t id = 1; id <= 4; ++id) j.insert(j.end(), {id, 0x11, 0});
  // DC table 0: categories 0..11, each a 4-bit code equal to the category (canonical order).
  j.insert(j.end(), {0xFF, 0xC4, 0, 31, 0x00, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  for (uint8_t c = 0; c < 12; ++c) j.push_back(c);
  // AC table 0: end-of-block only, the 1-bit code 0.
  j.insert(j.end(), {0xFF, 0xC4, 0, 20, 0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00});
  j.insert(j.end(), {0xFF, 0xDA, 0, 14, 4});  // SOS: all four components, tables 0/0
  for (uint8_t id = 1; id <= 4; ++id) j.insert(j.end(), {id, 0x00});
  j.insert(j.end(), {0, 63, 0});

  // Entropy-coded data, MSB first; one block per component in the MCU.
  uint32_t acc = 0;
  int bits = 0;
  Bytes scan;
  auto put = [&](uint32_t v, int n) {
    for (int i = n - 1; i >= 0; --i) {
      acc = acc << 1 | ((v >> i) & 1u);
      if (++bits == 8) {
        scan.push_back(uint8_t(acc));
        if (uint8_t(acc) == 0xFF) scan.push_back(0x00);  // byte stuffing
        acc = 0, bits = 0;
      }
    }
  };
  for (int c = 0; c < 4; ++c) {
    // A flat block of value v has DC = 8 * (v - 128) (the FDCT's 1/8 scale on 64 equal samples).
    const int dc = 8 * (int(samples[c]) - 128);
    int cat = 0;
    while ((1 << cat) <= std::abs(dc)) ++cat;
    put(uint32_t(cat), 4);
    if (cat) put(uint32_t(dc >= 0 ? dc : dc + (1 << cat) - 1), cat);
    put(0, 1);  // EOB
  }
  if (bits) put((1u << (8 - bits)) - 1, 8 - bits);  // pad with ones
  j.insert(j.end(), scan.begin(), scan.end());
  j.insert(j.end(), {0xFF, 0xD9});
  return j;
}

// The offset of the first SOF0/SOF2 marker's height field, or 0.
inline size_t jpeg_size_field(const Bytes& j) {
  for (size_t i = 2; i + 8 < j.size(); ++i)
    if (j[i] == 0xFF && (j[i + 1] == 0xC0 || j[i + 1] == 0xC2)) return i + 5;
  return 0;
}

// An APP1 Exif segment holding one IFD entry, Orientation = `orientation`, inserted after SOI.
inline Bytes with_exif_orientation(Bytes jpg, uint8_t orientation) {
  const Bytes app1 = {0xFF, 0xE1, 0, 34, 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8,
                      0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, orientation, 0, 0, 0, 0, 0, 0};
  jpg.insert(jpg.begin() + 2, app1.begin(), app1.end());
  return jpg;
}

// ------------------------------------------------------------------------------------------ GIF

// A 1x1 GIF89a with two frames (black, then white) that loops forever: an animated GIF.
inline Bytes animated_gif() {
  Bytes g = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0, 0,  // screen 1x1, 2-colour global table
             0, 0, 0, 255, 255, 255,                                  // black, white
             0x21, 0xFF, 11, 'N', 'E', 'T', 'S', 'C', 'A', 'P', 'E', '2', '.', '0', 3, 1, 0, 0, 0};
  for (uint8_t index : {0, 1}) {
    g.insert(g.end(), {0x21, 0xF9, 4, 0, 10, 0, 0, 0});             // graphic control: 0.1 s delay
    g.insert(g.end(), {0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0});           // image descriptor 1x1
    // LZW, minimum code size 2, 3-bit codes LSB first: clear (4), the index, end (5).
    g.insert(g.end(), {2, 2, uint8_t(4 | index << 3 | 5 << 6), 1, 0});
  }
  g.push_back(0x3B);
  return g;
}

}  // namespace vkvit::test::bad
