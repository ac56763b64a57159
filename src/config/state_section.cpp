// `state`: where revocations, bans and rate-limit budgets live (this process, a file that
// survives restarts, or a Redis shared by a fleet) and what happens while it cannot be reached.

#include <algorithm>
#include <charconv>

#include "file_checks.hpp"
#include "sections.hpp"
#include "syntax.hpp"

namespace portcullis::config {
namespace {

using syntax::quote;

constexpr std::string_view kDefaultPort = ":6379";
constexpr std::size_t kMaxKeyPrefix = 64;
constexpr auto kMaxCommandTimeout = std::chrono::seconds(10);
constexpr std::uint64_t kMinLocalMemory = 1024 * 1024;

bool is_unreserved(char c) {
  return syntax::is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// The URL with a password it may hold replaced by "***", for messages: a secret written in the
// wrong place must not reach a console or a log.
std::string redacted(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::string(url);
  const auto authority_start = scheme_end + 3;
  const auto authority_end = url.find_first_of("/?#", authority_start);
  const auto authority = url.substr(authority_start, authority_end == std::string_view::npos
                                                         ? std::string_view::npos
                                                         : authority_end - authority_start);
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  const auto colon = authority.substr(0, at).find(':');
  if (colon == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, authority_start + colon + 1)) + "***" +
         std::string(url.substr(authority_start + at));
}

// redis://[user@]host[:port][/db] or rediss://... ; on failure `why` says what is wrong.
bool parse_redis_url(std::string_view text, RedisSettings& out, std::string& why) {
  std::string_view rest = text;
  bool tls = false;
  if (rest.starts_with("rediss://")) {
    tls = true;
    rest.remove_prefix(9);
  } else if (rest.starts_with("redis://")) {
    rest.remove_prefix(8);
  } else {
    why = "must start with redis:// or rediss:// (TLS)";
    return false;
  }
  if (rest.find_first_of("?#") != std::string_view::npos) {
    why = "has a query or fragment; give the password in password_file and the rest as keys";
    return false;
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);

  std::string user;
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const auto userinfo = authority.substr(0, at);
    if (userinfo.find(':') != std::string_view::npos) {
      why = "holds a password; put it in password_file instead (a URL ends up in logs)";
      return false;
    }
    if (userinfo.empty() || !std::all_of(userinfo.begin(), userinfo.end(), is_unreserved)) {
      why = "has a bad user name (letters, digits, '-', '.', '_', '~')";
      return false;
    }
    user = std::string(userinfo);
    authority.remove_prefix(at + 1);
  }
  std::string host_port(authority);
  const bool needs_port = authority.starts_with('[')
                              ? authority.find("]:") == std::string_view::npos
                              : authority.find(':') == std::string_view::npos;
  if (needs_port) host_port += kDefaultPort;
  std::string host_why;
  const auto parsed = syntax::parse_host_port(host_port, false, host_why);
  if (!parsed) {
    why = authority.empty() ? "has no host"
                            : "has a bad host or port: " + quote(authority) + " " + host_why;
    return false;
  }

  unsigned database = 0;
  if (!path.empty()) {
    const auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), database);
    if (!std::all_of(path.begin(), path.end(), syntax::is_digit) || ec != std::errc{} ||
        end != path.data() + path.size() || path.size() > 9) {
      why = "has a bad database number after '/': " + quote(path);
      return false;
    }
  }
  out.url = std::string(text);
  out.tls = tls;
  out.host = parsed->host;
  out.port = parsed->port;
  out.user = std::move(user);
  out.database = database;
  return true;
}

