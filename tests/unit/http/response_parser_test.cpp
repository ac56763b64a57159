#include "portcullis/http/response_parser.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace portcullis::http {
namespace {

using core::Reason;
using namespace std::literals;

ResponseParseResult parse(std::string_view text, ResponseHead& head, bool was_head = false,
                          ResponseParser parser = ResponseParser{}) {
  return parser.parse(text, was_head, head);
}

// Byte by byte into fresh buffers, then the answer for the whole text.
ResponseParseResult parse_bytewise(std::string_view text, ResponseHead& head, bool was_head = false,
                                   ResponseParser parser = ResponseParser{}) {
  ResponseParseResult r;
  for (std::size_t len = 1; len <= text.size(); ++len) {
    const std::string copy(text.substr(0, len));
    r = parser.parse(copy, was_head, head);
    if (r.state != ParseState::incomplete) break;
  }
  if (r.state == ParseState::complete) r = parser.parse(text, was_head, head);
  return r;
}

ResponseHead expect_ok(std::string_view text, bool was_head = false) {
  SCOPED_TRACE(std::string(text));
  ResponseHead head;
  const auto whole = parse(text, head, was_head);
  EXPECT_EQ(whole.state, ParseState::complete);
  EXPECT_EQ(whole.error, Reason::none);
  ResponseHead byte_head;
  const auto bytes = parse_bytewise(text, byte_head, was_head);
  EXPECT_EQ(bytes.state, whole.state);
  EXPECT_EQ(bytes.head_bytes, whole.head_bytes);
  EXPECT_EQ(byte_head.framing, head.framing);
  EXPECT_EQ(byte_head.keep_alive, head.keep_alive);
  return head;
}

void expect_bad(std::string_view text, bool was_head = false) {
  SCOPED_TRACE(testing::PrintToString(std::string(text)));
  ResponseHead head;
  const auto whole = parse(text, head, was_head);
  EXPECT_EQ(whole.state, ParseState::error);
  EXPECT_EQ(whole.error, Reason::upstream_bad_response);
  const auto bytes = parse_bytewise(text, head, was_head);
  EXPECT_EQ(bytes.state, ParseState::error);
  EXPECT_EQ(bytes.error, Reason::upstream_bad_response);
}

TEST(ResponseParser, ContentLengthResponse) {
  const std::string text =
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX_Legacy: y\r\nServer: \xE9t\xE9\r\n\r\nhello";
  const auto head = expect_ok(text);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.version_minor, 1);
  EXPECT_EQ(head.reason, "OK");
  EXPECT_EQ(head.framing, BodyFraming::content_length);
  EXPECT_EQ(head.content_length, 5u);
  EXPECT_TRUE(head.keep_alive);
  ASSERT_EQ(head.headers.size(), 3u);
  EXPECT_EQ(head.headers[1].name, "X_Legacy");
  ResponseHead h;
  EXPECT_EQ(parse(text, h).head_bytes, text.size() - 5);
}

TEST(ResponseParser, StatusLine) {
  EXPECT_EQ(expect_ok("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").reason, "Not Found");
  EXPECT_EQ(expect_ok("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").reason, "");
  EXPECT_EQ(expect_ok("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n").reason, "");
  EXPECT_EQ(expect_ok("HTTP/1.1 599 Odd\tBut \xB5K\r\nContent-Length: 0\r\n\r\n").status, 599);
  expect_bad("HTTP/1.1 20 OK\r\n\r\n");
  expect_bad("HTTP/1.1 2000 OK\r\n\r\n");
  expect_bad("HTTP/1.1 abc OK\r\n\r\n");
  expect_bad("HTTP/1.1 099 Low\r\n\r\n");
  expect_bad("HTTP/1.1 600 High\r\n\r\n");
  expect_bad("HTTP/2 200 OK\r\n\r\n");
  expect_bad("HTTP/1.2 200 OK\r\n\r\n");
  expect_bad("http/1.1 200 OK\r\n\r\n");
  expect_bad("HTTP/1.1  200 OK\r\n\r\n");
  expect_bad("HTTP/1.1 200\tOK\r\n\r\n");
  expect_bad("HTTP/1.1 200 O\x01K\r\n\r\n");
  expect_bad("\r\nHTTP/1.1 200 OK\r\n\r\n");
}

TEST(ResponseParser, NoBodyStatusesAndHead) {
  EXPECT_EQ(expect_ok("HTTP/1.1 204 No Content\r\n\r\n").framing, BodyFraming::none);
  EXPECT_EQ(expect_ok("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n").framing,
            BodyFraming::none);
  auto head = expect_ok("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true);
  EXPECT_EQ(head.framing, BodyFraming::none);
  EXPECT_TRUE(head.keep_alive);
  head = expect_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true);
  EXPECT_EQ(head.framing, BodyFraming::none);
  EXPECT_TRUE(head.keep_alive);
  head = expect_ok("HTTP/1.1 200 OK\r\n\r\n", true);
  EXPECT_EQ(head.framing, BodyFraming::none);
  EXPECT_TRUE(head.keep_alive);
}

