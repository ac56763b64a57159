#pragma once
// The admin API's request bodies, parsed strictly and without sockets: a revocation
// ({"jti","exp"} or {"sub","issued_before"}, each with an optional "iss") and a ban
// ({"ip","duration"} with an optional "reason"). Unknown or duplicate members, wrong types,
// out-of-range values and bodies over kMaxBodyBytes are refused with a message for the 400
// answer; the message never echoes the body.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "portcullis/core/ip.hpp"

namespace portcullis::admin {

inline constexpr std::size_t kMaxBodyBytes = 4096;

struct TokenRevocation {
  std::string issuer;  // empty = tokens of every issuer with this jti
  std::string jti;
  std::int64_t exp = 0;  // unix seconds: the entry is kept until then
};

struct SubjectRevocation {
  std::string issuer;  // empty = every issuer
  std::string subject;
  std::int64_t issued_before = 0;  // unix seconds: tokens issued earlier are refused
};

using RevocationRequest = std::variant<TokenRevocation, SubjectRevocation>;

struct BanRequest {
  core::IpAddress ip;
  std::chrono::seconds duration{0};
  std::string reason = "manual";
};

// A refusal: the text for the 400 answer's "message".
struct BodyError {
  std::string message;
};

// `now` (unix seconds) bounds issued_before: a cut-off at most a day ahead is accepted.
std::variant<RevocationRequest, BodyError> parse_revocation(std::string_view body,
                                                            std::int64_t now);
std::variant<BanRequest, BodyError> parse_ban(std::string_view body);

// The IP of a `DELETE /bans/<ip>` path, or nullopt.
std::optional<core::IpAddress> ban_path_ip(std::string_view path);

}  // namespace portcullis::admin
