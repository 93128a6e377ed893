// UTF-8 validity, for text that must be UTF-8 where vkvit writes it: class names go into
// checkpoint metadata (JSON), config strings into the resolved config.yaml.
#pragma once
#include <cstddef>
#include <string_view>

namespace vkvit::data {

// Well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF).
inline bool valid_utf8(std::string_view s) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = byte(i);
    size_t n;                            // continuation bytes
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the first continuation byte
    if (c < 0x80) n = 0;
    else if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c >= 0xE0 && c <= 0xEF) n = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) n = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return false;
    if (s.size() - i <= n) return false;
    for (size_t k = 1; k <= n; ++k)
      if (byte(i + k) < (k == 1 ? lo : 0x80) || byte(i + k) > (k == 1 ? hi : 0xBF)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace vkvit::data
