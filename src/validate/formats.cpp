#include "portcullis/validate/formats.hpp"

#include <array>
#include <cstdint>

namespace portcullis::validate {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Reads exactly `count` digits at `pos` as a number; false when they are not all digits.
bool read_digits(std::string_view s, std::size_t pos, std::size_t count, int& out) {
  if (pos + count > s.size()) return false;
  int value = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (!is_digit(s[i])) return false;
    value = value * 10 + (s[i] - '0');
  }
  out = value;
  return true;
}

bool is_leap_year(int year) {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int days_in_month(int year, int month) {
  static constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap_year(year) ? 29 : kDays[static_cast<std::size_t>(month - 1)];
}

// full-date = date-fullyear "-" date-month "-" date-mday
bool is_full_date(std::string_view s) {
  int year = 0, month = 0, day = 0;
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  if (!read_digits(s, 0, 4, year) || !read_digits(s, 5, 2, month) || !read_digits(s, 8, 2, day)) {
    return false;
  }
  return month >= 1 && month <= 12 && day >= 1 && day <= days_in_month(year, month);
}

// full-time = partial-time time-offset, where partial-time = HH ":" MM ":" SS [ "." 1*DIGIT ]
// and time-offset = "Z" / ( "+" / "-" ) HH ":" MM. Second 60 only when the UTC time is 23:59.
bool is_full_time(std::string_view s) {
  int hour = 0, minute = 0, second = 0;
  if (s.size() < 9 || s[2] != ':' || s[5] != ':') return false;
  if (!read_digits(s, 0, 2, hour) || !read_digits(s, 3, 2, minute) ||
      !read_digits(s, 6, 2, second)) {
    return false;
  }
  if (hour > 23 || minute > 59 || second > 60) return false;
  std::size_t pos = 8;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    while (pos < s.size() && is_digit(s[pos]))
      ++pos;
    if (pos == start) return false;
  }
  if (pos >= s.size()) return false;
  int offset_minutes = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int offset_hour = 0, offset_minute = 0;
    if (s.size() - pos != 6 || s[pos + 3] != ':') return false;
    if (!read_digits(s, pos + 1, 2, offset_hour) || !read_digits(s, pos + 4, 2, offset_minute)) {
      return false;
    }
    if (offset_hour > 23 || offset_minute > 59) return false;
    offset_minutes = (offset_hour * 60 + offset_minute) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return false;
  }
  if (pos != s.size()) return false;
  if (second == 60) {
    const int utc = ((hour * 60 + minute - offset_minutes) % 1440 + 1440) % 1440;
    if (utc != 23 * 60 + 59) return false;
  }
  return true;
}

bool is_date_time(std::string_view s) {
  if (s.size() < 11 || (s[10] != 'T' && s[10] != 't')) return false;
  return is_full_date(s.substr(0, 10)) && is_full_time(s.substr(11));
}

bool is_ipv4(std::string_view s) {
  int parts = 0;
  std::size_t pos = 0;
  while (true) {
    const std::size_t start = pos;
    int value = 0;
    while (pos < s.size() && is_digit(s[pos]) && pos - start < 3) {
      value = value * 10 + (s[pos] - '0');
      ++pos;
    }
    const std::size_t len = pos - start;
    if (len == 0 || value > 255 || (len > 1 && s[start] == '0')) return false;
    ++parts;
    if (pos == s.size()) return parts == 4;
    if (s[pos] != '.' || parts == 4) return false;
    ++pos;
  }
}

