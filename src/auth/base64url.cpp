#include "base64url.hpp"

#include <array>
#include <cstdint>

namespace portcullis::auth::detail {
namespace {

constexpr std::uint8_t kInvalid = 0xff;

constexpr std::array<std::uint8_t, 256> make_table() {
  std::array<std::uint8_t, 256> table{};
  for (auto& entry : table)
    entry = kInvalid;
  constexpr std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (std::size_t i = 0; i < alphabet.size(); ++i)
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<std::uint8_t>(i);
  return table;
}

constexpr auto kTable = make_table();

}  // namespace

bool base64url_decode(std::string_view in, std::string& out) {
  out.clear();
  const std::size_t tail = in.size() % 4;
  if (tail == 1) return false;
  out.reserve(in.size() / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    const std::uint8_t v = kTable[static_cast<unsigned char>(c)];
    if (v == kInvalid) return false;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Left-over bits (2 or 4) must be zero: otherwise two encodings would decode alike.
  return bits == 0 || (acc & ((1u << bits) - 1)) == 0;
}

}  // namespace portcullis::auth::detail
