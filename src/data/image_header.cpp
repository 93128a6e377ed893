// probe_image: the size (and possible alpha) of an image read from its own header, plus a walk of
// the file's structure where that is cheap, so that oversized and truncated files are refused
// before OpenCV allocates or decodes anything.
//
// JPEG: the marker segments are walked by their lengths (which skips an EXIF thumbnail and its own
// end marker) and each scan's entropy-coded data is crossed to the next marker; a file must reach
// the end-of-image marker FFD9. libjpeg instead warns and fills the missing rows with grey.
// PNG: chunks are walked by length up to IEND, each checked against its CRC. WebP: the RIFF size
// must fit the file.
#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>

#include "base/error.h"
#include "data/decode.h"

namespace vkvit::data {
namespace {

struct Bytes {
  const uint8_t* d;
  size_t n;
  uint32_t be16(size_t i) const { return uint32_t(d[i]) << 8 | d[i + 1]; }
  uint32_t le16(size_t i) const { return uint32_t(d[i + 1]) << 8 | d[i]; }
  uint32_t be32(size_t i) const { return be16(i) << 16 | be16(i + 2); }
  uint32_t le32(size_t i) const { return le16(i + 2) << 16 | le16(i); }
  bool starts(const char* magic, size_t at = 0) const {
    const size_t m = std::strlen(magic);
    return n >= at + m && std::memcmp(d + at, magic, m) == 0;
  }
};

[[noreturn]] void fail(const std::string& path, const std::string& why) { throw Error(path + ": " + why); }

// CRC-32 as PNG chunks use it (ISO 3309, reflected polynomial 0xEDB88320), one table lookup per byte.
uint32_t crc32(const uint8_t* d, size_t n) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ d[i]) & 0xFF] ^ (c >> 8);
  return ~c;
}

ImageHeader probe_jpeg(const Bytes& b, const std::string& path) {
  ImageHeader h;
  h.format = "JPEG";
  const char* truncated = "JPEG is truncated (no end-of-image marker FFD9); the file was cut short, re-copy it";
  bool have_sof = false;
  size_t pos = 2;
  for (;;) {
    // Fill bytes (FF FF ...) may precede a marker; anything else between segments is junk that
    // libjpeg skips with a warning, so skip it too.
    while (pos < b.n && b.d[pos] != 0xFF) ++pos;
    while (pos < b.n && b.d[pos] == 0xFF) ++pos;
    if (pos >= b.n) fail(path, truncated);
    const uint8_t m = b.d[pos++];
    if (m == 0x00) continue;                                // FF 00: junk outside a scan, as libjpeg skips it
    if (m == 0xD9) break;                                   // EOI
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;     // TEM, RSTn, SOI: no length
    if (pos + 2 > b.n) fail(path, truncated);
    const uint32_t len = b.be16(pos);
    if (len < 2) fail(path, "corrupt JPEG (a marker segment of length " + std::to_string(len) + ")");
    if (pos + len > b.n) fail(path, truncated);
    const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof && !have_sof) {
      if (len < 8) fail(path, "corrupt JPEG (short frame header)");
      h.height = b.be16(pos + 3);
      h.width = b.be16(pos + 5);
      have_sof = true;
    }
    pos += len;
    if (m == 0xDA) {  // start of scan: entropy-coded data runs to the next marker that is not FF00 / RSTn
      if (!have_sof) fail(path, "corrupt JPEG (scan before frame header)");
      for (;;) {
        const void* ff = pos < b.n ? std::memchr(b.d + pos, 0xFF, b.n - pos) : nullptr;
        if (!ff) fail(path, truncated);
        pos = size_t(static_cast<const uint8_t*>(ff) - b.d);
        if (pos + 1 >= b.n) fail(path, truncated);
        const uint8_t next = b.d[pos + 1];
        if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) pos += 2;
        else if (next == 0xFF) pos += 1;
        else break;
      }
    }
  }
  if (!have_sof) fail(path, "corrupt JPEG (no frame header before the end marker)");
  if (h.width == 0 || h.height == 0)
    fail(path, "JPEG without its size in the frame header (DNL marker); re-encode it");
  return h;
}

