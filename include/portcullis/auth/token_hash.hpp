#pragma once
// Token digests: the SHA-256 of the whole token text.
//
// The full digest keys the verified-token cache; its first 12 hex digits identify a token in logs,
// so an operator can correlate rejections without the token itself ever being written anywhere.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace portcullis::auth {

using Sha256Digest = std::array<std::uint8_t, 32>;
using TokenDigest = Sha256Digest;

// SHA-256 of the token bytes exactly as received.
TokenDigest token_digest(std::string_view token);

// The first 12 lower-case hex digits of a digest (48 bits: enough to correlate, useless to replay).
std::string token_hash_prefix(const TokenDigest& digest);

// Shorthand for token_hash_prefix(token_digest(token)).
std::string token_hash_prefix(std::string_view token);

// Whether two token texts are equal, in a time that depends on their length only (never on
// where they differ): for comparing a client's token with one another client presented.
bool same_token(std::string_view a, std::string_view b);

}  // namespace portcullis::auth
