#include "portcullis/http/response_parser.hpp"

#include "char_class.hpp"

namespace portcullis::http {
namespace {

using core::Reason;
using detail::is;

constexpr std::size_t kMaxContentLengthDigits = 18;

ResponseParseResult bad_response() {
  ResponseParseResult result;
  result.state = ParseState::error;
  result.error = Reason::upstream_bad_response;
  return result;
}

bool parse_decimal(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > kMaxContentLengthDigits) return false;
  std::uint64_t n = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = n;
  return true;
}

// "HTTP/1.x SP 3DIGIT [SP reason]" without its CRLF.
bool parse_status_line(std::string_view line, ResponseHead& head) {
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || (line[7] != '0' && line[7] != '1') ||
      line[8] != ' ') {
    return false;
  }
  int status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return false;
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || status > 599) return false;
  std::string_view reason;
  if (line.size() > 12) {
    if (line[12] != ' ') return false;
    reason = line.substr(13);
    for (const char c : reason) {
      if (!is(c, detail::kFieldValue)) return false;
    }
  }
  head.version_minor = line[7] - '0';
  head.status = status;
  head.reason = reason;
  return true;
}

}  // namespace

void ResponseHead::clear() {
  status = 0;
  version_minor = 1;
  reason = {};
  headers.clear();
  framing = BodyFraming::none;
  content_length = 0;
  keep_alive = true;
  connection.clear();
}

void ResponseParser::reset() {
  scanned_ = 0;
  line_start_ = 0;
  header_count_ = 0;
  head_end_ = 0;
  status_line_done_ = false;
  failed_ = false;
}

ResponseParseResult ResponseParser::parse(std::string_view buffered, bool request_was_head,
                                          ResponseHead& head) {
  if (failed_) return bad_response();
  if (buffered.size() < scanned_) reset();
  const auto fail = [this] {
    failed_ = true;
    return bad_response();
  };
  if (head_end_ == 0) {
    // Line structure, sizes and counts while the head arrives; field syntax once it is whole.
    const char* const p = buffered.data();
    const std::size_t n = buffered.size();
    std::size_t i = scanned_;
    for (;;) {
      while (i < n && p[i] != '\r' && p[i] != '\n')
        ++i;
      if (i >= max_head_bytes_ && i < n) return fail();
      if (i == n) {
        if (n > max_head_bytes_) return fail();
        scanned_ = i;
        return {};
      }
      if (p[i] == '\n') return fail();  // bare LF
      if (i + 1 == n) {
        scanned_ = i;
        return {};
      }
      if (p[i + 1] != '\n') return fail();  // bare CR
      if (i + 2 > max_head_bytes_) return fail();
      if (i == line_start_) {
        if (!status_line_done_) return fail();
        head_end_ = i + 2;
        scanned_ = head_end_;
        break;
      }
      if (status_line_done_) {
        if (p[line_start_] == ' ' || p[line_start_] == '\t') return fail();  // obs-fold
        if (++header_count_ > max_headers_) return fail();
      }
      status_line_done_ = true;
      i += 2;
      line_start_ = i;
    }
  }
  ResponseParseResult result = finish(buffered, request_was_head, head);
  if (result.state == ParseState::error) failed_ = true;
  return result;
}

ResponseParseResult ResponseParser::finish(std::string_view buffered, bool request_was_head,
                                           ResponseHead& head) {
  head.clear();
  const std::size_t status_end = buffered.find('\r');
  if (!parse_status_line(buffered.substr(0, status_end), head)) return bad_response();

  head.headers.reserve(header_count_);
  bool has_cl = false;
  std::uint64_t content_length = 0;
  bool has_te = false;
  bool te_chunked = false;  // the last transfer coding seen is chunked
  bool te_bad = false;

  const std::size_t end = head_end_ - 2;
  std::size_t pos = status_end + 2;
  while (pos < end) {
    const std::size_t cr = buffered.find('\r', pos);
    const std::string_view line = buffered.substr(pos, cr - pos);
    pos = cr + 2;
    std::size_t colon = 0;
    while (colon < line.size() && is(line[colon], detail::kToken))
      ++colon;
    if (colon == 0 || colon == line.size() || line[colon] != ':') return bad_response();
    const std::string_view name = line.substr(0, colon);
    const std::string_view raw_value = line.substr(colon + 1);
    for (const char c : raw_value) {
      if (!is(c, detail::kFieldValue)) return bad_response();
    }
    const std::string_view value = detail::trim_ows(raw_value);
    head.headers.push_back(Header{name, value});

    if (iequals(name, "Content-Length")) {
      // A list of identical values, or repeats of one value, collapse (RFC 9110 8.6).
      bool any = false;
      bool ok = true;
      for_each_list_element(value, [&](std::string_view element) {
        std::uint64_t n = 0;
        if (!parse_decimal(element, n) || (has_cl && n != content_length)) {
          ok = false;
          return;
        }
        has_cl = true;
        any = true;
        content_length = n;
      });
      if (!ok || !any) return bad_response();
    } else if (iequals(name, "Transfer-Encoding")) {
      has_te = true;
      bool any = false;
      for_each_list_element(value, [&](std::string_view coding) {
        any = true;
        if (te_chunked) te_bad = true;  // chunked must be applied once, last
        te_chunked = iequals(coding, "chunked");
        // "chunked;x" or "chunked ;x" would read as not chunked here but chunked elsewhere
        const auto semicolon = coding.find(';');
        if (!te_chunked && semicolon != std::string_view::npos &&
            iequals(detail::trim_ows(coding.substr(0, semicolon)), "chunked")) {
          te_bad = true;
        }
      });
      if (!any) te_bad = true;
    } else if (iequals(name, "Connection")) {
      head.connection.push_back(value);
    }
  }

  if (has_te && (has_cl || te_bad || head.version_minor == 0)) return bad_response();

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

  const bool no_body =
      request_was_head || head.status < 200 || head.status == 204 || head.status == 304;
  if (no_body) {
    head.framing = BodyFraming::none;
  } else if (has_te) {
    head.framing = te_chunked ? BodyFraming::chunked : BodyFraming::until_close;
  } else if (has_cl) {
    head.framing = content_length > 0 ? BodyFraming::content_length : BodyFraming::none;
    head.content_length = content_length;
  } else {
    head.framing = BodyFraming::until_close;
  }
  head.keep_alive =
      !close && (head.version_minor == 1 || keep_alive) && head.framing != BodyFraming::until_close;

  ResponseParseResult result;
  result.state = ParseState::complete;
  result.head_bytes = head_end_;
  return result;
}

}  // namespace portcullis::http