ImageHeader probe_png(const Bytes& b, const std::string& path) {
  ImageHeader h;
  h.format = "PNG";
  const char* truncated = "PNG is truncated (chunks run past the end of the file, or no IEND); the file was cut short, re-copy it";
  if (b.n < 33 || !b.starts("IHDR", 12) || b.be32(8) != 13) fail(path, "corrupt PNG (no IHDR header)");
  h.width = b.be32(16);
  h.height = b.be32(20);
  const uint8_t color_type = b.d[25];
  h.alpha = color_type == 4 || color_type == 6;
  size_t pos = 8;
  for (;;) {
    if (pos + 12 > b.n) fail(path, truncated);
    const uint64_t len = b.be32(pos);
    if (pos + 12 + len > b.n) fail(path, truncated);
    // A damaged chunk is refused here: libpng would refuse it too, but only after printing its
    // own "libpng error" line, and it does not check every chunk (ancillary ones, say).
    const uint32_t stored = b.be32(size_t(pos + 8 + len));
    if (crc32(b.d + pos + 4, size_t(len) + 4) != stored) {
      std::string type;
      for (size_t i = pos + 4; i < pos + 8; ++i) type += std::isalpha(b.d[i]) ? char(b.d[i]) : '?';
      fail(path, "corrupt PNG (CRC mismatch in chunk " + type + " at byte " + std::to_string(pos) +
                     "); the file is damaged, re-copy it");
    }
    if (b.starts("tRNS", pos + 4)) h.alpha = true;
    if (b.starts("IEND", pos + 4)) break;
    pos += 12 + len;
  }
  return h;
}

ImageHeader probe_webp(const Bytes& b, const std::string& path) {
  ImageHeader h;
  h.format = "WebP";
  if (b.n < 30) fail(path, "corrupt WebP (header too short)");
  if (uint64_t(b.le32(4)) + 8 > b.n) fail(path, "WebP is truncated (RIFF size past the end of the file); re-copy it");
  if (b.starts("VP8 ", 12)) {
    if (b.d[23] != 0x9D || b.d[24] != 0x01 || b.d[25] != 0x2A) fail(path, "corrupt WebP (bad VP8 start code)");
    h.width = b.le16(26) & 0x3FFF;
    h.height = b.le16(28) & 0x3FFF;
  } else if (b.starts("VP8L", 12)) {
    if (b.d[20] != 0x2F) fail(path, "corrupt WebP (bad VP8L signature)");
    const uint32_t bits = b.le32(21);
    h.width = (bits & 0x3FFF) + 1;
    h.height = ((bits >> 14) & 0x3FFF) + 1;
    h.alpha = (bits >> 28) & 1;
  } else if (b.starts("VP8X", 12)) {
    h.alpha = b.d[20] & 0x10;
    h.width = (uint32_t(b.d[24]) | uint32_t(b.d[25]) << 8 | uint32_t(b.d[26]) << 16) + 1;
    h.height = (uint32_t(b.d[27]) | uint32_t(b.d[28]) << 8 | uint32_t(b.d[29]) << 16) + 1;
  } else {
    fail(path, "corrupt WebP (unknown first chunk)");
  }
  return h;
}

ImageHeader probe_bmp(const Bytes& b, const std::string& path) {
  ImageHeader h;
  h.format = "BMP";
  if (b.n < 26) fail(path, "corrupt BMP (header too short)");
  const uint32_t dib = b.le32(14);
  if (dib == 12) {
    h.width = b.le16(18);
    h.height = b.le16(20);
  } else {
    if (dib < 16 || b.n < 26) fail(path, "corrupt BMP (unknown info header)");
    const int32_t w = int32_t(b.le32(18)), hh = int32_t(b.le32(22));  // negative height: top-down rows
    h.width = uint64_t(w < 0 ? -int64_t(w) : w);
    h.height = uint64_t(hh < 0 ? -int64_t(hh) : hh);
  }
  return h;
}

