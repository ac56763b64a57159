#pragma once
// Strict base64url (RFC 4648 section 5, unpadded), as JWS and JWK require.

#include <string>
#include <string_view>

namespace portcullis::auth::detail {

// Decodes `in` into `out` (replacing its content). False for any byte outside [A-Za-z0-9_-]
// (so padding, whitespace, '+' and '/' are all refused), a length of 4k+1, or non-zero unused
// trailing bits (each byte string has exactly one accepted encoding).
bool base64url_decode(std::string_view in, std::string& out);

}  // namespace portcullis::auth::detail