bool is_ipv6(std::string_view s) {
  if (s.size() < 2) return false;
  int groups = 0;
  bool compressed = false;
  std::size_t pos = 0;
  if (s.substr(0, 2) == "::") {
    compressed = true;
    pos = 2;
    if (pos == s.size()) return true;
  } else if (s[0] == ':') {
    return false;
  }
  while (pos < s.size()) {
    // A dotted quad may stand for the last two groups.
    const std::size_t next_colon = s.find(':', pos);
    if (next_colon == std::string_view::npos && s.find('.', pos) != std::string_view::npos) {
      if (!is_ipv4(s.substr(pos))) return false;
      groups += 2;
      pos = s.size();
      break;
    }
    const std::size_t start = pos;
    while (pos < s.size() && is_hex(s[pos]))
      ++pos;
    const std::size_t len = pos - start;
    if (len == 0 || len > 4) return false;
    ++groups;
    if (pos == s.size()) break;
    if (s[pos] != ':') return false;
    ++pos;
    if (pos < s.size() && s[pos] == ':') {
      if (compressed) return false;
      compressed = true;
      ++pos;
      if (pos == s.size()) break;
    } else if (pos == s.size()) {
      return false;  // a single trailing colon
    }
  }
  return compressed ? groups <= 7 : groups == 8;
}

bool is_hostname(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t label_start = 0;
  for (std::size_t pos = 0; pos <= s.size(); ++pos) {
    if (pos == s.size() || s[pos] == '.') {
      const std::size_t len = pos - label_start;
      if (len == 0 || len > 63) return false;
      if (s[label_start] == '-' || s[pos - 1] == '-') return false;
      label_start = pos + 1;
      continue;
    }
    const char c = s[pos];
    if (!is_alpha(c) && !is_digit(c) && c != '-') return false;
  }
  return true;
}

// RFC 5322 atext.
bool is_atext(char c) {
  if (is_alpha(c) || is_digit(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

bool is_dot_atom(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (s[i - 1] == '.') return false;
    } else if (!is_atext(s[i])) {
      return false;
    }
  }
  return true;
}

// quoted-string: printable ASCII and space, with '"' and '\' only as quoted pairs.
bool is_quoted_local_part(std::string_view s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (std::size_t i = 1; i + 1 < s.size(); ++i) {
    const char c = s[i];
    if (c == '\\') {
      if (i + 2 >= s.size()) return false;
      const char escaped = s[++i];
      if (escaped < 0x20 || escaped > 0x7e) return false;
    } else if (c == '"' || c < 0x20 || c > 0x7e) {
      return false;
    }
  }
  return true;
}

bool is_email(std::string_view s) {
  const std::size_t at = s.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == s.size()) return false;
  const std::string_view local = s.substr(0, at);
  const std::string_view domain = s.substr(at + 1);
  if (local.size() > 64) return false;
  if (!(local.front() == '"' ? is_quoted_local_part(local) : is_dot_atom(local))) return false;
  if (domain.front() == '[') {
    if (domain.back() != ']') return false;
    const std::string_view literal = domain.substr(1, domain.size() - 2);
    if (literal.size() > 5 && literal.substr(0, 5) == "IPv6:") return is_ipv6(literal.substr(5));
    return is_ipv4(literal);
  }
  return is_hostname(domain);
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!is_hex(s[i])) {
      return false;
    }
  }
  return true;
}

// ---- RFC 3986 URI -------------------------------------------------------------------------------