void parse_redis(Reader& reader, const Entry& entry, RedisSettings& redis) {
  redis.location = reader.location_of(entry);
  const auto fields =
      reader.section(entry, {"url", "password_file", "ca_file", "key_prefix", "command_timeout"});
  if (!fields) return;
  const Entry* url = fields->find("url");
  if (url) {
    if (const auto text = reader.string(*url)) {
      redis.location = reader.location_of(*url);
      std::string why;
      if (!parse_redis_url(*text, redis, why)) {
        reader.error(*url, url->path + ": " + quote(redacted(*text)) + " " + why);
      }
    }
  }
  if (const Entry* password = fields->find("password_file")) {
    if (const auto path = reader.file_path(*password, true)) {
      redis.password_file = *path;
      if (!path->empty()) files::check_secret_file(reader, *path, *password);
    }
  }
  if (const Entry* ca_file = fields->find("ca_file")) {
    if (const auto path = reader.file_path(*ca_file, true); path && !path->empty()) {
      redis.ca_file = *path;
      files::check_ca_bundle(reader, *path, *ca_file);
      const bool plain =
          url ? url->value.IsScalar() && url->value.Scalar().starts_with("redis://") : true;
      if (plain) {
        reader.error(*ca_file, ca_file->path + ": only used with a rediss:// url (TLS); " +
                                   (url ? "url is at " + Reader::line_of(*url)
                                        : std::string("the default url is redis://")));
      }
    }
  }
  set(*fields, "key_prefix", redis.key_prefix, [&](const Entry& e) -> std::optional<std::string> {
    auto text = reader.string(e);
    if (!text) return text;
    const bool clean = std::all_of(text->begin(), text->end(), [](char c) {
      const auto byte = static_cast<unsigned char>(c);
      return byte > 0x20 && byte < 0x7f;
    });
    if (text->empty() || text->size() > kMaxKeyPrefix || !clean) {
      reader.error(e, e.path + ": " + quote(*text) +
                          " must be 1 to 64 visible ASCII characters without spaces");
      return std::nullopt;
    }
    return text;
  });
  set(*fields, "command_timeout", redis.command_timeout,
      [&](const Entry& e) -> std::optional<Duration> {
        auto value = reader.duration(e);
        if (value && *value > kMaxCommandTimeout) {
          reader.error(e, e.path + ": at most 10s (a request may wait this long on Redis)");
          return std::nullopt;
        }
        return value;
      });
}

}  // namespace

void parse_state(Reader& reader, const Entry* entry, StateSettings& state) {
  // The in-process warning's place: the deepest of state, state.memory, state.memory.path given.
  std::optional<Entry> warn_at;
  if (entry) {
    warn_at = *entry;
    state.location = reader.key_location_of(*entry);
    const auto fields = reader.section(*entry, {"backend", "memory", "redis", "on_unavailable",
                                                "local_memory", "max_token_lifetime"});
    if (fields) {
      set(*fields, "backend", state.backend, [&](const Entry& e) {
        return reader.choice<StateBackendKind>(
            e, {{"memory", StateBackendKind::memory}, {"redis", StateBackendKind::redis}});
      });
      if (const Entry* memory = fields->find("memory")) {
        warn_at = *memory;
        if (const auto memory_fields = reader.section(*memory, {"path"})) {
          if (const Entry* memory_path = memory_fields->find("path")) {
            warn_at = *memory_path;
            if (const auto path = reader.file_path(*memory_path, true)) {
              state.memory_path = *path;
              if (!path->empty()) files::check_writable_target(reader, *path, *memory_path);
            }
          }
        }
      }
      if (const Entry* redis = fields->find("redis")) parse_redis(reader, *redis, state.redis);
      set(*fields, "on_unavailable", state.on_unavailable, [&](const Entry& e) {
        return reader.choice<OnUnavailable>(e, {{"fail_closed", OnUnavailable::fail_closed},
                                                {"fail_open", OnUnavailable::fail_open}});
      });
      set(*fields, "local_memory", state.local_memory,
          [&](const Entry& e) -> std::optional<std::uint64_t> {
            auto bytes = reader.size(e);
            if (bytes && *bytes < kMinLocalMemory) {
              reader.error(e, e.path + ": at least 1MiB");
              return std::nullopt;
            }
            return bytes;
          });
      set(*fields, "max_token_lifetime", state.max_token_lifetime,
          [&](const Entry& e) { return reader.duration(e); });
    }
  }
  if (state.backend == StateBackendKind::memory && state.memory_path.empty()) {
    reader.warning(warn_at ? &*warn_at : nullptr,
                   "state.memory.path is empty: revocations and bans live in this process only");
  }
}

}  // namespace portcullis::config
