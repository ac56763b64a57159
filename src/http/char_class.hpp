#pragma once
// Byte classes shared by the http parsers: one table lookup per byte on the hot path instead of
// chains of comparisons.

#include <array>
#include <cstdint>
#include <string_view>

#include "portcullis/core/text.hpp"

namespace portcullis::http::detail {

enum CharClass : std::uint16_t {
  kToken = 1 << 0,       // RFC 9110 tchar
  kNameChar = 1 << 1,    // tchar without '_' (request header names)
  kFieldValue = 1 << 2,  // HTAB, SP, VCHAR, obs-text
  kHex = 1 << 3,
  kUnreserved = 1 << 4,  // RFC 3986 unreserved
  kTarget = 1 << 5,   // origin-form target: unreserved / sub-delims / ":" / "@" / "/" / "?" / "%"
  kPchar = 1 << 6,    // raw path byte: unreserved / sub-delims / ":" / "@" (escapes apart)
  kQdText = 1 << 7,   // quoted-string text: HTAB, SP, VCHAR except '"' and '\\', obs-text
  kControl = 1 << 8,  // C0 controls except HTAB, and DEL
};

inline constexpr std::array<std::uint16_t, 256> kCharClass = [] {
  std::array<std::uint16_t, 256> table{};
  constexpr char kTchar[] = "!#$%&'*+-.^_`|~";
  constexpr char kSubDelims[] = "!$&'()*+,;=";
  for (int c = 0; c < 256; ++c) {
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    std::uint16_t bits = 0;
    bool tchar = alpha || digit;
    for (const char* t = kTchar; *t; ++t)
      tchar = tchar || c == *t;
    bool sub_delim = false;
    for (const char* s = kSubDelims; *s; ++s)
      sub_delim = sub_delim || c == *s;
    const bool unreserved = alpha || digit || c == '-' || c == '.' || c == '_' || c == '~';
    if (tchar) bits |= kToken;
    if (tchar && c != '_') bits |= kNameChar;
    if (c == '\t' || c >= 0x20) bits |= kFieldValue;
    if (c == 0x7f) bits &= static_cast<std::uint16_t>(~kFieldValue);
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) bits |= kHex;
    if (unreserved) bits |= kUnreserved;
    if (unreserved || sub_delim || c == ':' || c == '@') bits |= kPchar;
    if (unreserved || sub_delim || c == ':' || c == '@' || c == '/' || c == '?' || c == '%')
      bits |= kTarget;
    if ((bits & kFieldValue) && c != '"' && c != '\\') bits |= kQdText;
    if ((c < 0x20 && c != '\t') || c == 0x7f) bits |= kControl;
    table[static_cast<std::size_t>(c)] = bits;
  }
  return table;
}();

inline constexpr bool is(char c, std::uint16_t cls) {
  return (kCharClass[static_cast<unsigned char>(c)] & cls) != 0;
}

inline constexpr int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

using core::trim_ows;
inline constexpr char to_lower(char c) {
  return core::ascii_lower(c);
}

}  // namespace portcullis::http::detail
