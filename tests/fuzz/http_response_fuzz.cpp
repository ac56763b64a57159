// Fuzz target for the upstream response-head parser, for a GET and a HEAD request: parsed whole and
// byte by byte (both must agree), with the invariants the forwarding code relies on.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "portcullis/http/response_parser.hpp"

namespace {

using namespace portcullis;
using http::ParseState;

void check_response(std::string_view input, bool request_was_head) {
  http::ResponseHead whole_head;
  http::ResponseParser whole_parser(1024, 16);
  const auto whole = whole_parser.parse(input, request_was_head, whole_head);
  http::ResponseHead split_head;
  http::ResponseParser split_parser(1024, 16);
  http::ResponseParseResult split;
  for (std::size_t len = 0; len <= input.size(); ++len) {
    split = split_parser.parse(input.substr(0, len), request_was_head, split_head);
    if (split.state != ParseState::incomplete) break;
  }
  FUZZ_CHECK(split.state == whole.state && split.head_bytes == whole.head_bytes);
  FUZZ_CHECK(split.error == whole.error);
  if (whole.state == ParseState::error) {
    FUZZ_CHECK(whole.error == core::Reason::upstream_bad_response);
  } else if (whole.state == ParseState::complete) {
    FUZZ_CHECK(whole.head_bytes <= input.size() && whole.head_bytes <= 1024);
    FUZZ_CHECK(whole_head.status >= 100 && whole_head.status <= 599);
    FUZZ_CHECK(whole_head.headers.size() <= 16);
    FUZZ_CHECK(whole_head.framing != http::BodyFraming::until_close || !whole_head.keep_alive);
    FUZZ_CHECK(split_head.framing == whole_head.framing);
    FUZZ_CHECK(split_head.content_length == whole_head.content_length);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_response(input, false);
  check_response(input, true);
  return 0;
}
