#pragma once
// Shared security state: the records an operator (or login protection) writes and every instance
// enforces - token revocations, subject cut-offs and IP bans - with their validation, how long
// each must be kept, and the errors a state write can end with.
//
// All times are unix seconds (wall clock), as in a token's exp/iat and the admin API.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <type_traits>

#include "portcullis/core/ip.hpp"

namespace portcullis::state {

// One token denied by its id: `jti` issued by `issuer` (empty = the same jti from any issuer),
// kept until the token itself has expired.
struct Revocation {
  std::string issuer;  // empty = any issuer
  std::string jti;
  std::int64_t exp = 0;  // the token's exp, unix seconds
  friend bool operator==(const Revocation&, const Revocation&) = default;
};

// Every token of `subject` (from `issuer`, empty = any issuer) whose iat is before
// `issued_before` is denied: "log this user out everywhere".
struct SubjectCutoff {
  std::string issuer;  // empty = any issuer
  std::string subject;
  std::int64_t issued_before = 0;  // unix seconds; tokens with iat < issued_before are denied
  friend bool operator==(const SubjectCutoff&, const SubjectCutoff&) = default;
};

// A client address refused on every route until `until`. Stored and matched under the address's
// `client_key()`: an IPv4 address itself, an IPv6 address its /64.
struct Ban {
  core::IpAddress ip;
  std::int64_t until = 0;  // unix seconds; banned while now < until
  std::string reason;
  friend bool operator==(const Ban&, const Ban&) = default;
};

// Bounds on a record's fields, checked before anything is stored.
inline constexpr std::size_t kMaxJtiBytes = 512;
inline constexpr std::size_t kMaxIssuerBytes = 1024;
inline constexpr std::size_t kMaxSubjectBytes = 1024;
inline constexpr std::size_t kMaxReasonBytes = 256;
inline constexpr std::int64_t kMaxUnixSeconds = 253'402'300'799;  // 9999-12-31T23:59:59Z

// A record is valid when its key is non-empty, its strings are within the bounds above and its
// time is in 1..kMaxUnixSeconds (so retention arithmetic cannot overflow).
bool is_valid(const Revocation& revocation);
bool is_valid(const SubjectCutoff& cutoff);
bool is_valid(const Ban& ban);

// How long a record must be kept to still matter: the time after which no token it denies can
// pass verification any more.
//  - a revocation:  exp + after_exp. The verifier accepts a token until exp + clock_skew, so
//    after_exp must be at least the largest clock_skew in the policy (auth::kMaxClockSkew, 300s,
//    by default).
//  - a cut-off:     issued_before + max_token_lifetime + after_exp. A token issued just before
//    the cut-off is valid for at most max_token_lifetime, so keeping the cut-off longer denies
//    nothing more. This is how a cut-off's lifetime is bounded: max_token_lifetime must be at
//    least the longest lifetime (exp - iat) the identity providers issue.
//  - a ban:         until.
struct Retention {
  std::chrono::seconds max_token_lifetime{std::chrono::hours(24)};
  std::chrono::seconds after_exp{300};

  std::int64_t keep_until(const Revocation& revocation) const;
  std::int64_t keep_until(const SubjectCutoff& cutoff) const;
  std::int64_t keep_until(const Ban& ban) const { return ban.until; }
};

// Why a state write was not acknowledged.
enum class StateError {
  capacity_exceeded = 1,  // the table is full; nothing was evicted to make room
  invalid_record,         // empty key, field too long, time out of range
  queue_full,             // too many writes waiting for the disk
  store_failed,           // the durable store could not commit (disk full, I/O error, ...)
  stopped,                // the backend is stopping or stopped
};

const std::error_category& state_category();
std::error_code make_error_code(StateError error);

}  // namespace portcullis::state

template <>
struct std::is_error_code_enum<portcullis::state::StateError> : std::true_type {};
