#include "portcullis/admin/requests.hpp"

#include <boost/json.hpp>

#include <algorithm>

#include "portcullis/auth/strict_json.hpp"
#include "portcullis/config/units.hpp"

namespace portcullis::admin {
namespace {

namespace json = boost::json;

constexpr std::size_t kMaxDepth = 2;
constexpr std::size_t kMaxTextBytes = 256;
constexpr std::int64_t kMaxCutoffAhead = 24 * 3600;
constexpr auto kMaxBan = std::chrono::hours(24 * 366);

// Identifiers end up in logs and keys: printable ASCII only, bounded.
bool is_plain_text(std::string_view text) {
  return !text.empty() && text.size() <= kMaxTextBytes &&
         std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// The body as one JSON object with no member outside `allowed`, or nullopt with `error` set.
std::optional<json::object> object_with(std::string_view body,
                                        std::initializer_list<std::string_view> allowed,
                                        std::string& error) {
  if (body.size() > kMaxBodyBytes) {
    error = "body too large";
    return std::nullopt;
  }
  auto parsed = auth::detail::parse_strict_json(body, kMaxDepth);
  if (!parsed || !parsed->is_object()) {
    error = "body must be one JSON object";
    return std::nullopt;
  }
  for (const auto& member : parsed->as_object()) {
    if (std::find(allowed.begin(), allowed.end(), member.key()) == allowed.end()) {
      error = "unknown member";
      return std::nullopt;
    }
  }
  return std::move(parsed->as_object());
}

std::optional<std::string> text_member(const json::object& object, std::string_view name,
                                       std::string& error) {
  const auto* value = object.if_contains(name);
  if (!value) return std::nullopt;
  if (!value->is_string() || !is_plain_text(value->as_string())) {
    error = std::string(name) + " must be a non-empty printable string of at most 256 bytes";
    return std::nullopt;
  }
  return std::string(value->as_string());
}

std::optional<std::int64_t> seconds_member(const json::object& object, std::string_view name,
                                           std::string& error) {
  const auto* value = object.if_contains(name);
  if (!value) return std::nullopt;
  if (value->is_int64() && value->as_int64() > 0) return value->as_int64();
  if (value->is_uint64() && value->as_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    return static_cast<std::int64_t>(value->as_uint64());
  error = std::string(name) + " must be a positive whole number of unix seconds";
  return std::nullopt;
}

}  // namespace

std::variant<RevocationRequest, BodyError> parse_revocation(std::string_view body,
                                                            std::int64_t now) {
  std::string error;
  const auto parsed = object_with(body, {"jti", "exp", "sub", "issued_before", "iss"}, error);
  if (!parsed) return BodyError{error};
  const auto& object = *parsed;
  const auto issuer = text_member(object, "iss", error);
  const auto jti = text_member(object, "jti", error);
  const auto exp = seconds_member(object, "exp", error);
  const auto subject = text_member(object, "sub", error);
  const auto issued_before = seconds_member(object, "issued_before", error);
  if (!error.empty()) return BodyError{error};
  const bool by_token = object.contains("jti") || object.contains("exp");
  const bool by_subject = object.contains("sub") || object.contains("issued_before");
  if (by_token == by_subject) return BodyError{"give either jti and exp, or sub and issued_before"};
  if (by_token) {
    if (!jti || !exp) return BodyError{"jti and exp are both required"};
    return RevocationRequest{TokenRevocation{issuer.value_or(""), *jti, *exp}};
  }
  if (!subject || !issued_before) return BodyError{"sub and issued_before are both required"};
  if (*issued_before > now + kMaxCutoffAhead)
    return BodyError{"issued_before is more than a day ahead"};
  return RevocationRequest{SubjectRevocation{issuer.value_or(""), *subject, *issued_before}};
}

std::variant<BanRequest, BodyError> parse_ban(std::string_view body) {
  std::string error;
  const auto parsed = object_with(body, {"ip", "duration", "reason"}, error);
  if (!parsed) return BodyError{error};
  const auto& object = *parsed;
  BanRequest ban;
  const auto* ip = object.if_contains("ip");
  if (!ip || !ip->is_string()) return BodyError{"ip must be an IPv4 or IPv6 address"};
  const auto address = core::IpAddress::parse(ip->as_string());
  if (!address) return BodyError{"ip must be an IPv4 or IPv6 address"};
  ban.ip = *address;
  const auto* duration = object.if_contains("duration");
  if (!duration || !duration->is_string())
    return BodyError{"duration must be a string such as \"30m\""};
  const auto duration_value = config::parse_duration(duration->as_string());
  if (!duration_value || *duration_value < std::chrono::seconds(1) || *duration_value > kMaxBan)
    return BodyError{"duration must be from 1s to 366 days, such as \"30m\""};
  ban.duration = std::chrono::duration_cast<std::chrono::seconds>(*duration_value);
  if (const auto reason = text_member(object, "reason", error)) ban.reason = *reason;
  if (!error.empty()) return BodyError{error};
  return ban;
}

std::optional<core::IpAddress> ban_path_ip(std::string_view path) {
  constexpr std::string_view kPrefix = "/bans/";
  if (!path.starts_with(kPrefix)) return std::nullopt;
  return core::IpAddress::parse(path.substr(kPrefix.size()));
}

}  // namespace portcullis::admin
