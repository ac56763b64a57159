#include "portcullis/redis/options.hpp"

#include <boost/url/parse.hpp>
#include <charconv>

namespace portcullis::redis {

std::optional<std::string> apply_url(std::string_view url, RedisOptions& options) {
  const auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed) return "not a URL: expected redis://host[:port][/db] or rediss://...";
  const auto scheme = parsed->scheme();
  if (scheme != "redis" && scheme != "rediss") return "the scheme must be redis:// or rediss://";
  if (!parsed->has_authority() || parsed->host().empty()) return "the URL has no host";
  if (parsed->has_password())
    return "a password does not belong in the URL: put it in password_file";
  if (parsed->has_query() || parsed->has_fragment()) return "the URL takes no query or fragment";

  RedisOptions result = options;
  result.tls = scheme == "rediss";
  result.user = parsed->has_userinfo() ? std::string(parsed->user()) : std::string();
  // An IPv6 literal comes bracketed ("[::1]"); the address alone is what connects.
  std::string host = parsed->host();
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  result.host = std::move(host);
  result.port = 6379;
  if (parsed->has_port()) {
    const auto text = parsed->port();
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (ec != std::errc() || end != text.data() + text.size() || port == 0 || port > 65535)
      return "the port must be 1-65535";
    result.port = static_cast<std::uint16_t>(port);
  }
  result.database = 0;
  std::string_view path = parsed->encoded_path();
  if (!path.empty() && path != "/") {
    path.remove_prefix(1);
    int database = -1;
    const auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), database);
    if (ec != std::errc() || end != path.data() + path.size() || database < 0)
      return "the path must be a database number (/0, /1, ...)";
    result.database = database;
  }
  options = std::move(result);
  return std::nullopt;
}

}  // namespace portcullis::redis
