#pragma once
// Upstream response-head parsing. Upstreams are trusted more than clients but not blindly: a
// response whose framing is ambiguous (Content-Length with Transfer-Encoding, conflicting lengths)
// is refused (502) rather than passed on, so a confused back end cannot desynchronise the
// client connection.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "portcullis/http/request_parser.hpp"

namespace portcullis::http {

struct ResponseHead {
  int status = 0;
  int version_minor = 1;
  std::string_view reason;
  std::vector<Header> headers;  // in arrival order
  BodyFraming framing = BodyFraming::none;
  std::uint64_t content_length = 0;
  // false when the upstream will close (Connection: close, HTTP/1.0, until_close)
  bool keep_alive = true;
  std::vector<std::string_view> connection;  // every Connection header value

  void clear();
};

struct ResponseParseResult {
  ParseState state = ParseState::incomplete;
  std::size_t head_bytes = 0;
  core::Reason error = core::Reason::none;  // upstream_bad_response when state == error
};

// Incremental like RequestParser. Framing follows RFC 9112 section 6.3: responses to HEAD and
// 1xx/204/304 have no body; chunked if Transfer-Encoding ends in chunked; until_close for any
// other Transfer-Encoding or when neither header is present; else Content-Length.
class ResponseParser {
 public:
  explicit ResponseParser(std::size_t max_head_bytes = 64 * 1024, std::size_t max_headers = 200)
      : max_head_bytes_(max_head_bytes), max_headers_(max_headers) {}

  ResponseParseResult parse(std::string_view buffered, bool request_was_head, ResponseHead& head);
  void reset();

 private:
  std::size_t max_head_bytes_;
  std::size_t max_headers_;
  std::size_t scanned_ = 0;

  ResponseParseResult finish(std::string_view buffered, bool request_was_head, ResponseHead& head);
  std::size_t line_start_ = 0;    // start of the line being scanned
  std::size_t header_count_ = 0;  // header lines started
  std::size_t head_end_ = 0;      // one past the final CRLF once found
  bool status_line_done_ = false;
  bool failed_ = false;
};

}  // namespace portcullis::http