ImageHeader probe_tiff(const Bytes& b, const std::string& path) {
  ImageHeader h;
  h.format = "TIFF";
  const bool le = b.d[0] == 'I';
  auto u16 = [&](size_t i) { return le ? b.le16(i) : b.be16(i); };
  auto u32 = [&](size_t i) { return le ? b.le32(i) : b.be32(i); };
  if (u16(2) == 43) fail(path, "BigTIFF is not supported; save it as a classic TIFF or PNG");
  const uint64_t ifd = u32(4);
  if (ifd + 2 > b.n) fail(path, "TIFF is truncated (first directory past the end of the file)");
  const uint32_t entries = u16(size_t(ifd));
  if (ifd + 2 + uint64_t(entries) * 12 > b.n) fail(path, "TIFF is truncated (directory past the end of the file)");
  bool seen[2] = {false, false};
  for (uint32_t e = 0; e < entries; ++e) {
    const size_t at = size_t(ifd + 2 + uint64_t(e) * 12);
    const uint32_t tag = u16(at), type = u16(at + 2);
    if (tag != 256 && tag != 257) continue;
    // libtiff keeps the first of repeated tags: a later ImageWidth must not hide the size it decodes.
    if (seen[tag - 256]) continue;
    seen[tag - 256] = true;
    const uint64_t v = type == 3 ? u16(at + 8) : type == 4 ? u32(at + 8) : 0;  // SHORT or LONG
    (tag == 256 ? h.width : h.height) = v;
  }
  return h;
}

ImageHeader probe_pnm(const Bytes& b, const std::string& path) {
  ImageHeader h;
  h.format = "PNM";
  size_t pos = 2;
  uint64_t v[2] = {0, 0};
  for (uint64_t& x : v) {
    // Read as OpenCV's PxM decoder reads (it decodes what passes here, so the sizes must agree):
    // whitespace and # comments ending at \n or \r, digits, then one byte consumed whatever it is,
    // so "3#" ends the number and does not open a comment.
    for (;;) {
      while (pos < b.n && std::isspace(b.d[pos])) ++pos;
      if (pos < b.n && b.d[pos] == '#') {
        while (pos < b.n && b.d[pos] != '\n' && b.d[pos] != '\r') ++pos;
        continue;
      }
      break;
    }
    if (pos >= b.n || !std::isdigit(b.d[pos])) fail(path, "corrupt PNM (no size in the header)");
    // Saturate below 2^32 so that width * height cannot overflow (2^32 * 2^32 wraps to 0).
    while (pos < b.n && std::isdigit(b.d[pos])) x = std::min<uint64_t>(x * 10 + (b.d[pos++] - '0'), 0xFFFFFFFFull);
    ++pos;
  }
  h.width = v[0];
  h.height = v[1];
  return h;
}

}  // namespace

ImageHeader probe_image(const std::vector<uint8_t>& bytes, const std::string& path) {
  const Bytes b{bytes.data(), bytes.size()};
  if (b.n == 0) fail(path, "empty file (0 bytes); delete it or re-copy it");
  ImageHeader h;
  if (b.n >= 3 && b.d[0] == 0xFF && b.d[1] == 0xD8 && b.d[2] == 0xFF) h = probe_jpeg(b, path);
  else if (b.starts("\x89PNG\r\n\x1a\n")) h = probe_png(b, path);
  else if (b.starts("RIFF") && b.starts("WEBP", 8)) h = probe_webp(b, path);
  else if (b.starts("BM")) h = probe_bmp(b, path);
  else if (b.n >= 8 && ((b.d[0] == 'I' && b.d[1] == 'I' && (b.le16(2) == 42 || b.le16(2) == 43)) ||
                         (b.d[0] == 'M' && b.d[1] == 'M' && (b.be16(2) == 42 || b.be16(2) == 43))))
    h = probe_tiff(b, path);
  else if (b.n >= 3 && b.d[0] == 'P' && b.d[1] >= '1' && b.d[1] <= '6' && std::isspace(b.d[2])) h = probe_pnm(b, path);
  else if (b.starts("GIF87a") || b.starts("GIF89a"))
    fail(path, "GIF is not supported (OpenCV 4.6 has no GIF reader); convert it to PNG");
  else
    fail(path, "not a supported image (content is not JPEG, PNG, WebP, BMP, TIFF or PNM, whatever the extension says)");
  if (h.width == 0 || h.height == 0)
    fail(path, "corrupt " + h.format + " (header gives a size of " + std::to_string(h.width) + "x" +
                   std::to_string(h.height) + ")");
  return h;
}

}  // namespace vkvit::data