TEST(ResponseParser, InformationalHeadsAreComplete) {
  const std::string text =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
  ResponseHead head;
  ResponseParser parser;
  auto r = parser.parse(text, false, head);
  ASSERT_EQ(r.state, ParseState::complete);
  EXPECT_EQ(head.status, 100);
  EXPECT_EQ(head.framing, BodyFraming::none);
  EXPECT_EQ(r.head_bytes, 25u);
  parser.reset();
  r = parser.parse(std::string_view(text).substr(r.head_bytes), false, head);
  ASSERT_EQ(r.state, ParseState::complete);
  EXPECT_EQ(head.status, 201);
  EXPECT_EQ(head.content_length, 2u);
}

TEST(ResponseParser, UntilClose) {
  auto head = expect_ok("HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_EQ(head.framing, BodyFraming::until_close);
  EXPECT_FALSE(head.keep_alive);
  head = expect_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
  EXPECT_EQ(head.framing, BodyFraming::until_close);
  EXPECT_FALSE(head.keep_alive);
}

TEST(ResponseParser, Chunked) {
  auto head = expect_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(head.framing, BodyFraming::chunked);
  EXPECT_TRUE(head.keep_alive);
  head = expect_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n");
  EXPECT_EQ(head.framing, BodyFraming::chunked);
  head =
      expect_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(head.framing, BodyFraming::chunked);
  expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;x=1\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n");
  expect_bad("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST(ResponseParser, ContentLengthRules) {
  expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
  expect_bad("HTTP/1.1 204 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n");
  auto head = expect_ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
  EXPECT_EQ(head.content_length, 5u);
  head = expect_ok("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n");
  EXPECT_EQ(head.framing, BodyFraming::content_length);
  EXPECT_EQ(head.content_length, 5u);
  head = expect_ok("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(head.framing, BodyFraming::none);
  EXPECT_TRUE(head.keep_alive);
}

TEST(ResponseParser, KeepAlive) {
  EXPECT_FALSE(expect_ok("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").keep_alive);
  EXPECT_TRUE(expect_ok("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n")
                  .keep_alive);
  EXPECT_FALSE(
      expect_ok("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: Close\r\n\r\n").keep_alive);
  const auto head = expect_ok(
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: x-a\r\nConnection: x-b\r\n\r\n");
  EXPECT_TRUE(head.keep_alive);
  ASSERT_EQ(head.connection.size(), 2u);
  EXPECT_EQ(head.connection[1], "x-b");
}

TEST(ResponseParser, MalformedLines) {
  expect_bad("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n");
  expect_bad("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nX : a\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\n: a\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n"sv);
  expect_bad("HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n");
  expect_bad("HTTP/1.1 200 OK\r\nX(: a\r\n\r\n");
}

TEST(ResponseParser, Limits) {
  const std::string head_text = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";  // 2 headers
  const std::size_t size = head_text.size();
  ResponseHead head;
  EXPECT_EQ(parse(head_text, head, false, ResponseParser(size, 2)).state, ParseState::complete);
  EXPECT_EQ(parse_bytewise(head_text, head, false, ResponseParser(size, 2)).state,
            ParseState::complete);
  EXPECT_EQ(parse(head_text, head, false, ResponseParser(size - 1, 2)).state, ParseState::error);
  EXPECT_EQ(parse(head_text, head, false, ResponseParser(size, 1)).state, ParseState::error);
  EXPECT_EQ(parse_bytewise(head_text, head, false, ResponseParser(size - 1, 2)).state,
            ParseState::error);
  EXPECT_EQ(parse_bytewise(head_text, head, false, ResponseParser(size, 1)).state,
            ParseState::error);
  // too big while still arriving
  ResponseParser parser(64, 10);
  const auto r = parser.parse("HTTP/1.1 200 OK\r\nX: " + std::string(100, 'a'), false, head);
  EXPECT_EQ(r.state, ParseState::error);
  EXPECT_EQ(r.error, Reason::upstream_bad_response);
  // and stays refused
  EXPECT_EQ(parser.parse("HTTP/1.1 200 OK\r\n\r\n", false, head).state, ParseState::error);
}

TEST(ResponseParser, ClearKeepsCapacity) {
  ResponseHead head;
  ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nConnection: close\r\n\r\n", head).state,
            ParseState::complete);
  const auto capacity = head.headers.capacity();
  head.clear();
  EXPECT_TRUE(head.headers.empty());
  EXPECT_TRUE(head.connection.empty());
  EXPECT_EQ(head.status, 0);
  EXPECT_EQ(head.headers.capacity(), capacity);
}

}  // namespace
}  // namespace portcullis::http
