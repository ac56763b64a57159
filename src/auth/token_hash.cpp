#include "portcullis/auth/token_hash.hpp"

#include <openssl/evp.h>

#include <stdexcept>

#include "crypto.hpp"

namespace portcullis::auth {

TokenDigest token_digest(std::string_view token) {
  TokenDigest digest{};
  unsigned int size = 0;
  if (EVP_Digest(token.data(), token.size(), digest.data(), &size, detail::sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");
  return digest;
}

std::string token_hash_prefix(const TokenDigest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(12, '0');
  for (std::size_t i = 0; i < 6; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0x0f];
  }
  return out;
}

std::string token_hash_prefix(std::string_view token) {
  return token_hash_prefix(token_digest(token));
}

}  // namespace portcullis::auth
