// `rate_limits` (named GCRA limits), and the route keys that use them: `rate_limit` (the limits
// a route applies) and `login_protection` (bans after repeated failed logins).

#include <algorithm>

#include "sections.hpp"
#include "syntax.hpp"

namespace portcullis::config {
namespace {

using syntax::quote;

constexpr std::uint64_t kMaxRate = 1'000'000'000;
constexpr std::uint64_t kMaxBurst = 1'000'000'000;
constexpr auto kMaxPer = std::chrono::hours(24);
constexpr std::uint64_t kMaxFailures = 1'000'000;

// "rate, burst": the keys of `required` that `fields` lacks, or empty.
std::string missing_keys(const Section& fields, std::initializer_list<const char*> required) {
  std::string missing;
  for (const char* key : required) {
    if (fields.find(key)) continue;
    if (!missing.empty()) missing += ", ";
    missing += key;
  }
  return missing;
}

RateLimit parse_rate_limit(Reader& reader, const Entry& entry, std::string name) {
  RateLimit limit;
  limit.name = std::move(name);
  limit.location = reader.key_location_of(entry);
  const auto fields = reader.section(entry, {"key", "rate", "per", "burst"});
  if (!fields) return limit;
  if (const auto missing = missing_keys(*fields, {"key", "rate", "per", "burst"});
      !missing.empty()) {
    reader.error(entry,
                 entry.path + ": missing " + missing + " (a limit needs key, rate, per and burst)");
  }
  set(*fields, "key", limit.key, [&](const Entry& e) {
    return reader.choice<RateLimitKey>(
        e, {{"client_ip", RateLimitKey::client_ip}, {"jwt.sub", RateLimitKey::jwt_sub}});
  });
  set(*fields, "rate", limit.rate, [&](const Entry& e) { return reader.whole(e, 1, kMaxRate); });
  set(*fields, "burst", limit.burst, [&](const Entry& e) { return reader.whole(e, 1, kMaxBurst); });
  set(*fields, "per", limit.per, [&](const Entry& e) -> std::optional<Duration> {
    auto value = reader.duration(e);
    if (value && *value > kMaxPer) {
      reader.error(e, e.path + ": at most 24h");
      return std::nullopt;
    }
    return value;
  });
  return limit;
}

}  // namespace

void parse_rate_limits(Reader& reader, const Entry& entry, std::vector<RateLimit>& limits) {
  const auto section = reader.section(entry, {}, true);
  if (!section) return;
  for (const auto& [name, item] : section->entries()) {
    if (!syntax::is_name(name)) {
      reader.error(item.key.Mark(), item.path +
                                        ": limit names use letters, digits, '_', '-' and '.' (at "
                                        "most 64)");
    }
    limits.push_back(parse_rate_limit(reader, item, name));
  }
}

std::vector<std::size_t> parse_route_rate_limits(Reader& reader, const Entry& entry,
                                                 const Policy& policy, const Entry* auth,
                                                 bool has_jwt_auth) {
  std::vector<std::size_t> indices;
  std::vector<std::string_view> names;
  for (const auto& limit : policy.rate_limits)
    names.push_back(limit.name);
  for (const auto& item : reader.items(entry)) {
    const auto text = reader.string(item);
    if (!text) continue;
    const auto found = std::find(names.begin(), names.end(), *text);
    if (found == names.end()) {
      std::string message = item.path + ": no limit named " + quote(*text) + " in rate_limits";
      if (const auto best = syntax::closest(*text, names); !best.empty()) {
        message += "; did you mean " + quote(best) + "?";
      }
      reader.error(item, std::move(message));
      continue;
    }
    const auto index = static_cast<std::size_t>(found - names.begin());
    if (std::find(indices.begin(), indices.end(), index) != indices.end()) {
      reader.error(item, item.path + ": " + quote(*text) + " is listed twice");
      continue;
    }
    const RateLimit& limit = policy.rate_limits[index];
    // Left out or `none`: no subject to count by. An auth block with errors is reported there.
    const bool auth_none = !auth || (auth->value.IsScalar() && auth->value.Scalar() == "none");
    if (limit.key == RateLimitKey::jwt_sub && !has_jwt_auth && auth_none) {
      reader.error(item, item.path + ": " + quote(*text) +
                             " counts by jwt.sub and needs auth: { jwt: ... } on this route (" +
                             (auth ? "auth: none is at " + Reader::line_of(*auth)
                                   : std::string("auth is left out")) +
                             "; the limit is at line " + std::to_string(limit.location.line) + ")");
      continue;
    }
    indices.push_back(index);
  }
  return indices;
}

std::optional<LoginProtection> parse_login_protection(Reader& reader, const Entry& entry) {
  const auto fields = reader.section(entry, {"failure_status", "max_failures", "window", "ban"});
  if (!fields) return std::nullopt;
  LoginProtection protection;
  protection.location = reader.location_of(entry);
  const auto missing = missing_keys(*fields, {"failure_status", "max_failures", "window", "ban"});
  if (!missing.empty()) {
    reader.error(entry, entry.path + ": missing " + missing +
                            " (login protection needs failure_status, max_failures, window and "
                            "ban)");
  }
  if (const Entry* statuses = fields->find("failure_status")) {
    const auto list = reader.items(*statuses);
    if (statuses->value.IsSequence() && list.empty()) {
      reader.error(*statuses, statuses->path + ": at least one status is required");
    }
    for (const auto& item : list) {
      const auto status = reader.whole(item, 100, 599);
      if (!status) continue;
      const int code = static_cast<int>(*status);
      if (std::find(protection.failure_status.begin(), protection.failure_status.end(), code) !=
          protection.failure_status.end()) {
        reader.error(item, item.path + ": " + std::to_string(code) + " is listed twice");
        continue;
      }
      protection.failure_status.push_back(code);
    }
  }
  set(*fields, "max_failures", protection.max_failures,
      [&](const Entry& e) { return reader.whole(e, 1, kMaxFailures); });
  set(*fields, "window", protection.window, [&](const Entry& e) { return reader.duration(e); });
  set(*fields, "ban", protection.ban, [&](const Entry& e) { return reader.duration(e); });
  if (!missing.empty()) return std::nullopt;
  return protection;
}

}  // namespace portcullis::config
