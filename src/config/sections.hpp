#pragma once
// One parser per top-level section of the policy. Each reads its part of the YAML through a
// Reader (which collects every problem) into the Policy; sections that refer to others (routes
// to upstreams, providers and limits) run after the ones they refer to.

#include <optional>
#include <string>
#include <vector>

#include "portcullis/config/policy.hpp"
#include "yaml_reader.hpp"

namespace portcullis::config {

// Headers a policy may not set on every response nor use to carry a claim: they frame the
// message or belong to one hop, so a fixed value would corrupt responses or open a smuggling path.
bool is_unsettable_header(std::string_view lowercase_name);

// `server`. Also checks that no two listeners (the admin one included, written or not) share an
// address. `server` is null when the section is left out.
void parse_server(Reader& reader, const Entry* server, const Entry& root, ServerSettings& out);
void parse_logging(Reader& reader, const Entry& entry, LoggingSettings& out);
void parse_state(Reader& reader, const Entry* entry, StateSettings& out);
void parse_upstreams(Reader& reader, const Entry& entry, std::vector<Upstream>& out);
void parse_jwt_providers(Reader& reader, const Entry& entry, std::vector<JwtProvider>& out);
void parse_rate_limits(Reader& reader, const Entry& entry, std::vector<RateLimit>& out);
void parse_headers(Reader& reader, const Entry& entry, HeaderSettings& out);
void parse_errors(Reader& reader, const Entry& entry, ErrorSettings& out);
void parse_ip_rules(Reader& reader, const Entry& entry, IpRules& out);
// A route's `rate_limit` list: indices into policy.rate_limits. `auth` is the route's auth
// entry (null when left out); a jwt.sub limit needs JWT auth on the route.
std::vector<std::size_t> parse_route_rate_limits(Reader& reader, const Entry& entry,
                                                 const Policy& policy, const Entry* auth,
                                                 bool has_jwt_auth);
// A route's `login_protection`; nothing when it has errors.
std::optional<LoginProtection> parse_login_protection(Reader& reader, const Entry& entry);
// `routes`, after everything they refer to is in `policy`.
void parse_routes(Reader& reader, const Entry& entry, Policy& policy);

}  // namespace portcullis::config
