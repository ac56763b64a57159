#pragma once
// JWT verification for one provider (policy `jwt_providers.<name>`): compact JWS only, checked in
// this order, the first failure deciding the reason:
//
//   1. size       token longer than max_token_bytes                            jwt_too_large
//   2. shape      exactly three dot-separated parts, each strict base64url     jwt_malformed
//                 (RFC 4648 section 5: no padding, no whitespace, no '+' or '/',
//                 unused bits zero); the header a JSON object, valid UTF-8,
//                 nesting at most max_json_depth, no duplicate member names
//   3. alg        a string naming an algorithm in `algorithms`; "none" in      jwt_alg_not_allowed
//                 any casing, and any unknown name, never passes
//   4. crit       lists any name at all (no extension is implemented)          jwt_crit_unsupported
//                 empty, or not an array of strings                            jwt_malformed
//   5. key        see "Key selection" below                                    jwt_unknown_kid,
//                                                                              jwt_alg_not_allowed
//   6. signature  over the exact received "header.payload" bytes, before the   jwt_bad_signature
//                 payload is parsed
//   7. payload    a JSON object under the header's rules; registered claims    jwt_malformed
//                 of the wrong type (exp/nbf/iat not numbers; iss, sub, jti
//                 not strings; aud not a string or array of strings; scope
//                 not a string; scp not a string or array of strings)
//   8. time       exp missing while require_exp                                jwt_missing_claim
//                 exp: now >= exp + clock_skew                                 jwt_expired
//                 nbf: now + clock_skew < nbf                                  jwt_not_yet_valid
//                 iat: iat > now + clock_skew                                  jwt_issued_in_future
//   9. iss        missing                                                      jwt_missing_claim
//                 not exactly `issuer`                                         jwt_wrong_issuer
//  10. aud        missing                                                      jwt_missing_claim
//                 (string or array) sharing no value with `audiences`          jwt_wrong_audience
//  11. required   a claim of `required_claims` absent or null                  jwt_missing_claim
//
// Key selection. Header members that point at keys - jwk, jku, x5u, x5c, x5t - are never read:
// the only keys are the configured KeySet, and no verification ever fetches anything.
//   - Token with a `kid`: only keys with exactly that kid are candidates. None at all is
//     jwt_unknown_kid (the JWKS owner may refetch, rate-limited); candidates that exist but
//     cannot verify this alg (wrong key type, wrong curve, the JWK's own alg differs, secret too
//     short) make jwt_alg_not_allowed.
//   - Token without a `kid`: every key of the set that can verify the alg is tried, in set order,
//     at most kMaxKeylessCandidates of them; none usable is jwt_unknown_kid.
// A signature passes if any candidate verifies it.
//
// Only after the signature holds are claims trusted: VerifyResult::subject is filled only for a
// rejection after step 6, never from an unverified token.
//
// Dates are NumericDates: integers or fractions (dropped), absurd values saturate. Revocation is
// not checked here: the denylist (issuer + jti, subject cut-off by iat) comes after verification.
//
// A Verifier is immutable and thread-safe.

#include <boost/json/object.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "portcullis/auth/algorithm.hpp"
#include "portcullis/auth/jwks.hpp"
#include "portcullis/auth/principal.hpp"
#include "portcullis/auth/token_hash.hpp"
#include "portcullis/core/reason.hpp"

namespace portcullis::auth {

struct ProviderSettings {
  std::string name;                          // the policy's provider name, for logs
  std::string issuer;                        // `iss` must equal this exactly
  std::vector<std::string> audiences;        // `aud` must contain at least one of these
  std::vector<Algorithm> algorithms;         // all symmetric (HS*) or all asymmetric, never both
  std::chrono::seconds clock_skew{30};       // tolerance applied to exp, nbf and iat
  std::vector<std::string> required_claims;  // must be present and not null
  bool require_exp = true;                   // a token without `exp` never expires otherwise
  std::size_t max_token_bytes = 8 * 1024;
  std::size_t max_json_depth = 10;  // nesting of header and payload JSON
};

// Limits on what ProviderSettings may say; check() enforces them.
inline constexpr std::chrono::seconds kMaxClockSkew{300};
inline constexpr std::size_t kMinTokenBytes = 64;
inline constexpr std::size_t kMaxTokenBytes = 64 * 1024;
inline constexpr std::size_t kMaxJsonDepth = 64;
// Without a kid, no more than this many keys are tried for one token (bounds the work an
// attacker can cause with one request).
inline constexpr std::size_t kMaxKeylessCandidates = 4;

struct VerifyResult {
  core::Reason reason = core::Reason::none;
  std::shared_ptr<const Principal> principal;  // set exactly when reason == none
  std::string subject;     // `sub` once the signature held (accepted, or refused after step
                           // 6); empty for a token whose signature did not hold
  std::string token_hash;  // token_hash_prefix() of the token, always set

  bool ok() const { return reason == core::Reason::none; }
};

class Verifier {
 public:
  // Every problem with `settings`, one message each; empty when they are usable: name, issuer,
  // audiences and algorithms non-empty; algorithms not mixing HS* with others; clock_skew within
  // 0..kMaxClockSkew; max_token_bytes within kMinTokenBytes..kMaxTokenBytes; max_json_depth
  // within 2..kMaxJsonDepth; no empty required claim name.
  static std::vector<std::string> check(const ProviderSettings& settings);

  // Throws std::invalid_argument (all messages of check(), joined) when the settings are unusable.
  explicit Verifier(ProviderSettings settings);

  const ProviderSettings& settings() const { return settings_; }

  // A digest of the settings that decide acceptance (issuer, audiences, algorithms, skew, required
  // claims, require_exp). The cache keeps a verification only for the same settings and keys.
  const Sha256Digest& fingerprint() const { return fingerprint_; }

  // Verifies `token` (the bare compact JWS, no scheme) against `keys` at time `now`.
  VerifyResult verify(std::string_view token, std::chrono::system_clock::time_point now,
                      const KeySet& keys) const;

  // The same, with the token's SHA-256 already computed (the cache path computes it anyway).
  VerifyResult verify(std::string_view token, const TokenDigest& digest,
                      std::chrono::system_clock::time_point now, const KeySet& keys) const;

 private:
  ProviderSettings settings_;
  Sha256Digest fingerprint_{};
};

// The fields of the security-log line for a rejection: {"event":"jwt_rejected","provider":...,
// "reason":...,"token":<hash prefix>} plus "sub" when known. Never contains the token. The log
// module adds time, request id and client address.
boost::json::object rejection_log_fields(std::string_view provider, const VerifyResult& result);

}  // namespace portcullis::auth