bool is_unreserved(char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

bool is_sub_delim(char c) {
  switch (c) {
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
      return true;
    default:
      return false;
  }
}

// True when every character of `s` is unreserved, a sub-delim, one of `extra`, or part of a
// %XX escape.
bool all_uri_chars(std::string_view s, std::string_view extra) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
      i += 2;
      continue;
    }
    if (!is_unreserved(c) && !is_sub_delim(c) && extra.find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

// IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
bool is_ip_future(std::string_view s) {
  if (s.size() < 4 || (s[0] != 'v' && s[0] != 'V')) return false;
  std::size_t pos = 1;
  while (pos < s.size() && is_hex(s[pos]))
    ++pos;
  if (pos == 1 || pos >= s.size() || s[pos] != '.') return false;
  ++pos;
  if (pos == s.size()) return false;
  for (; pos < s.size(); ++pos) {
    if (!is_unreserved(s[pos]) && !is_sub_delim(s[pos]) && s[pos] != ':') return false;
  }
  return true;
}

// authority = [ userinfo "@" ] host [ ":" port ]
bool is_authority(std::string_view s) {
  const std::size_t at = s.find('@');
  if (at != std::string_view::npos) {
    if (!all_uri_chars(s.substr(0, at), ":")) return false;
    s.remove_prefix(at + 1);
  }
  std::string_view host = s;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    const std::size_t close = s.find(']');
    if (close == std::string_view::npos) return false;
    const std::string_view literal = s.substr(1, close - 1);
    if (!is_ipv6(literal) && !is_ip_future(literal)) return false;
    host = s.substr(0, close + 1);
    const std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
    }
  } else {
    const std::size_t colon = s.find(':');
    if (colon != std::string_view::npos) {
      host = s.substr(0, colon);
      port = s.substr(colon + 1);
    }
    if (!all_uri_chars(host, "")) return false;  // reg-name (an IPv4 address is one too)
  }
  for (char c : port) {
    if (!is_digit(c)) return false;
  }
  return true;
}

bool is_uri(std::string_view s) {
  // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
  const std::size_t colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0 || !is_alpha(s[0])) return false;
  for (std::size_t i = 1; i < colon; ++i) {
    const char c = s[i];
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return false;
  }
  std::string_view rest = s.substr(colon + 1);
  std::string_view fragment, query;
  bool has_fragment = false, has_query = false;
  if (const std::size_t hash = rest.find('#'); hash != std::string_view::npos) {
    fragment = rest.substr(hash + 1);
    rest = rest.substr(0, hash);
    has_fragment = true;
  }
  if (const std::size_t question = rest.find('?'); question != std::string_view::npos) {
    query = rest.substr(question + 1);
    rest = rest.substr(0, question);
    has_query = true;
  }
  if (has_fragment && !all_uri_chars(fragment, ":@/?")) return false;
  if (has_query && !all_uri_chars(query, ":@/?")) return false;
  // hier-part = "//" authority path-abempty / path-absolute / path-rootless / path-empty
  std::string_view path = rest;
  if (rest.size() >= 2 && rest[0] == '/' && rest[1] == '/') {
    rest.remove_prefix(2);
    const std::size_t slash = rest.find('/');
    if (!is_authority(rest.substr(0, slash))) return false;
    path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  }
  return all_uri_chars(path, ":@/");
}

}  // namespace

std::optional<Format> format_from_name(std::string_view name) {
  for (Format f : {Format::date_time, Format::date, Format::time, Format::email, Format::hostname,
                   Format::ipv4, Format::ipv6, Format::uri, Format::uuid}) {
    if (format_name(f) == name) return f;
  }
  return std::nullopt;
}

std::string_view format_name(Format format) {
  switch (format) {
    case Format::date_time:
      return "date-time";
    case Format::date:
      return "date";
    case Format::time:
      return "time";
    case Format::email:
      return "email";
    case Format::hostname:
      return "hostname";
    case Format::ipv4:
      return "ipv4";
    case Format::ipv6:
      return "ipv6";
    case Format::uri:
      return "uri";
    case Format::uuid:
      return "uuid";
  }
  return "";
}

bool matches_format(Format format, std::string_view text) {
  switch (format) {
    case Format::date_time:
      return is_date_time(text);
    case Format::date:
      return is_full_date(text);
    case Format::time:
      return is_full_time(text);
    case Format::email:
      return is_email(text);
    case Format::hostname:
      return is_hostname(text);
    case Format::ipv4:
      return is_ipv4(text);
    case Format::ipv6:
      return is_ipv6(text);
    case Format::uri:
      return is_uri(text);
    case Format::uuid:
      return is_uuid(text);
  }
  return false;
}

}  // namespace portcullis::validate
