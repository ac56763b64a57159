#pragma once
// The authenticated caller: what a verified token says, ready for authorization, rate-limit keys,
// revocation checks and claim forwarding.

#include <boost/json/object.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "portcullis/auth/algorithm.hpp"

namespace portcullis::auth {

struct Principal {
  std::string subject;  // `sub`; empty when the token has none
  std::string issuer;   // `iss` (always equal to the provider's issuer)
  std::string jti;      // `jti`; empty when absent (the denylist keys on issuer + jti)
  std::optional<std::chrono::sys_seconds> expires_at;  // `exp`
  std::optional<std::chrono::sys_seconds> issued_at;   // `iat` (subject cut-offs compare this)
  std::optional<std::chrono::sys_seconds> not_before;  // `nbf`
  // Union of the space-separated `scope` string and the `scp` claim (array of strings, or a
  // space-separated string as some identity providers send it), duplicates removed, sorted.
  std::vector<std::string> scopes;
  boost::json::object claims;              // every payload claim, as signed
  Algorithm algorithm = Algorithm::rs256;  // the algorithm that verified the signature
  std::string kid;                         // the key that verified it (empty if it had none)
  std::string token_hash;                  // token_hash_prefix() of the token, for logs

  bool has_scope(std::string_view scope) const;
};

}  // namespace portcullis::auth
