#include "portcullis/http/request_parser.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "char_class.hpp"
#include "portcullis/core/ip.hpp"

namespace portcullis::http {
namespace {

using core::Reason;
using detail::is;

constexpr std::size_t kMaxLeadingEmptyLines = 4;
constexpr std::size_t kMaxMethodBytes = 32;
constexpr std::size_t kMaxContentLengthDigits = 18;  // < 2^63: no overflow, no sign games
constexpr std::string_view kVersionPrefix = "HTTP/1.";

// Limits come from configuration: never let offset + limit wrap around.
constexpr std::size_t add_saturated(std::size_t a, std::size_t b) {
  return a > std::numeric_limits<std::size_t>::max() - b ? std::numeric_limits<std::size_t>::max()
                                                         : a + b;
}

// 1*DIGIT, at most 18 digits; nothing else (no sign, no list, no inner whitespace).
bool parse_content_length(std::string_view value, std::uint64_t& out) {
  if (value.empty() || value.size() > kMaxContentLengthDigits) return false;
  std::uint64_t n = 0;
  for (const char c : value) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = n;
  return true;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool valid_port(std::string_view port) {
  if (!all_digits(port) || port.size() > 5) return false;
  unsigned value = 0;
  for (const char c : port)
    value = value * 10 + static_cast<unsigned>(c - '0');
  return value <= 65535;
}

// Host = uri-host [ ":" port ]. The name part is restricted to unreserved characters (the DNS
// alphabet): sub-delims and escapes are legal in a reg-name but only ever seen in injection
// attempts (a ',' would turn X-Forwarded-Host into a list). A name of digits and dots must be a
// dotted-quad IPv4 address, so "1.2.3" cannot mean different hosts to different resolvers.
bool valid_host(std::string_view host) {
  if (host.empty()) return false;
  std::string_view rest;
  if (host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return false;
    const std::string_view literal = host.substr(1, close - 1);
    if (literal.find(':') == std::string_view::npos) return false;
    for (const char c : literal) {
      if (!is(c, detail::kHex) && c != ':' && c != '.') return false;
    }
    if (!core::IpAddress::parse(literal)) return false;
    rest = host.substr(close + 1);
  } else {
    const auto colon = host.find(':');
    const std::string_view name = host.substr(0, colon);
    if (name.empty()) return false;
    bool numeric = true;
    for (const char c : name) {
      if (!is(c, detail::kUnreserved)) return false;
      numeric = numeric && ((c >= '0' && c <= '9') || c == '.');
    }
    if (numeric && !core::IpAddress::parse(name)) return false;
    if (colon == std::string_view::npos) return true;
    rest = host.substr(colon);
  }
  if (rest.empty()) return true;
  return rest.front() == ':' && valid_port(rest.substr(1));
}

}  // namespace

void RequestHead::clear() {
  method = {};
  target = {};
  path = {};
  query = {};
  has_query = false;
  version_minor = 1;
  headers.clear();  // keeps capacity for the next request on the connection
  host = {};
  framing = BodyFraming::none;
  content_length = 0;
  declares_body = false;

  keep_alive = true;
  expect_continue = false;
  connection.clear();
}

void RequestParser::reset() {
  scanned_ = 0;
  line_start_ = 0;
  head_start_ = 0;
  lines_ = 0;
  request_line_done_ = false;
  state_ = Scan::leading;
  skipped_lines_ = 0;
  part_len_ = 0;
  method_end_ = 0;
  target_end_ = 0;
  headers_start_ = 0;
  head_end_ = 0;
  header_count_ = 0;
  version_minor_ = 1;
  error_ = {};
}

ParseResult RequestParser::fail(int status, Reason reason) {
  state_ = Scan::failed;
  error_ = core::LocalReply{status, reason, status != 417};
  ParseResult result;
  result.state = ParseState::error;
  result.reply = error_;
  return result;
}

ParseResult RequestParser::parse(std::string_view buffered, RequestHead& head) {
  if (state_ == Scan::failed) {
    ParseResult result;
    result.state = ParseState::error;
    result.reply = error_;
    return result;
  }
  // A buffer shorter than what was already scanned is not the same request any more.
  if (buffered.size() < scanned_) reset();
  if (state_ != Scan::done) {
    ParseResult scanned = scan(buffered);
    if (scanned.state != ParseState::complete) return scanned;
  }
  return finish(buffered, head);
}

// Walks the bytes not yet seen, one state per part of the head, and stops at the first byte
// that decides an error. Every decision depends only on the bytes up to that position (and the
// one after a CR), so feeding the head in any split gives the same answer as feeding it whole.
ParseResult RequestParser::scan(std::string_view buffered) {
  const char* const p = buffered.data();
  const std::size_t n = buffered.size();
  std::size_t i = scanned_;
  // Header-line bytes at or past this offset exceed max_header_bytes.
  const auto header_limit = [&] { return add_saturated(headers_start_, limits_.max_header_bytes); };

  while (i < n) {
    switch (state_) {
      case Scan::leading: {
        const char c = p[i];
        if (c == '\r') {
          if (i + 1 == n) goto need_more;
          if (p[i + 1] != '\n') return fail(400, Reason::bare_cr);
          if (++skipped_lines_ > kMaxLeadingEmptyLines) return fail(400, Reason::bad_request_line);
          i += 2;
          break;
        }
        if (c == '\n') return fail(400, Reason::bare_lf);
        head_start_ = i;
        line_start_ = i;
        part_len_ = 0;
        state_ = Scan::method;
        break;
      }

      case Scan::method: {
        const std::size_t start = i;
        const std::size_t end = std::min(n, i + (kMaxMethodBytes - part_len_) + 1);
        while (i < end && is(p[i], detail::kToken))
          ++i;
        part_len_ += i - start;
        if (part_len_ > kMaxMethodBytes) return fail(400, Reason::bad_method);
        if (i == n) goto need_more;
        const char c = p[i];
        if (c == ' ') {
          if (part_len_ == 0) return fail(400, Reason::bad_request_line);
          method_end_ = i++;
          part_len_ = 0;
          state_ = Scan::target;
          break;
        }
        if (c == '\n') return fail(400, Reason::bare_lf);
        if (c == '\r' || c == '\t') return fail(400, Reason::bad_request_line);
        return fail(400, Reason::bad_method);
      }

      case Scan::target: {
        if (part_len_ == 0) {
          // origin-form only: absolute-form, authority-form and '*' never reach a route
          const char c = p[i];
          if (c == ' ' || c == '\r' || c == '\t') return fail(400, Reason::bad_request_line);
          if (c == '\n') return fail(400, Reason::bare_lf);
          if (c != '/') return fail(400, Reason::bad_target);
        }
        const std::size_t start = i;
        const std::size_t end =
            std::min(n, add_saturated(i, add_saturated(limits_.max_uri_bytes - part_len_, 1)));
        while (i < end && is(p[i], detail::kTarget))
          ++i;
        part_len_ += i - start;
        if (part_len_ > limits_.max_uri_bytes) return fail(414, Reason::uri_too_long);
        if (i == n) goto need_more;
        const char c = p[i];
        if (c == ' ') {
          target_end_ = i++;
          part_len_ = 0;
          state_ = Scan::version;
          break;
        }
        if (c == '\n') return fail(400, Reason::bare_lf);
        if (c == '\r' || c == '\t') return fail(400, Reason::bad_request_line);
        return fail(400, Reason::bad_target);
      }

      case Scan::version: {
        const char c = p[i];
        if (part_len_ < kVersionPrefix.size() + 1) {
          const bool ok = part_len_ < kVersionPrefix.size() ? c == kVersionPrefix[part_len_]
                                                            : (c == '0' || c == '1');
          if (ok) {
            ++part_len_;
            ++i;
            break;
          }
          if (c == '\n') return fail(400, Reason::bare_lf);
          if (c == ' ' || c == '\t') return fail(400, Reason::bad_request_line);
          return fail(400, Reason::bad_version);
        }
        if (c == '\r') {
          if (i + 1 == n) goto need_more;
          if (p[i + 1] != '\n') return fail(400, Reason::bare_cr);
          version_minor_ = p[i - 1] - '0';
          i += 2;
          request_line_done_ = true;
          lines_ = 1;
          headers_start_ = i;
          line_start_ = i;
          state_ = Scan::line_start;
          break;
        }
        if (c == '\n') return fail(400, Reason::bare_lf);
        if (c == ' ' || c == '\t') return fail(400, Reason::bad_request_line);
        return fail(400, Reason::bad_version);
      }

      case Scan::line_start: {
        const char c = p[i];
        if (c == '\r') {
          if (i + 1 == n) goto need_more;
          if (p[i + 1] != '\n') return fail(400, Reason::bare_cr);
          head_end_ = i + 2;
          scanned_ = head_end_;
          state_ = Scan::done;
          ParseResult result;
          result.state = ParseState::complete;
          result.head_bytes = head_end_;
          return result;
        }
        if (c == '\n') return fail(400, Reason::bare_lf);
        if (c == ' ' || c == '\t') return fail(400, Reason::obs_fold);
        if (++header_count_ > limits_.max_header_count) return fail(431, Reason::too_many_headers);
        if (i >= header_limit()) return fail(431, Reason::header_too_large);
        line_start_ = i;
        state_ = Scan::name;
        break;
      }

      case Scan::name: {
        const std::size_t limit = header_limit();
        const std::size_t end = std::min(n, limit);
        while (i < end && is(p[i], detail::kNameChar))
          ++i;
        if (i == n) goto need_more;
        if (i >= limit) return fail(431, Reason::header_too_large);
        const char c = p[i];
        if (c == ':') {
          if (i == line_start_) return fail(400, Reason::bad_header_name);
          ++i;
          state_ = Scan::value;
          break;
        }
        if (c == '_') return fail(400, Reason::header_underscore);
        if (c == '\n') return fail(400, Reason::bare_lf);
        if (is(c, detail::kControl) && c != '\r') return fail(400, Reason::control_char);
        // whitespace before the colon, a line without a colon, a separator in the name
        return fail(400, Reason::bad_header_name);
      }

      case Scan::value: {
        const std::size_t limit = header_limit();
        const std::size_t end = std::min(n, limit);
        while (i < end && is(p[i], detail::kFieldValue))
          ++i;
        if (i == n) goto need_more;
        if (i >= limit) return fail(431, Reason::header_too_large);
        const char c = p[i];
        if (c == '\r') {
          if (i + 1 == n) goto need_more;
          if (p[i + 1] != '\n') return fail(400, Reason::bare_cr);
          if (i + 1 >= limit) return fail(431, Reason::header_too_large);
          i += 2;
          ++lines_;
          line_start_ = i;
          state_ = Scan::line_start;
          break;
        }
        if (c == '\n') return fail(400, Reason::bare_lf);
        return fail(400, Reason::control_char);
      }

      case Scan::done:
      case Scan::failed:
        break;  // not reached: parse() handles both before scanning
    }
  }

need_more:
  scanned_ = i;
  return ParseResult{};
}

// Runs once per request, over a head the scan has already validated byte by byte: it only cuts
// the views and applies the rules that need the whole header set.
ParseResult RequestParser::finish(std::string_view buffered, RequestHead& head) {
  head.clear();
  const char* const p = buffered.data();

  head.method = buffered.substr(head_start_, method_end_ - head_start_);
  head.target = buffered.substr(method_end_ + 1, target_end_ - method_end_ - 1);
  const auto question = head.target.find('?');
  head.path = head.target.substr(0, question);
  if (question != std::string_view::npos) {
    head.has_query = true;
    head.query = head.target.substr(question + 1);
  }
  head.version_minor = version_minor_;

  head.headers.reserve(header_count_);
  std::size_t host_count = 0;
  std::size_t cl_count = 0;
  std::size_t te_count = 0;
  std::string_view cl_value;
  std::string_view te_value;
  bool bad_expect = false;
  bool expect_continue = false;

  const std::size_t end = head_end_ - 2;  // start of the final empty line
  std::size_t pos = headers_start_;
  while (pos < end) {
    const char* colon = static_cast<const char*>(std::memchr(p + pos, ':', end - pos));
    const char* cr = static_cast<const char*>(std::memchr(colon, '\r', p + end - colon));
    const std::string_view name(p + pos, static_cast<std::size_t>(colon - (p + pos)));
    const std::string_view value =
        detail::trim_ows(std::string_view(colon + 1, static_cast<std::size_t>(cr - colon - 1)));
    head.headers.push_back(Header{name, value});
    pos = static_cast<std::size_t>(cr - p) + 2;

    // Length first: most names are rejected without a comparison.
    switch (name.size()) {
      case 4:
        if (iequals(name, "Host")) {
          if (++host_count == 1) head.host = value;
        }
        break;
      case 6:
        if (iequals(name, "Expect")) {
          if (iequals(value, "100-continue")) {
            expect_continue = true;
          } else {
            bad_expect = true;
          }
        }
        break;
      case 10:
        if (iequals(name, "Connection")) head.connection.push_back(value);
        break;
      case 14:
        if (iequals(name, "Content-Length")) {
          ++cl_count;
          cl_value = value;
        }
        break;
      case 17:
        if (iequals(name, "Transfer-Encoding")) {
          ++te_count;
          te_value = value;
        }
        break;
      default:
        break;
    }
  }

  // Framing ambiguity first: it is what request smuggling is made of.
  if (cl_count > 0 && te_count > 0) return fail(400, Reason::smuggling_cl_te);
  if (cl_count > 1) return fail(400, Reason::multiple_content_length);
  std::uint64_t content_length = 0;
  if (cl_count == 1 && !parse_content_length(cl_value, content_length)) {
    return fail(400, Reason::bad_content_length);
  }
  if (te_count > 0 && (te_count > 1 || version_minor_ == 0 || !iequals(te_value, "chunked"))) {
    return fail(400, Reason::bad_transfer_encoding);
  }

  if (host_count > 1) return fail(400, Reason::multiple_host);
  if (host_count == 1 && !valid_host(head.host)) return fail(400, Reason::bad_host);
  if (host_count == 0 && version_minor_ == 1) return fail(400, Reason::missing_host);

  if (bad_expect) return fail(417, Reason::bad_expect);
  // RFC 9110 10.1.1: a 100-continue from an HTTP/1.0 client is ignored.
  head.expect_continue = expect_continue && version_minor_ == 1;

  bool close = false;
  bool keep_alive = false;
  for (const std::string_view value : head.connection) {
    for_each_list_element(value, [&](std::string_view option) {
      if (iequals(option, "close")) {
        close = true;
      } else if (iequals(option, "keep-alive")) {
        keep_alive = true;
      }
    });
  }
  head.keep_alive = !close && (version_minor_ == 1 || keep_alive);

  if (te_count > 0) {
    head.framing = BodyFraming::chunked;
  } else if (content_length > 0) {
    head.framing = BodyFraming::content_length;
  }
  head.content_length = content_length;
  head.declares_body = cl_count == 1 || head.framing == BodyFraming::chunked;

  ParseResult result;
  result.state = ParseState::complete;
  result.head_bytes = head_end_;
  return result;
}

}  // namespace portcullis::http
