#pragma once
// Strict HTTP/1.1 request-head parsing. The gateway refuses anything a lenient server and a
// strict one could read differently (request smuggling, header injection), and enforces the URI,
// header-size and header-count limits while the head arrives, before any memory is committed.
//
// Refused with 400 and the connection closed: bare LF or bare CR, obs-fold, control characters,
// whitespace before a header colon, invalid header names (and names with '_', which some
// back ends fold into '-'), both Content-Length and Transfer-Encoding, repeated or malformed
// Content-Length, any Transfer-Encoding other than a single `chunked` (and any on HTTP/1.0),
// a missing, repeated or malformed Host, a request-target that is not origin-form or holds bytes
// outside RFC 3986, and an HTTP version other than 1.0/1.1. An Expect other than 100-continue
// is answered 417 (and the connection closed by the gateway, like every refusal).
// 414 when the request line exceeds max_uri_bytes; 431 when the header lines exceed
// max_header_bytes or their number exceeds max_header_count.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "portcullis/core/errors.hpp"
#include "portcullis/http/headers.hpp"

namespace portcullis::http {

enum class BodyFraming : std::uint8_t {
  none,            // no body
  content_length,  // exactly content_length bytes
  chunked,         // chunked transfer coding
  until_close,     // responses only: body ends when the upstream closes
};

struct HeadLimits {
  std::size_t max_uri_bytes = 8 * 1024;      // request-target length
  std::size_t max_header_bytes = 16 * 1024;  // all header lines together, CRLFs included
  std::size_t max_header_count = 100;
};

// A parsed request head. All views point into the buffer that was passed to the parser; they
// stay valid while that buffer is neither freed nor moved.
struct RequestHead {
  std::string_view method;
  std::string_view target;  // request-target exactly as received
  std::string_view path;    // target up to '?'
  std::string_view query;   // after '?', without it; empty when there is none
  bool has_query = false;
  int version_minor = 1;        // HTTP/1.<version_minor>, 0 or 1
  std::vector<Header> headers;  // in arrival order, every header including Host
  std::string_view host;        // the one Host value
  BodyFraming framing = BodyFraming::none;
  std::uint64_t content_length = 0;  // when framing == content_length
  bool declares_body = false;  // a body was announced, even "Content-Length: 0" (framing none)
  bool keep_alive = true;      // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive
  bool expect_continue = false;              // "Expect: 100-continue"
  std::vector<std::string_view> connection;  // every Connection header value

  void clear();
};

enum class ParseState : std::uint8_t { incomplete, complete, error };

struct ParseResult {
  ParseState state = ParseState::incomplete;
  std::size_t head_bytes = 0;  // when complete: bytes of the head, final CRLFCRLF included
  core::LocalReply reply;      // when error: 400/414/431 with its reason, close_connection = true
};

// Incremental: call parse() with everything buffered so far for this request (the buffer may
// grow between calls but must keep its earlier bytes in place). Work already done is not
// repeated, so a head that trickles in byte by byte costs linear time. Up to a few empty lines
// (CRLF) before the request line are skipped, as RFC 9112 allows.
class RequestParser {
 public:
  explicit RequestParser(const HeadLimits& limits) : limits_(limits) {}

  ParseResult parse(std::string_view buffered, RequestHead& head);
  // Forget progress, ready for the next request on the same connection.
  void reset();

 private:
  HeadLimits limits_;
  std::size_t scanned_ = 0;     // bytes already checked for the end of the head
  std::size_t line_start_ = 0;  // start of the line being scanned
  std::size_t head_start_ = 0;  // first byte after skipped leading empty lines
  std::size_t lines_ = 0;       // complete lines seen, request line included
  bool request_line_done_ = false;

  // Where the incremental scan stands: one state per part of the head.
  enum class Scan : std::uint8_t {
    leading,
    method,
    target,
    version,
    line_start,
    name,
    value,
    done,
    failed
  };
  ParseResult fail(int status, core::Reason reason);
  ParseResult finish(std::string_view buffered, RequestHead& head);
  ParseResult scan(std::string_view buffered);

  Scan state_ = Scan::leading;
  std::size_t skipped_lines_ = 0;  // empty lines before the request line
  std::size_t part_len_ = 0;       // bytes of the request-line part being scanned
  std::size_t method_end_ = 0;     // offset of the SP after the method
  std::size_t target_end_ = 0;     // offset of the SP after the target
  std::size_t headers_start_ = 0;  // first byte of the header lines
  std::size_t head_end_ = 0;       // one past the final CRLF
  std::size_t header_count_ = 0;
  int version_minor_ = 1;
  core::LocalReply error_;
};

}  // namespace portcullis::http
