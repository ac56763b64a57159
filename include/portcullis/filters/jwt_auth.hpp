#pragma once
// JWT authentication and authorization for a route: find the token where the provider says
// (Authorization scheme or a cookie), verify it through the verified-token cache against the
// provider's current key set, then check the route's scopes and claims. The answer is a
// verdict with the RFC 6750 challenge, the principal, and the headers its forward_claims add.
// Compiled once per policy; safe to share between worker threads.

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "portcullis/auth/authorization.hpp"
#include "portcullis/auth/key_refresh.hpp"
#include "portcullis/auth/token_cache.hpp"
#include "portcullis/auth/verifier.hpp"
#include "portcullis/config/policy.hpp"
#include "portcullis/http/request_parser.hpp"

namespace portcullis::filters {

struct JwtVerdict {
  core::Reason reason = core::Reason::none;  // none = authenticated and authorized
  int status = 0;                            // 401 or 403 when refused
  std::string www_authenticate;              // the challenge to send with a refusal
  std::shared_ptr<const auth::Principal> principal;
  std::string subject;     // of a verified token, for logs (also when authorization failed)
  std::string token_hash;  // short hash of the token for logs; never the token
  bool cache_hit = false;
  bool ok() const { return reason == core::Reason::none; }
};

// The last token a client connection presented and what verifying it gave. A client sends the
// same token on every request of a keep-alive connection; the memo recognises it by comparing
// bytes, without hashing the token or taking a lock of the verified-token cache. Holds the token
// text (at most the provider's max_token_bytes) and is kept for as long as the verification
// would be in the cache: never past the token's exp nor the cache's TTL, and only under the same
// verifier settings and key set. Revocation is a later phase and is checked on every request.
struct TokenMemo {
  std::string token;
  auth::Sha256Digest context{};
  std::chrono::system_clock::time_point expires{};
  std::shared_ptr<const auth::Principal> principal;  // null: nothing remembered

  void clear() {
    principal.reset();
    std::string().swap(token);
  }
};

class JwtProviderGate {
 public:
  // Throws std::invalid_argument when the provider's settings are unusable.
  JwtProviderGate(const config::JwtProvider& provider, std::shared_ptr<auth::KeySetHolder> keys);

  const config::JwtProvider& provider() const { return provider_; }
  const auth::KeySetHolder& keys() const { return *keys_; }

  // Finds and verifies the token of `head`, through `memo` (when given), the thread's table of
  // recently verified tokens (the same rules as the memo, tokens up to 2 KiB) and the cache.
  JwtVerdict authenticate(const http::RequestHead& head, auth::VerifiedTokenCache& cache,
                          std::chrono::system_clock::time_point now,
                          TokenMemo* memo = nullptr) const;

  // The upstream headers the provider's forward_claims take from `principal`. A claim that is
  // absent, or whose text would not be a safe header value, adds nothing.
  void claim_headers(const auth::Principal& principal,
                     std::vector<std::pair<std::string, std::string>>& out) const;

 private:
  const auth::Sha256Digest& cache_context_for(
      const std::shared_ptr<const auth::KeySet>& keys) const;

  const config::JwtProvider& provider_;
  auth::Verifier verifier_;
  std::shared_ptr<auth::KeySetHolder> keys_;
};

// A route's `auth: { jwt, scopes, claims }`, compiled.
class RouteAuthRule {
 public:
  RouteAuthRule(const JwtProviderGate& gate, const config::RouteAuth& auth);

  const JwtProviderGate& gate() const { return gate_; }
  // The route's scopes and claims against an authenticated principal (none = allowed).
  core::Reason authorize(const auth::Principal& principal) const;

 private:
  const JwtProviderGate& gate_;
  std::vector<std::string> scopes_;
  std::vector<auth::ClaimRequirement> claims_;
};

}  // namespace portcullis::filters
