#include "state_codec.hpp"

#include <charconv>

#include "portcullis/redis/commands.hpp"
#include "portcullis/redis/state_backend.hpp"

namespace portcullis::redis {
namespace codec {

// KEYS: the record's key, the stream. ARGV: mode (put | del), stream length, new time, value,
// expiry (unix ms), then the stream entry's fields. A put keeps a stored record whose time is
// not earlier (the later exp / issued_before / ban end wins); a del of nothing adds no entry.
// Returns 1 when something changed, 0 otherwise.
const std::string_view kWriteScript = R"lua(
if ARGV[1] == 'put' then
  local current = redis.call('GET', KEYS[1])
  if current then
    local stored = tonumber(string.match(current, '^%d+'))
    if stored and stored >= tonumber(ARGV[3]) then return 0 end
  end
  redis.call('SET', KEYS[1], ARGV[4], 'PXAT', ARGV[5])
elseif redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 6))
return 1
)lua";

const std::string& write_script_sha1() {
  static const std::string hex = script_sha1(kWriteScript);
  return hex;
}

std::string pair_suffix(std::string_view first, std::string_view second) {
  std::string text = std::to_string(first.size());
  text.reserve(text.size() + 2 + first.size() + second.size());
  text += ':';
  text += first;
  text += ':';
  text += second;
  return text;
}

std::optional<std::pair<std::string, std::string>> parse_pair_suffix(std::string_view suffix) {
  const auto colon = suffix.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 6) return std::nullopt;
  std::size_t length = 0;
  const auto [end, ec] = std::from_chars(suffix.data(), suffix.data() + colon, length);
  if (ec != std::errc() || end != suffix.data() + colon) return std::nullopt;
  const auto rest = suffix.substr(colon + 1);
  if (rest.size() < length + 1 || rest[length] != ':') return std::nullopt;
  return std::pair{std::string(rest.substr(0, length)), std::string(rest.substr(length + 1))};
}

std::optional<std::int64_t> parse_int(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string ban_value(const state::Ban& ban) {
  return std::to_string(ban.until) + ":" + ban.reason;
}

std::optional<state::Ban> parse_ban(std::string_view ip_text, std::string_view value) {
  const auto ip = core::IpAddress::parse(ip_text);
  const auto colon = value.find(':');
  if (!ip || colon == std::string_view::npos) return std::nullopt;
  const auto until = parse_int(value.substr(0, colon));
  if (!until) return std::nullopt;
  return state::Ban{*ip, *until, std::string(value.substr(colon + 1))};
}

std::string glob_prefix(std::string_view prefix) {
  std::string pattern;
  for (const char c : prefix) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') pattern += '\\';
    pattern += c;
  }
  return pattern;
}

namespace {

struct FieldsOf {
  std::vector<Field> operator()(const state::Revocation& r) const {
    return {{"t", "rev"}, {"iss", r.issuer}, {"jti", r.jti}, {"exp", std::to_string(r.exp)}};
  }
  std::vector<Field> operator()(const state::SubjectCutoff& c) const {
    return {{"t", "cut"},
            {"iss", c.issuer},
            {"sub", c.subject},
            {"at", std::to_string(c.issued_before)}};
  }
  std::vector<Field> operator()(const state::Ban& b) const {
    return {{"t", "ban"},
            {"ip", b.ip.client_key().to_string()},
            {"until", std::to_string(b.until)},
            {"reason", b.reason}};
  }
  std::vector<Field> operator()(const Unban& u) const {
    return {{"t", "unban"}, {"ip", u.ip.client_key().to_string()}};
  }
};

const std::string* field(const std::vector<Field>& fields, std::string_view name) {
  for (const auto& [key, value] : fields)
    if (key == name) return &value;
  return nullptr;
}

}  // namespace

std::vector<Field> change_fields(const Change& change) {
  return std::visit(FieldsOf{}, change);
}

std::optional<Change> parse_change(const std::vector<Field>& fields) {
  const auto* type = field(fields, "t");
  if (!type) return std::nullopt;
  if (*type == "rev") {
    const auto *issuer = field(fields, "iss"), *jti = field(fields, "jti");
    const auto* exp = field(fields, "exp");
    const auto time = exp ? parse_int(*exp) : std::nullopt;
    if (!issuer || !jti || !time) return std::nullopt;
    return state::Revocation{*issuer, *jti, *time};
  }
  if (*type == "cut") {
    const auto *issuer = field(fields, "iss"), *subject = field(fields, "sub");
    const auto* at = field(fields, "at");
    const auto time = at ? parse_int(*at) : std::nullopt;
    if (!issuer || !subject || !time) return std::nullopt;
    return state::SubjectCutoff{*issuer, *subject, *time};
  }
  const auto* ip_text = field(fields, "ip");
  const auto ip = ip_text ? core::IpAddress::parse(*ip_text) : std::nullopt;
  if (!ip) return std::nullopt;
  if (*type == "unban") return Unban{*ip};
  if (*type == "ban") {
    const auto* until = field(fields, "until");
    const auto* reason = field(fields, "reason");
    const auto time = until ? parse_int(*until) : std::nullopt;
    if (!time || !reason) return std::nullopt;
    return state::Ban{*ip, *time, *reason};
  }
  return std::nullopt;
}

}  // namespace codec

namespace {

class RedisStateCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "portcullis.redis_state"; }
  std::string message(int value) const override {
    switch (static_cast<RedisStateError>(value)) {
      case RedisStateError::timeout:
        return "redis did not answer in time";
      case RedisStateError::disconnected:
        return "redis is not connected";
      case RedisStateError::overloaded:
        return "too many redis commands in flight";
      case RedisStateError::protocol:
        return "unexpected reply from redis";
      case RedisStateError::server:
        return "redis answered with an error";
    }
    return "unknown redis state error";
  }
};

}  // namespace

const std::error_category& redis_state_category() {
  static const RedisStateCategory category;
  return category;
}

std::error_code make_error_code(RedisStateError error) {
  return {static_cast<int>(error), redis_state_category()};
}

std::string revocation_key(std::string_view prefix, std::string_view issuer, std::string_view jti) {
  return std::string(prefix) + std::string(codec::kRevocations) + codec::pair_suffix(issuer, jti);
}

std::string cutoff_key(std::string_view prefix, std::string_view issuer, std::string_view subject) {
  return std::string(prefix) + std::string(codec::kCutoffs) + codec::pair_suffix(issuer, subject);
}

std::string ban_key(std::string_view prefix, const core::IpAddress& ip) {
  return std::string(prefix) + std::string(codec::kBans) + ip.client_key().to_string();
}

std::string changes_key(std::string_view prefix) {
  return std::string(prefix) + std::string(codec::kChanges);
}

}  // namespace portcullis::redis
