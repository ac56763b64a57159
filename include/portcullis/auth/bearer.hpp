#pragma once
// RFC 6750 bearer tokens at the HTTP boundary: finding the token in a request, and the
// WWW-Authenticate value that goes with a 401 or 403.
//
// Both extraction functions take every value of the relevant header in arrival order (the HTTP
// layer keeps repeated headers), return views into those values, and never copy the token.

#include <span>
#include <string>
#include <string_view>

#include "portcullis/core/reason.hpp"

namespace portcullis::auth {

struct ExtractedToken {
  core::Reason reason = core::Reason::jwt_missing;  // none, jwt_missing or jwt_malformed
  std::string_view token;                           // set when reason == none

  bool ok() const { return reason == core::Reason::none; }
};

// From Authorization header values: "<scheme> <token>" with the scheme compared
// case-insensitively, exactly one space, and a token of RFC 6750 b64token characters
// (ALPHA DIGIT - . _ ~ + / followed by optional '=') with nothing after it.
//   no header, or only other schemes (e.g. Basic)          jwt_missing
//   the scheme with no token, extra spaces or parts,
//   bad characters, or the header repeated                 jwt_malformed
// With `check_characters` false the token's characters are left for the caller to check with
// is_b64token() (the JWT gate does so only for a token it has not verified before: one it has
// was made of b64token characters).
ExtractedToken token_from_authorization(std::span<const std::string_view> values,
                                        std::string_view scheme = "Bearer",
                                        bool check_characters = true);

// From Cookie header values: the value of the cookie named exactly `name` (case-sensitive), with
// surrounding double quotes removed. Pairs are separated by ';' and optional spaces.
//   no such cookie, or an empty value                      jwt_missing
//   the cookie more than once (possible shadowing),
//   or a value with characters outside b64token            jwt_malformed
ExtractedToken token_from_cookies(std::span<const std::string_view> values, std::string_view name,
                                  bool check_characters = true);

// RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
bool is_b64token(std::string_view token);

// The WWW-Authenticate value for a refused request:
//   jwt_missing (and any non-jwt reason)          Bearer
//   jwt_insufficient_scope, jwt_claim_mismatch    Bearer error="insufficient_scope"   (403)
//   any other jwt_* reason                        Bearer error="invalid_token"        (401)
// With a non-empty realm, `realm="..."` comes first (quoted-string escaping; control characters
// dropped). The reason itself is never disclosed.
std::string www_authenticate(core::Reason reason, std::string_view realm = {});

// The status that goes with a refusal: 403 for jwt_insufficient_scope and jwt_claim_mismatch,
// 401 for every other jwt_* reason.
int auth_failure_status(core::Reason reason);

}  // namespace portcullis::auth
