#pragma once
// JWS signature algorithms (RFC 7518, RFC 8037) that a provider may allow.
//
// `none` is deliberately not representable: a token whose `alg` is "none" (in any casing) or
// anything not listed here is refused before any key is looked at.

#include <cstdint>
#include <optional>
#include <string_view>

namespace portcullis::auth {

enum class Algorithm : std::uint8_t {
  rs256,  // RSASSA-PKCS1-v1_5 with SHA-256 / 384 / 512
  rs384,
  rs512,
  ps256,  // RSASSA-PSS, MGF1 with the same hash, salt length = hash length
  ps384,
  ps512,
  es256,  // ECDSA on P-256 / P-384 / P-521, signature is JOSE raw R || S
  es384,
  es512,
  eddsa,  // Ed25519 (RFC 8037); Ed448 is not supported
  hs256,  // HMAC with SHA-256 / 384 / 512; shared secret of at least the hash length
  hs384,
  hs512,
};

// The JOSE name exactly as it appears in a token header ("RS256", "EdDSA", ...). Matching is
// case-sensitive, as RFC 7515 requires: "rs256" or "None" are not algorithms.
std::optional<Algorithm> parse_algorithm(std::string_view name);

// The JOSE name of `algorithm`.
std::string_view to_string(Algorithm algorithm);

// True for the HMAC family. A provider's algorithms are all symmetric or all asymmetric.
bool is_symmetric(Algorithm algorithm);

}  // namespace portcullis::auth
