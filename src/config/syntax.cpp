#include "syntax.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>
#include <vector>

#include "portcullis/core/ip.hpp"
#include "portcullis/core/text.hpp"

namespace portcullis::config::syntax {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}
bool is_alnum(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (auto& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

namespace {
bool is_tchar(char c) {
  return is_alnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
}  // namespace

bool is_token(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), is_tchar);
}

bool is_field_value(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return (byte < 0x20 && byte != '\t') || byte == 0x7f;
  });
}

bool is_name(std::string_view text) {
  return !text.empty() && text.size() <= kMaxNameLength &&
         std::all_of(text.begin(), text.end(),
                     [](char c) { return is_alnum(c) || c == '_' || c == '-' || c == '.'; });
}

bool is_host_name(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  std::string_view last;
  while (true) {
    const auto dot = text.find('.');
    const auto label = text.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    if (!std::all_of(label.begin(), label.end(), [](char c) { return is_alnum(c) || c == '-'; })) {
      return false;
    }
    last = label;
    if (dot == std::string_view::npos) break;
    text.remove_prefix(dot + 1);
  }
  return !std::all_of(last.begin(), last.end(), is_digit);
}

std::string quote(std::string_view text) {
  constexpr std::size_t kShown = 60;
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < kShown; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out += text[i];
    }
  }
  if (text.size() > kShown) out += "...";
  return out + "'";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string_view closest(std::string_view name, std::span<const std::string_view> candidates) {
  std::string_view best;
  std::size_t best_distance = 3;  // suggest only near misses
  const std::string folded = core::ascii_lowercase(name);
  for (const auto candidate : candidates) {
    const auto distance = edit_distance(folded, core::ascii_lowercase(candidate));
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string range_text(std::uint64_t min, std::uint64_t max) {
  if (max == std::numeric_limits<std::uint64_t>::max()) {
    return "must be at least " + std::to_string(min);
  }
  if (min == max) return "must be " + std::to_string(min);
  return "must be between " + std::to_string(min) + " and " + std::to_string(max);
}

std::string route_path_problem(std::string_view path) {
  if (path.empty() || path.front() != '/') return "must start with '/'";
  for (std::size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '%') {
      if (i + 2 >= path.size() || !is_hex(path[i + 1]) || !is_hex(path[i + 2])) {
        return "has a malformed percent escape";
      }
      const std::string hex = upper(path.substr(i + 1, 2));
      if (hex != path.substr(i + 1, 2)) return "percent escapes must use upper-case hex";
      const int value = std::stoi(hex, nullptr, 16);
      const char decoded = static_cast<char>(value);
      if (is_alnum(decoded) || decoded == '-' || decoded == '.' || decoded == '_' ||
          decoded == '~') {
        return "encodes an unreserved character; requests are matched decoded, write it as is";
      }
      if (hex == "2F" || hex == "5C" || hex == "00" || hex == "25") {
        return "has an escape that requests are refused for (%2F, %5C, %00, %25)";
      }
      i += 2;
      continue;
    }
    if (is_alnum(c) || std::string_view("-._~!$&'()*+,;=:@/").find(c) != std::string_view::npos) {
      continue;
    }
    if (c == '?' || c == '#') return "must not contain a query or fragment";
    return "has a character that must be percent-encoded: " + quote(std::string_view(&c, 1));
  }
  if (path.find("//") != std::string_view::npos) {
    return "has an empty segment ('//'); requests are matched with slashes merged";
  }
  std::string_view rest = path.substr(1);
  while (true) {
    const auto slash = rest.find('/');
    const auto segment = rest.substr(0, slash);
    if (segment == "." || segment == "..") {
      return "has a '.' or '..' segment; requests are matched with those resolved";
    }
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return {};
}

std::optional<HostPort> parse_host_port(std::string_view text, bool allow_port_zero,
                                        std::string& why) {
  const auto fail = [&](std::string reason) -> std::optional<HostPort> {
    why = std::move(reason);
    return std::nullopt;
  };
  HostPort result;
  result.text = std::string(text);
  std::string_view rest = text;
  std::string_view port;
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return fail("has no closing ']'");
    result.host = std::string(rest.substr(1, close - 1));
    const auto address = core::IpAddress::parse(result.host);
    if (!address || address->is_v4() || result.host.find(':') == std::string::npos) {
      return fail("is not an IPv6 address in brackets");
    }
    if (close + 1 >= rest.size() || rest[close + 1] != ':') {
      return fail("needs a port: host:port, for example [::1]:8443");
    }
    port = rest.substr(close + 2);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      return fail("needs a port: host:port, for example 0.0.0.0:8443");
    }
    result.host = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
    if (result.host.find(':') != std::string::npos) {
      return fail("is ambiguous: write IPv6 addresses in brackets, as [::1]:8443");
    }
    if (result.host.empty()) return fail("has no host (use 0.0.0.0 or [::] for every address)");
    if (!core::IpAddress::parse(result.host) && !is_host_name(result.host)) {
      return fail("does not start with an IP address or a host name");
    }
  }
  std::uint16_t number = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit) ||
      ec != std::errc{} || end != port.data() + port.size()) {
    return fail(allow_port_zero ? "has a bad port: must be between 0 and 65535"
                                : "has a bad port: must be between 1 and 65535");
  }
  if (number == 0 && !allow_port_zero) return fail("has port 0: must be between 1 and 65535");
  result.port = number;
  return result;
}

}  // namespace portcullis::config::syntax
