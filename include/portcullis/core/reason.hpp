#pragma once
// Reason codes: the short, bounded vocabulary that says why a request was refused or failed.
// They go to the access log, the security log and the `rejections` metric, never to the client.

#include <cstdint>
#include <string_view>

namespace portcullis::core {

// clang-format off
#define PORTCULLIS_REASONS(X) \
  X(none) \
  /* routing */ \
  X(no_route) \
  X(method_not_allowed) \
  /* limits */ \
  X(uri_too_long) \
  X(header_too_large) \
  X(too_many_headers) \
  X(body_too_large) \
  X(header_timeout) \
  X(body_timeout) \
  /* malformed or ambiguous HTTP */ \
  X(bad_request_line) \
  X(bad_method) \
  X(bad_version) \
  X(bad_target) \
  X(bad_header_name) \
  X(bad_header_value) \
  X(header_underscore) \
  X(obs_fold) \
  X(bare_lf) \
  X(bare_cr) \
  X(control_char) \
  X(smuggling_cl_te) \
  X(bad_content_length) \
  X(multiple_content_length) \
  X(bad_transfer_encoding) \
  X(bad_chunk) \
  X(missing_host) \
  X(multiple_host) \
  X(bad_host) \
  X(bad_path) \
  X(encoded_slash) \
  X(encoded_nul) \
  X(double_encoding) \
  X(path_traversal) \
  X(body_truncated) \
  X(bad_expect) \
  /* connection level */ \
  X(connection_limit) \
  X(connection_limit_per_ip) \
  X(ip_denied) \
  X(tls_handshake_failed) \
  /* upstream */ \
  X(upstream_connect_failed) \
  X(upstream_reset) \
  X(upstream_timeout) \
  X(upstream_bad_response) \
  X(no_healthy_upstream) \
  X(upstream_5xx_masked) \
  /* authentication and authorization */ \
  X(jwt_missing) \
  X(jwt_malformed) \
  X(jwt_too_large) \
  X(jwt_alg_not_allowed) \
  X(jwt_unknown_kid) \
  X(jwt_bad_signature) \
  X(jwt_expired) \
  X(jwt_not_yet_valid) \
  X(jwt_issued_in_future) \
  X(jwt_wrong_issuer) \
  X(jwt_wrong_audience) \
  X(jwt_missing_claim) \
  X(jwt_crit_unsupported) \
  X(jwt_revoked) \
  X(jwt_insufficient_scope) \
  X(jwt_claim_mismatch) \
  /* request validation */ \
  X(content_type_not_allowed) \
  X(invalid_json) \
  X(json_limit_exceeded) \
  X(schema_violation) \
  /* state, rate limits and bans */ \
  X(state_unavailable) \
  X(rate_limited) \
  X(ip_banned)
// clang-format on

enum class Reason : std::uint8_t {
#define PORTCULLIS_REASON_ENUM(name) name,
  PORTCULLIS_REASONS(PORTCULLIS_REASON_ENUM)
#undef PORTCULLIS_REASON_ENUM
};

inline constexpr std::size_t kReasonCount = 0
#define PORTCULLIS_REASON_COUNT(name) +1
    PORTCULLIS_REASONS(PORTCULLIS_REASON_COUNT)
#undef PORTCULLIS_REASON_COUNT
    ;

// The stable snake_case name of a reason, as it appears in logs and metric labels.
std::string_view to_string(Reason reason);

}  // namespace portcullis::core
