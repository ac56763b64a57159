#pragma once
// ASCII text helpers shared by every module that reads protocol text (header names, schemes,
// media types, host names): locale-independent case folding and optional-whitespace trimming.

#include <string>
#include <string_view>

namespace portcullis::core {

constexpr char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// ASCII case-insensitive equality.
constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

inline std::string ascii_lowercase(std::string_view text) {
  std::string out(text);
  for (auto& c : out)
    c = ascii_lower(c);
  return out;
}

// Removes leading and trailing SP and HTAB (RFC 9110 OWS).
constexpr std::string_view trim_ows(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

}  // namespace portcullis::core
