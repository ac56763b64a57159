#pragma once
// OpenSSL plumbing shared by the auth sources: algorithms fetched once, RAII owners, and the
// signature check itself.

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "portcullis/auth/algorithm.hpp"
#include "portcullis/auth/jwks.hpp"

namespace portcullis::auth::detail {

// Fetched once per process: an implicit fetch on every call costs a lock and a lookup.
const EVP_MD* sha256();
const EVP_MD* sha384();
const EVP_MD* sha512();
// The digest behind an RS/PS/ES/HS algorithm; null for EdDSA (which hashes internally).
const EVP_MD* digest_for(Algorithm algorithm);

struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// Incremental SHA-256 for fingerprints: each field is length-prefixed so that concatenations
// cannot collide.
class Sha256Builder {
 public:
  Sha256Builder();
  void add(std::string_view field);
  void add(const std::uint8_t* data, std::size_t size);
  Sha256Digest finish();

 private:
  MdCtxPtr ctx_;
};

// True when `signature` is a valid `algorithm` signature of `signing_input` under `key`.
// The caller has checked key.can_verify(algorithm). Leaves the OpenSSL error queue empty, so a
// refused token never disturbs TLS error handling on the same thread.
bool verify_signature(Algorithm algorithm, const Key& key, std::string_view signing_input,
                      std::string_view signature);

}  // namespace portcullis::auth::detail
