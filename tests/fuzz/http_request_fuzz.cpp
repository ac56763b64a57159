// Fuzz target for the request-head parser: parsed whole and byte by byte over a growing buffer
// (both must agree), the parsed head's invariants, then the normalised path and, for a chunked
// request, the body through the chunked decoder.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/http_checks.hpp"

namespace {

using namespace portcullis;
using fuzz::check_chunked;
using fuzz::check_head;
using fuzz::check_path;
using http::ParseState;

void check_request(std::string_view input) {
  http::HeadLimits limits;
  limits.max_uri_bytes = 512;
  limits.max_header_bytes = 1024;
  limits.max_header_count = 16;

  http::RequestHead whole_head;
  http::RequestParser whole_parser(limits);
  const http::ParseResult whole = whole_parser.parse(input, whole_head);
  check_head(input, whole, whole_head);

  // byte by byte over the same growing buffer must reach the same answer
  http::RequestHead split_head;
  http::RequestParser split_parser(limits);
  http::ParseResult split;
  for (std::size_t len = 0; len <= input.size(); ++len) {
    split = split_parser.parse(input.substr(0, len), split_head);
    if (split.state != ParseState::incomplete) break;
  }
  FUZZ_CHECK(split.state == whole.state);
  FUZZ_CHECK(split.head_bytes == whole.head_bytes);
  FUZZ_CHECK(split.reply.status == whole.reply.status);
  FUZZ_CHECK(split.reply.reason == whole.reply.reason);
  FUZZ_CHECK(split.reply.close_connection == whole.reply.close_connection);
  if (whole.state == ParseState::complete) {
    FUZZ_CHECK(split_head.method == whole_head.method);
    FUZZ_CHECK(split_head.target == whole_head.target);
    FUZZ_CHECK(split_head.headers.size() == whole_head.headers.size());
    FUZZ_CHECK(split_head.framing == whole_head.framing);
    FUZZ_CHECK(split_head.content_length == whole_head.content_length);
    FUZZ_CHECK(split_head.keep_alive == whole_head.keep_alive);
    FUZZ_CHECK(split_head.expect_continue == whole_head.expect_continue);

    check_path(whole_head.path);
    const std::string_view body = input.substr(whole.head_bytes);
    if (whole_head.framing == http::BodyFraming::chunked) check_chunked(body);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  check_request(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
