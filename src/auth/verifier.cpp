#include "portcullis/auth/verifier.hpp"
#include "portcullis/core/text.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <span>
#include <stdexcept>

#include "base64url.hpp"
#include "crypto.hpp"
#include "portcullis/auth/strict_json.hpp"

namespace portcullis::auth {
namespace json = boost::json;
using core::Reason;

namespace {

std::string_view view(const json::string& s) {
  return {s.data(), s.size()};
}

std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  if (b > 0 && a > std::numeric_limits<std::int64_t>::max() - b)
    return std::numeric_limits<std::int64_t>::max();
  if (b < 0 && a < std::numeric_limits<std::int64_t>::min() - b)
    return std::numeric_limits<std::int64_t>::min();
  return a + b;
}

// A NumericDate (RFC 7519 2): seconds since the epoch, integer or not; fractions are dropped and
// absurd values saturate. False when the claim is not a number.
bool numeric_date(const json::value& value, std::int64_t& out) {
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
  if (value.is_int64()) {
    out = value.get_int64();
  } else if (value.is_uint64()) {
    const auto u = value.get_uint64();
    out = u > static_cast<std::uint64_t>(kMax) ? kMax : static_cast<std::int64_t>(u);
  } else if (value.is_double()) {
    const double d = value.get_double();
    if (!std::isfinite(d)) return false;
    if (d >= 9.2e18) {
      out = kMax;
    } else if (d <= -9.2e18) {
      out = kMin;
    } else {
      out = static_cast<std::int64_t>(std::floor(d));
    }
  } else {
    return false;
  }
  return true;
}

// The optional NumericDate claim `name`; Reason::jwt_malformed when it has the wrong type.
Reason read_date(const json::object& claims, std::string_view name,
                 std::optional<std::int64_t>& out) {
  const json::value* value = claims.if_contains(name);
  if (value == nullptr) return Reason::none;
  std::int64_t seconds = 0;
  if (!numeric_date(*value, seconds)) return Reason::jwt_malformed;
  out = seconds;
  return Reason::none;
}

// The optional string claim `name`; Reason::jwt_malformed when it has the wrong type.
Reason read_string(const json::object& claims, std::string_view name, const json::string*& out) {
  out = nullptr;
  const json::value* value = claims.if_contains(name);
  if (value == nullptr) return Reason::none;
  if (!value->is_string()) return Reason::jwt_malformed;
  out = &value->get_string();
  return Reason::none;
}

void add_space_separated(std::string_view text, std::vector<std::string>& out) {
  while (!text.empty()) {
    const auto space = text.find(' ');
    const auto item = text.substr(0, space);
    if (!item.empty()) out.emplace_back(item);
    if (space == std::string_view::npos) break;
    text.remove_prefix(space + 1);
  }
}

// `scope` (space-separated string) and `scp` (array of strings, or a space-separated string).
Reason read_scopes(const json::object& claims, std::vector<std::string>& out) {
  if (const json::value* scope = claims.if_contains("scope")) {
    if (!scope->is_string()) return Reason::jwt_malformed;
    add_space_separated(view(scope->get_string()), out);
  }
  if (const json::value* scp = claims.if_contains("scp")) {
    if (scp->is_string()) {
      add_space_separated(view(scp->get_string()), out);
    } else if (scp->is_array()) {
      for (const json::value& item : scp->get_array()) {
        if (!item.is_string()) return Reason::jwt_malformed;
        out.emplace_back(view(item.get_string()));
      }
    } else {
      return Reason::jwt_malformed;
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return Reason::none;
}

Reason check_audience(const json::object& claims, const std::vector<std::string>& audiences) {
  const json::value* aud = claims.if_contains("aud");
  if (aud == nullptr) return Reason::jwt_missing_claim;
  const auto accepted = [&](const json::string& value) {
    return std::find(audiences.begin(), audiences.end(), view(value)) != audiences.end();
  };
  if (aud->is_string())
    return accepted(aud->get_string()) ? Reason::none : Reason::jwt_wrong_audience;
  if (!aud->is_array()) return Reason::jwt_malformed;
  bool found = false;
  for (const json::value& item : aud->get_array()) {
    if (!item.is_string()) return Reason::jwt_malformed;
    found = found || accepted(item.get_string());
  }
  return found ? Reason::none : Reason::jwt_wrong_audience;
}

std::optional<std::chrono::sys_seconds> as_time(const std::optional<std::int64_t>& seconds) {
  if (!seconds) return std::nullopt;
  return std::chrono::sys_seconds{std::chrono::seconds{*seconds}};
}

}  // namespace

std::vector<std::string> Verifier::check(const ProviderSettings& settings) {
  std::vector<std::string> problems;
  const std::string who = "jwt provider \"" + settings.name + "\": ";
  if (settings.name.empty()) problems.push_back("jwt provider without a name");
  if (settings.issuer.empty()) problems.push_back(who + "issuer is empty");
  if (settings.audiences.empty()) problems.push_back(who + "audiences is empty");
  for (const auto& audience : settings.audiences) {
    if (audience.empty()) problems.push_back(who + "an audience is empty");
  }
  if (settings.algorithms.empty()) problems.push_back(who + "algorithms is empty");
  const bool any_symmetric =
      std::any_of(settings.algorithms.begin(), settings.algorithms.end(), is_symmetric);
  const bool all_symmetric =
      std::all_of(settings.algorithms.begin(), settings.algorithms.end(), is_symmetric);
  if (any_symmetric && !all_symmetric)
    problems.push_back(who + "algorithms mix HMAC (HS*) with public-key algorithms");
  if (settings.clock_skew < std::chrono::seconds{0} || settings.clock_skew > kMaxClockSkew)
    problems.push_back(who + "clock_skew must be between 0s and " +
                       std::to_string(kMaxClockSkew.count()) + "s");
  if (settings.max_token_bytes < kMinTokenBytes || settings.max_token_bytes > kMaxTokenBytes)
    problems.push_back(who + "max_token_bytes must be between " + std::to_string(kMinTokenBytes) +
                       " and " + std::to_string(kMaxTokenBytes));
  if (settings.max_json_depth < 2 || settings.max_json_depth > kMaxJsonDepth)
    problems.push_back(who + "max_json_depth must be between 2 and " +
                       std::to_string(kMaxJsonDepth));
  for (const auto& claim : settings.required_claims) {
    if (claim.empty()) problems.push_back(who + "a required claim name is empty");
  }
  return problems;
}

Verifier::Verifier(ProviderSettings settings) : settings_(std::move(settings)) {
  const auto problems = check(settings_);
  if (!problems.empty()) {
    std::string message;
    for (const auto& problem : problems)
      message += (message.empty() ? "" : "; ") + problem;
    throw std::invalid_argument(message);
  }
  detail::Sha256Builder builder;
  builder.add(settings_.issuer);
  for (const auto& audience : settings_.audiences)
    builder.add(audience);
  builder.add("|");
  for (const auto algorithm : settings_.algorithms)
    builder.add(to_string(algorithm));
  builder.add("|");
  builder.add(std::to_string(settings_.clock_skew.count()));
  for (const auto& claim : settings_.required_claims)
    builder.add(claim);
  builder.add(settings_.require_exp ? "exp" : "no-exp");
  builder.add(std::to_string(settings_.max_token_bytes) + "/" +
              std::to_string(settings_.max_json_depth));
  fingerprint_ = builder.finish();
}

VerifyResult Verifier::verify(std::string_view token, std::chrono::system_clock::time_point now,
                              const KeySet& keys) const {
  return verify(token, token_digest(token), now, keys);
}

VerifyResult Verifier::verify(std::string_view token, const TokenDigest& digest,
                              std::chrono::system_clock::time_point now, const KeySet& keys) const {
  VerifyResult result;
  result.token_hash = token_hash_prefix(digest);
  const auto fail = [&result](Reason reason) -> VerifyResult& {
    result.reason = reason;
    result.principal.reset();
    return result;
  };

  // 1-2. Size and shape.
  if (token.size() > settings_.max_token_bytes) return fail(Reason::jwt_too_large);
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return fail(Reason::jwt_malformed);
  const std::string_view header_b64 = token.substr(0, dot1);
  const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_b64 = token.substr(dot2 + 1);
  const std::string_view signing_input = token.substr(0, dot2);

  std::string header_text, payload_text, signature;
  if (!detail::base64url_decode(header_b64, header_text) ||
      !detail::base64url_decode(payload_b64, payload_text) ||
      !detail::base64url_decode(signature_b64, signature))
    return fail(Reason::jwt_malformed);
  auto header_value = detail::parse_strict_json(header_text, settings_.max_json_depth);
  if (!header_value || !header_value->is_object()) return fail(Reason::jwt_malformed);
  const json::object& header = header_value->get_object();

  // 3. Algorithm: a string, never "none", exactly a supported name, allowed for this provider.
  const json::value* alg_value = header.if_contains("alg");
  if (alg_value == nullptr || !alg_value->is_string()) return fail(Reason::jwt_malformed);
  const std::string_view alg_name = view(alg_value->get_string());
  if (core::iequals(alg_name, "none")) return fail(Reason::jwt_alg_not_allowed);
  const auto algorithm = parse_algorithm(alg_name);
  if (!algorithm || std::find(settings_.algorithms.begin(), settings_.algorithms.end(),
                              *algorithm) == settings_.algorithms.end())
    return fail(Reason::jwt_alg_not_allowed);

  // 4. crit: this verifier implements no extension, so any listed name is unsupported.
  if (const json::value* crit = header.if_contains("crit")) {
    const json::array* names = crit->if_array();
    if (names == nullptr || names->empty()) return fail(Reason::jwt_malformed);
    for (const json::value& name : *names) {
      if (!name.is_string()) return fail(Reason::jwt_malformed);
    }
    return fail(Reason::jwt_crit_unsupported);
  }

  // 5. Key selection, from the configured set only (jwk, jku, x5u, x5c are never consulted).
  const json::string* kid = nullptr;
  if (read_string(header, "kid", kid) != Reason::none) return fail(Reason::jwt_malformed);
  std::array<const Key*, kMaxKeylessCandidates> candidates{};
  std::size_t candidate_count = 0;
  std::vector<const Key*> kid_candidates;
  if (kid != nullptr) {
    bool kid_known = false;
    for (const Key& key : keys.keys()) {
      if (key.kid() != view(*kid)) continue;
      kid_known = true;
      if (key.can_verify(*algorithm)) kid_candidates.push_back(&key);
    }
    if (!kid_known) return fail(Reason::jwt_unknown_kid);
    if (kid_candidates.empty()) return fail(Reason::jwt_alg_not_allowed);
  } else {
    for (const Key& key : keys.keys()) {
      if (candidate_count == candidates.size()) break;
      if (key.can_verify(*algorithm)) candidates[candidate_count++] = &key;
    }
    if (candidate_count == 0) return fail(Reason::jwt_unknown_kid);
  }
  const std::span<const Key* const> tried =
      kid != nullptr ? std::span<const Key* const>(kid_candidates)
                     : std::span<const Key* const>(candidates.data(), candidate_count);

  // 6. Signature over the exact received bytes.
  const Key* verified_by = nullptr;
  for (const Key* key : tried) {
    if (detail::verify_signature(*algorithm, *key, signing_input, signature)) {
      verified_by = key;
      break;
    }
  }
  if (verified_by == nullptr) return fail(Reason::jwt_bad_signature);

  // 7. Payload, now that it is known to come from the issuer's key.
  auto payload_value = detail::parse_strict_json(payload_text, settings_.max_json_depth);
  if (!payload_value || !payload_value->is_object()) return fail(Reason::jwt_malformed);
  json::object& claims = payload_value->get_object();

  const json::string* sub = nullptr;
  const json::string* iss = nullptr;
  const json::string* jti = nullptr;
  if (read_string(claims, "sub", sub) != Reason::none) return fail(Reason::jwt_malformed);
  if (sub != nullptr) result.subject.assign(sub->data(), sub->size());
  if (read_string(claims, "iss", iss) != Reason::none ||
      read_string(claims, "jti", jti) != Reason::none)
    return fail(Reason::jwt_malformed);
  std::optional<std::int64_t> exp, nbf, iat;
  if (read_date(claims, "exp", exp) != Reason::none ||
      read_date(claims, "nbf", nbf) != Reason::none ||
      read_date(claims, "iat", iat) != Reason::none)
    return fail(Reason::jwt_malformed);
  std::vector<std::string> scopes;
  if (read_scopes(claims, scopes) != Reason::none) return fail(Reason::jwt_malformed);

  // 8. Time, with the provider's skew in the token's favour.
  const std::int64_t now_s =
      std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()).count();
  const std::int64_t skew = settings_.clock_skew.count();
  if (!exp && settings_.require_exp) return fail(Reason::jwt_missing_claim);
  if (exp && now_s >= saturating_add(*exp, skew)) return fail(Reason::jwt_expired);
  if (nbf && saturating_add(now_s, skew) < *nbf) return fail(Reason::jwt_not_yet_valid);
  if (iat && *iat > saturating_add(now_s, skew)) return fail(Reason::jwt_issued_in_future);

  // 9-11. Issuer, audience, required claims.
  if (iss == nullptr) return fail(Reason::jwt_missing_claim);
  if (view(*iss) != settings_.issuer) return fail(Reason::jwt_wrong_issuer);
  if (const Reason aud = check_audience(claims, settings_.audiences); aud != Reason::none)
    return fail(aud);
  for (const auto& name : settings_.required_claims) {
    const json::value* value = claims.if_contains(name);
    if (value == nullptr || value->is_null()) return fail(Reason::jwt_missing_claim);
  }

  auto principal = std::make_shared<Principal>();
  principal->subject = result.subject;
  principal->issuer.assign(iss->data(), iss->size());
  if (jti != nullptr) principal->jti.assign(jti->data(), jti->size());
  principal->expires_at = as_time(exp);
  principal->issued_at = as_time(iat);
  principal->not_before = as_time(nbf);
  principal->scopes = std::move(scopes);
  principal->algorithm = *algorithm;
  principal->kid = verified_by->kid();
  principal->token_hash = result.token_hash;
  principal->claims = std::move(claims);
  result.principal = std::move(principal);
  return result;
}

json::object rejection_log_fields(std::string_view provider, const VerifyResult& result) {
  json::object fields;
  fields["event"] = "jwt_rejected";
  fields["provider"] = provider;
  fields["reason"] = core::to_string(result.reason);
  if (!result.subject.empty()) fields["sub"] = result.subject;
  fields["token"] = result.token_hash;
  return fields;
}

}  // namespace portcullis::auth
