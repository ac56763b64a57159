#include "portcullis/http/request_parser.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::http {
namespace {

using core::Reason;
using namespace std::literals;

struct Outcome {
  ParseState state = ParseState::incomplete;
  std::size_t head_bytes = 0;
  int status = 0;
  Reason reason = Reason::none;
  bool close = false;
};

bool operator==(const Outcome& a, const Outcome& b) {
  return a.state == b.state && a.head_bytes == b.head_bytes && a.status == b.status &&
         a.reason == b.reason && a.close == b.close;
}

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  return os << "{state=" << static_cast<int>(o.state) << " head_bytes=" << o.head_bytes
            << " status=" << o.status << " reason=" << core::to_string(o.reason)
            << " close=" << o.close << "}";
}

Outcome to_outcome(const ParseResult& r) {
  return Outcome{r.state, r.head_bytes, r.reply.status, r.reply.reason, r.reply.close_connection};
}

Outcome parse_whole(std::string_view text, RequestHead& head, const HeadLimits& limits = {}) {
  RequestParser parser(limits);
  return to_outcome(parser.parse(text, head));
}

// Feeds growing prefixes, each in a freshly allocated buffer, so the parser cannot rely on
// views it took from an earlier call. Stops at the first answer that is not `incomplete`.
Outcome parse_bytewise(std::string_view text, RequestHead& head, const HeadLimits& limits = {}) {
  RequestParser parser(limits);
  Outcome last;
  for (std::size_t len = 1; len <= text.size(); ++len) {
    const std::string copy(text.substr(0, len));
    last = to_outcome(parser.parse(copy, head));
    if (last.state != ParseState::incomplete) {
      // views must point into the caller's buffer: re-parse the final buffer to keep them valid
      if (last.state == ParseState::complete) {
        RequestParser again(limits);
        return to_outcome(again.parse(text, head));
      }
      return last;
    }
  }
  return last;
}

// Feeds the text in two pieces split at `cut`, same parser.
Outcome parse_split(std::string_view text, std::size_t cut, RequestHead& head,
                    const HeadLimits& limits = {}) {
  RequestParser parser(limits);
  const auto first = to_outcome(parser.parse(text.substr(0, cut), head));
  if (first.state != ParseState::incomplete) return first;
  return to_outcome(parser.parse(text, head));
}

// Whole, byte by byte and split at every point must agree.
Outcome parse_all_ways(std::string_view text, const HeadLimits& limits = {}) {
  RequestHead head;
  const Outcome whole = parse_whole(text, head, limits);
  EXPECT_EQ(parse_bytewise(text, head, limits), whole) << "bytewise differs";
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    const Outcome split = parse_split(text, cut, head, limits);
    if (!(split == whole)) {
      ADD_FAILURE() << "split at " << cut << " differs: " << split << " vs " << whole;
      break;
    }
  }
  return whole;
}

void expect_error(std::string_view text, int status, Reason reason, const HeadLimits& limits = {}) {
  SCOPED_TRACE(testing::Message() << "request: " << testing::PrintToString(std::string(text)));
  const Outcome o = parse_all_ways(text, limits);
  EXPECT_EQ(o.state, ParseState::error);
  EXPECT_EQ(o.status, status);
  EXPECT_EQ(core::to_string(o.reason), core::to_string(reason));
  EXPECT_EQ(o.close, status != 417);
}

void expect_400(std::string_view text, Reason reason) {
  expect_error(text, 400, reason);
}

// Keeps request texts alive for the whole test run, so returned heads never dangle.
std::string_view keep(std::string_view text) {
  static std::deque<std::string> texts;
  return texts.emplace_back(text);
}

RequestHead expect_ok(std::string_view text, const HeadLimits& limits = {}) {
  SCOPED_TRACE(testing::Message() << "request: " << testing::PrintToString(std::string(text)));
  const Outcome o = parse_all_ways(text, limits);
  EXPECT_EQ(o.state, ParseState::complete) << o;
  RequestHead head;
  RequestParser parser(limits);
  parser.parse(keep(text), head);
  return head;
}

// Builds "<method> <target> HTTP/1.1\r\nHost: h\r\n<extra>\r\n".
std::string request(std::string_view extra_headers, std::string_view line = "GET / HTTP/1.1") {
  std::string s(line);
  s += "\r\nHost: example.com\r\n";
  s += extra_headers;
  s += "\r\n";
  return s;
}

// ---- accepted ----------------------------------------------------------------------------------

TEST(RequestParser, ParsesSimpleGet) {
  const std::string text =
      "GET /api/accounts?id=7&x=%20 HTTP/1.1\r\nHost: bank.example\r\nAccept:  */* \r\n"
      "X-Empty:\r\n\r\n";
  RequestHead head;
  RequestParser parser{HeadLimits{}};
  const auto r = parser.parse(text, head);
  ASSERT_EQ(r.state, ParseState::complete);
  EXPECT_EQ(r.head_bytes, text.size());
  EXPECT_EQ(head.method, "GET");
  EXPECT_EQ(head.target, "/api/accounts?id=7&x=%20");
  EXPECT_EQ(head.path, "/api/accounts");
  EXPECT_EQ(head.query, "id=7&x=%20");
  EXPECT_TRUE(head.has_query);
  EXPECT_EQ(head.version_minor, 1);
  EXPECT_EQ(head.host, "bank.example");
  ASSERT_EQ(head.headers.size(), 3u);
  EXPECT_EQ(head.headers[0].name, "Host");
  EXPECT_EQ(head.headers[1].name, "Accept");
  EXPECT_EQ(head.headers[1].value, "*/*");
  EXPECT_EQ(head.headers[2].name, "X-Empty");
  EXPECT_EQ(head.headers[2].value, "");
  EXPECT_EQ(head.framing, BodyFraming::none);
  EXPECT_EQ(head.content_length, 0u);
  EXPECT_TRUE(head.keep_alive);
  EXPECT_FALSE(head.expect_continue);
  EXPECT_TRUE(head.connection.empty());
  // views into the caller's buffer
  EXPECT_EQ(head.method.data(), text.data());
  EXPECT_GE(head.headers[1].value.data(), text.data());
  EXPECT_LE(head.headers[1].value.data() + head.headers[1].value.size(), text.data() + text.size());
}

TEST(RequestParser, AllWaysAgreeOnValidRequest) {
  expect_ok(request("Accept: text/html\r\nContent-Length: 3\r\n", "POST /a/b?c=d HTTP/1.1"));
}

TEST(RequestParser, PipelinedBytesAreNotPartOfTheHead) {
  const std::string first = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string text = first + "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
  RequestHead head;
  RequestParser parser{HeadLimits{}};
  auto r = parser.parse(text, head);
  ASSERT_EQ(r.state, ParseState::complete);
  EXPECT_EQ(r.head_bytes, first.size());
  EXPECT_EQ(head.path, "/1");
  parser.reset();
  r = parser.parse(std::string_view(text).substr(r.head_bytes), head);
  ASSERT_EQ(r.state, ParseState::complete);
  EXPECT_EQ(head.path, "/2");
}

TEST(RequestParser, EmptyQueryIsStillAQuery) {
  auto head = expect_ok(request("", "GET /x? HTTP/1.1"));
  EXPECT_EQ(head.path, "/x");
  EXPECT_TRUE(head.has_query);
  EXPECT_EQ(head.query, "");
  head = expect_ok(request("", "GET /x HTTP/1.1"));
  EXPECT_FALSE(head.has_query);
  head = expect_ok(request("", "GET /x?a?b=/c HTTP/1.1"));
  EXPECT_EQ(head.path, "/x");
  EXPECT_EQ(head.query, "a?b=/c");
}

TEST(RequestParser, TargetAcceptsEveryAllowedCharacter) {
  const auto head =
      expect_ok(request("", "GET /azAZ09-._~!$&'()*+,;=:@/%41?q=/?:@!$&'()*+,;=%zz HTTP/1.1"));
  EXPECT_EQ(head.path, "/azAZ09-._~!$&'()*+,;=:@/%41");
}

TEST(RequestParser, Http10WithoutHost) {
  auto head = expect_ok("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(head.version_minor, 0);
  EXPECT_EQ(head.host, "");
  EXPECT_FALSE(head.keep_alive);
  head = expect_ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
  EXPECT_TRUE(head.keep_alive);
  head = expect_ok("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n");
  EXPECT_FALSE(head.keep_alive);
  head = expect_ok("GET / HTTP/1.0\r\nHost: a.example\r\n\r\n");
  EXPECT_EQ(head.host, "a.example");
}

TEST(RequestParser, ConnectionHeaders) {
  auto head = expect_ok(request("Connection: close\r\n"));
  EXPECT_FALSE(head.keep_alive);
  head = expect_ok(request("Connection: X-Foo, CLOSE\r\nConnection: TE\r\n"));
  EXPECT_FALSE(head.keep_alive);
  ASSERT_EQ(head.connection.size(), 2u);
  EXPECT_EQ(head.connection[0], "X-Foo, CLOSE");
  EXPECT_EQ(head.connection[1], "TE");
  head = expect_ok(request("Connection: keep-alive, closed\r\n"));
  EXPECT_TRUE(head.keep_alive);
}

TEST(RequestParser, ContentLength) {
  auto head = expect_ok(request("Content-Length: 42\r\n", "POST / HTTP/1.1"));
  EXPECT_EQ(head.framing, BodyFraming::content_length);
  EXPECT_EQ(head.content_length, 42u);
  EXPECT_TRUE(head.declares_body);
  head = expect_ok(request("Content-Length: 0\r\n", "POST / HTTP/1.1"));
  EXPECT_EQ(head.framing, BodyFraming::none);
  EXPECT_EQ(head.content_length, 0u);
  EXPECT_TRUE(head.declares_body);  // an empty body is still a body (validation needs to know)
  EXPECT_FALSE(expect_ok(request("", "POST / HTTP/1.1")).declares_body);
  EXPECT_TRUE(
      expect_ok(request("Transfer-Encoding: chunked\r\n", "POST / HTTP/1.1")).declares_body);
  head = expect_ok(request("Content-Length: 007\r\n"));
  EXPECT_EQ(head.content_length, 7u);
  head = expect_ok(request("Content-Length:\t12 \t\r\n"));
  EXPECT_EQ(head.content_length, 12u);
  head = expect_ok(request("content-length: 999999999999999999\r\n"));
  EXPECT_EQ(head.content_length, 999999999999999999u);
  head = expect_ok("POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n");
  EXPECT_EQ(head.framing, BodyFraming::content_length);
}

TEST(RequestParser, ChunkedTransferEncoding) {
  auto head = expect_ok(request("Transfer-Encoding: chunked\r\n", "POST / HTTP/1.1"));
  EXPECT_EQ(head.framing, BodyFraming::chunked);
  head = expect_ok(request("transfer-encoding:   ChUnKeD  \r\n"));
  EXPECT_EQ(head.framing, BodyFraming::chunked);
  head = expect_ok(request("Transfer-Encoding:\tchunked\t\r\n"));
  EXPECT_EQ(head.framing, BodyFraming::chunked);
}

TEST(RequestParser, ExpectContinue) {
  auto head = expect_ok(request("Expect: 100-Continue\r\nContent-Length: 5\r\n"));
  EXPECT_TRUE(head.expect_continue);
  head = expect_ok("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  EXPECT_FALSE(head.expect_continue);  // ignored for HTTP/1.0 clients
}

TEST(RequestParser, SkipsUpToFourLeadingEmptyLines) {
  const std::string text = std::string("\r\n\r\n\r\n\r\n") + request("");
  const auto head = expect_ok(text);
  EXPECT_EQ(head.method, "GET");
  RequestHead h;
  EXPECT_EQ(parse_whole(text, h).head_bytes, text.size());
  expect_400(std::string("\r\n\r\n\r\n\r\n\r\n") + request(""), Reason::bad_request_line);
  expect_400(std::string("\n") + request(""), Reason::bare_lf);
  expect_400(std::string("\r\r\n") + request(""), Reason::bare_cr);
}

TEST(RequestParser, HeaderValuesKeepObsTextAndInnerWhitespace) {
  const auto head = expect_ok(request("X-Name: J\xC3\xBCrgen  M\xFC\tller\r\nX-Q: \"a:b\"\r\n"));
  EXPECT_EQ(head.headers[1].value, "J\xC3\xBCrgen  M\xFC\tller");
  EXPECT_EQ(head.headers[2].value, "\"a:b\"");
}

TEST(RequestParser, MethodIsAnyTokenUpTo32Chars) {
  expect_ok(request("", "PROPFIND / HTTP/1.1"));
  expect_ok(request("", "get / HTTP/1.1"));
  expect_ok(request("", std::string(32, 'M') + " / HTTP/1.1"));
  expect_400(request("", std::string(33, 'M') + " / HTTP/1.1"), Reason::bad_method);
}

TEST(RequestParser, ValidHosts) {
  for (const char* host :
       {"example.com", "example.com:8443", "EXAMPLE.com.", "127.0.0.1", "127.0.0.1:80", "[::1]",
        "[::1]:443", "[2001:db8::1]", "[::ffff:192.0.2.1]:8080", "a-b_c~d", "localhost:65535"}) {
    SCOPED_TRACE(host);
    const auto head = expect_ok("GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n");
    EXPECT_EQ(head.host, host);
  }
}

TEST(RequestParser, ClearKeepsCapacity) {
  RequestHead head;
  RequestParser parser{HeadLimits{}};
  const std::string text = request("A: 1\r\nB: 2\r\nConnection: close\r\n");
  ASSERT_EQ(parser.parse(text, head).state, ParseState::complete);
  const auto capacity = head.headers.capacity();
  EXPECT_GE(capacity, 4u);
  head.clear();
  EXPECT_TRUE(head.headers.empty());
  EXPECT_TRUE(head.connection.empty());
  EXPECT_EQ(head.headers.capacity(), capacity);
  EXPECT_TRUE(head.keep_alive);
  EXPECT_EQ(head.method, "");
  parser.reset();
  ASSERT_EQ(parser.parse(text, head).state, ParseState::complete);
  EXPECT_EQ(head.headers.capacity(), capacity);  // no new allocation for the same request
}

TEST(RequestParser, ParseAfterCompleteOrErrorIsStable) {
  RequestHead head;
  RequestParser parser{HeadLimits{}};
  const std::string ok = request("");
  EXPECT_EQ(parser.parse(ok, head).state, ParseState::complete);
  EXPECT_EQ(parser.parse(ok, head).state, ParseState::complete);
  EXPECT_EQ(head.method, "GET");
  RequestParser bad{HeadLimits{}};
  EXPECT_EQ(bad.parse("GET / HTTP/1.1\n", head).reply.reason, Reason::bare_lf);
  const auto again = bad.parse("GET / HTTP/1.1\nHost: a\r\n\r\n", head);
  EXPECT_EQ(again.state, ParseState::error);
  EXPECT_EQ(again.reply.reason, Reason::bare_lf);
  bad.reset();
  EXPECT_EQ(bad.parse(ok, head).state, ParseState::complete);
}

TEST(RequestParser, IncompleteUntilTheEmptyLine) {
  RequestHead head;
  RequestParser parser{HeadLimits{}};
  EXPECT_EQ(parser.parse("", head).state, ParseState::incomplete);
  EXPECT_EQ(parser.parse("GET / HTTP/1.1\r\nHost: a\r\n", head).state, ParseState::incomplete);
  EXPECT_EQ(parser.parse("GET / HTTP/1.1\r\nHost: a\r\n\r", head).state, ParseState::incomplete);
  EXPECT_EQ(parser.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n", head).state, ParseState::complete);
}

// ---- line endings ------------------------------------------------------------------------------

TEST(RequestParser, BareLfIsRefusedImmediately) {
  RequestHead head;
  RequestParser parser{HeadLimits{}};
  // the head is not complete yet, but a bare LF already decides
  const auto r = parser.parse("GET / HTTP/1.1\nHost: a", head);
  EXPECT_EQ(r.state, ParseState::error);
  EXPECT_EQ(r.reply.reason, Reason::bare_lf);
  EXPECT_EQ(r.reply.status, 400);
  EXPECT_TRUE(r.reply.close_connection);

  expect_400("GET / HTTP/1.1\nHost: a\n\n", Reason::bare_lf);
  expect_400("GET / HTTP/1.1\r\nHost: a\n\r\n", Reason::bare_lf);
  expect_400("GET / HTTP/1.1\r\nHost: a\r\n\n", Reason::bare_lf);
  expect_400("GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n", Reason::bare_lf);
  expect_400("GET / HTTP/1.1\r\nHost\n: a\r\n\r\n", Reason::bare_lf);
  expect_400("GET /\n HTTP/1.1\r\n\r\n", Reason::bare_lf);
  expect_400("GET\n/ HTTP/1.1\r\n\r\n", Reason::bare_lf);
  expect_400("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\n", Reason::bare_lf);
}

TEST(RequestParser, BareCrIsRefused) {
  expect_400("GET / HTTP/1.1\rHost: a\r\n\r\n", Reason::bare_cr);
  expect_400("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", Reason::bare_cr);
  expect_400("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", Reason::bare_cr);
  expect_400("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", Reason::bare_cr);
  // a CR at the end of what has arrived waits for the next byte
  RequestHead head;
  RequestParser parser{HeadLimits{}};
  EXPECT_EQ(parser.parse("GET / HTTP/1.1\r", head).state, ParseState::incomplete);
  EXPECT_EQ(parser.parse("GET / HTTP/1.1\rX", head).reply.reason, Reason::bare_cr);
}

// ---- request line ------------------------------------------------------------------------------

TEST(RequestParser, RequestLineSeparators) {
  expect_400(request("", "GET  / HTTP/1.1"), Reason::bad_request_line);
  expect_400(request("", "GET /  HTTP/1.1"), Reason::bad_request_line);
  expect_400(request("", "GET / HTTP/1.1 "), Reason::bad_request_line);
  expect_400(request("", " GET / HTTP/1.1"), Reason::bad_request_line);
  expect_400(request("", "GET\t/ HTTP/1.1"), Reason::bad_request_line);
  expect_400(request("", "GET /\tHTTP/1.1"), Reason::bad_request_line);
  expect_400(request("", "GET / HTTP/1.1\t"), Reason::bad_request_line);
  expect_400(request("", "GET / HTTP/1.1 extra"), Reason::bad_request_line);
  expect_400("GET /\r\n\r\n", Reason::bad_request_line);  // HTTP/0.9
  expect_400("GET\r\n\r\n", Reason::bad_request_line);
  expect_400("GET \r\n\r\n", Reason::bad_request_line);
}

TEST(RequestParser, BadMethod) {
  expect_400(request("", "G(T / HTTP/1.1"), Reason::bad_method);
  expect_400(request("", "GE\"T / HTTP/1.1"), Reason::bad_method);
  expect_400(request("", "G\xC9T / HTTP/1.1"), Reason::bad_method);
  expect_400("G\0T / HTTP/1.1\r\nHost: a\r\n\r\n"sv, Reason::bad_method);
  // a TLS ClientHello sent to the plain listener
  expect_400("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"sv, Reason::bad_method);
}

TEST(RequestParser, TargetMustBeOriginForm) {
  expect_400(request("", "GET http://evil.example/ HTTP/1.1"), Reason::bad_target);
  expect_400(request("", "GET HTTP://evil.example/ HTTP/1.1"), Reason::bad_target);
  expect_400(request("", "CONNECT bank.example:443 HTTP/1.1"), Reason::bad_target);
  expect_400(request("", "OPTIONS * HTTP/1.1"), Reason::bad_target);
  expect_400("GET ?x HTTP/1.1\r\nHost: a\r\n\r\n", Reason::bad_target);
  expect_400("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", Reason::bad_target);
  expect_400("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Reason::bad_target);
}

TEST(RequestParser, TargetCharacters) {
  for (const char c : "\"<>\\^`{|}#[] \x7f\x01\x0b"sv) {
    if (c == ' ') continue;
    SCOPED_TRACE(static_cast<int>(static_cast<unsigned char>(c)));
    std::string line = "GET /a";
    line += c;
    line += "b HTTP/1.1";
    expect_400(request("", line), Reason::bad_target);
  }
  expect_400(request("", "GET /caf\xC3\xA9 HTTP/1.1"), Reason::bad_target);
  expect_400(request("", "GET /a\x80 HTTP/1.1"), Reason::bad_target);
  expect_400("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"sv, Reason::bad_target);
  expect_400(request("", "GET /a?q=<script> HTTP/1.1"), Reason::bad_target);
}

TEST(RequestParser, Version) {
  for (const char* version : {"HTTP/1.2", "HTTP/2.0", "HTTP/2", "http/1.1", "HTTP/1.1x", "HTTP/1.",
                              "HTTP/1.11", "HTTP/0.9", "HTTPS/1.1", "HTTP/1,1"}) {
    SCOPED_TRACE(version);
    expect_400(request("", std::string("GET / ") + version), Reason::bad_version);
  }
}

// ---- header lines ------------------------------------------------------------------------------

TEST(RequestParser, WhitespaceBeforeColon) {
  expect_400(request("Transfer-Encoding : chunked\r\n"), Reason::bad_header_name);
  expect_400(request("Transfer-Encoding\t: chunked\r\n"), Reason::bad_header_name);
  expect_400("GET / HTTP/1.1\r\nHost : a\r\n\r\n", Reason::bad_header_name);
}

TEST(RequestParser, BadHeaderNames) {
  expect_400(request(": value\r\n"), Reason::bad_header_name);
  expect_400(request("No-Colon\r\n"), Reason::bad_header_name);
  expect_400(request("Fo(o: x\r\n"), Reason::bad_header_name);
  expect_400(request("Fo\"o: x\r\n"), Reason::bad_header_name);
  expect_400(request("Fo/o: x\r\n"), Reason::bad_header_name);
  expect_400(request("Fo\xC3\xA9: x\r\n"), Reason::bad_header_name);
  expect_400(request("X Y: x\r\n"), Reason::bad_header_name);
}

TEST(RequestParser, UnderscoreInName) {
  expect_400(request("X_Forwarded_For: 1.2.3.4\r\n"), Reason::header_underscore);
  expect_400(request("_: 1\r\n"), Reason::header_underscore);
  expect_400(request("Content_Length: 5\r\n"), Reason::header_underscore);
}

TEST(RequestParser, ControlCharacters) {
  expect_400(request("X-A: a\0b\r\n"sv), Reason::control_char);
  expect_400(request("X-A: \0\r\n"sv), Reason::control_char);
  expect_400(request("X-A\0: b\r\n"sv), Reason::control_char);
  expect_400(request("X-A: a\x7f\r\n"), Reason::control_char);
  expect_400(request("X-A: a\x0b\r\n"), Reason::control_char);
  expect_400(request("X-A: a\x1b[31m\r\n"), Reason::control_char);
  expect_400(request("Transfer-Encoding: chunked\x0b\r\n"), Reason::control_char);
  expect_400(request("Content-Length: 5\x0c\r\n"), Reason::control_char);
}

TEST(RequestParser, ObsFold) {
  expect_400(request("Transfer-Encoding:\r\n chunked\r\n"), Reason::obs_fold);
  expect_400(request("X-A: a\r\n\tb\r\n"), Reason::obs_fold);
  expect_400("GET / HTTP/1.1\r\n Host: a\r\n\r\n", Reason::obs_fold);
  expect_400("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", Reason::obs_fold);
}

// ---- Host --------------------------------------------------------------------------------------

TEST(RequestParser, Host) {
  expect_400("GET / HTTP/1.1\r\n\r\n", Reason::missing_host);
  expect_400("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", Reason::missing_host);
  expect_400("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", Reason::multiple_host);
  expect_400("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", Reason::multiple_host);
  expect_400("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", Reason::multiple_host);
  for (const char* host : {"",
                           "exa mple.com",
                           "a,b",
                           "a;b",
                           "user@bank.example",
                           "a/b",
                           "example.com:",
                           "example.com:x",
                           "example.com:99999",
                           "example.com:123456",
                           "example.com:80:80",
                           "[::1",
                           "[::1]x",
                           "[::1]:",
                           "[1.2.3.4]",
                           "[::g]",
                           "[]",
                           "1.2.3",
                           "256.1.1.1",
                           "%41.example",
                           "a\xC3\xA9.example",
                           ":80"}) {
    SCOPED_TRACE(host);
    expect_400("GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n", Reason::bad_host);
  }
}

// ---- Content-Length / Transfer-Encoding --------------------------------------------------------

TEST(RequestParser, BadContentLength) {
  for (const char* value : {"+5", "-1", "5, 5", "5,5", "5 5", "0x5", "", "1e3", "5.0", "five",
                            "1234567890123456789", "99999999999999999999999"}) {
    SCOPED_TRACE(value);
    expect_400(request("Content-Length: " + std::string(value) + "\r\n", "POST / HTTP/1.1"),
               Reason::bad_content_length);
  }
}

TEST(RequestParser, MultipleContentLength) {
  expect_400(request("Content-Length: 5\r\nContent-Length: 5\r\n"),
             Reason::multiple_content_length);
  expect_400(request("Content-Length: 5\r\nContent-Length: 6\r\n"),
             Reason::multiple_content_length);
  expect_400(request("Content-Length: 5\r\ncontent-length: +5\r\n"),
             Reason::multiple_content_length);
}

TEST(RequestParser, BadTransferEncoding) {
  for (const char* value :
       {"gzip", "chunked, chunked", "identity", "gzip, chunked", "chunked, gzip", "xchunked",
        "chunked;q=1", "\"chunked\"", "", "chunk", "chunked,"}) {
    SCOPED_TRACE(value);
    expect_400(request("Transfer-Encoding: " + std::string(value) + "\r\n", "POST / HTTP/1.1"),
               Reason::bad_transfer_encoding);
  }
  expect_400(request("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
             Reason::bad_transfer_encoding);
  expect_400("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
             Reason::bad_transfer_encoding);
}

TEST(RequestParser, SmugglingClTe) {
  // CL.TE
  expect_400(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n\r\nG",
      Reason::smuggling_cl_te);
  // TE.CL
  expect_400(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
      "8\r\nSMUGGLED\r\n0\r\n\r\n",
      Reason::smuggling_cl_te);
  // obfuscated TE next to a CL is still both headers
  expect_400(request("Content-Length: 4\r\nTransfer-Encoding: xchunked\r\n"),
             Reason::smuggling_cl_te);
  expect_400(request("Transfer-Encoding: chunked\r\nContent-Length: +5\r\n"),
             Reason::smuggling_cl_te);
  expect_400(request("Content-Length: 0\r\nTransfer-Encoding: identity\r\n"),
             Reason::smuggling_cl_te);
  // tricks that never get as far as the framing rules
  expect_400(request("Content-Length: 4\r\nTransfer-Encoding : chunked\r\n"),
             Reason::bad_header_name);
  expect_400(request("Content-Length: 4\r\nTransfer-Encoding:\r\n chunked\r\n"), Reason::obs_fold);
  expect_400(request("Content-Length: 4\r\nTransfer_Encoding: chunked\r\n"),
             Reason::header_underscore);
  expect_400(request("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "POST  / HTTP/1.1"),
             Reason::bad_request_line);
}

// ---- Expect ------------------------------------------------------------------------------------

TEST(RequestParser, ExpectOtherThanContinue) {
  expect_error(request("Expect: 200-ok\r\n"), 417, Reason::bad_expect);
  expect_error(request("Expect: 100-continue, foo\r\n"), 417, Reason::bad_expect);
  expect_error(request("Expect: 100-continue\r\nExpect: x\r\n"), 417, Reason::bad_expect);
  expect_error(request("Expect:\r\n"), 417, Reason::bad_expect);
  // malformed framing wins over the expectation
  expect_400(request("Expect: x\r\nContent-Length: +1\r\n"), Reason::bad_content_length);
}

// ---- limits ------------------------------------------------------------------------------------

TEST(RequestParser, UriLimitBoundary) {
  HeadLimits limits;
  limits.max_uri_bytes = 64;
  const std::string at_limit = "/" + std::string(63, 'a');
  expect_ok(request("", "GET " + at_limit + " HTTP/1.1"), limits);
  expect_error(request("", "GET " + at_limit + "b HTTP/1.1"), 414, Reason::uri_too_long, limits);
  // known before the line is complete
  RequestHead head;
  RequestParser parser(limits);
  const std::string partial = "GET " + at_limit + "b";
  const auto r = parser.parse(partial, head);
  EXPECT_EQ(r.state, ParseState::error);
  EXPECT_EQ(r.reply.status, 414);
  EXPECT_EQ(r.reply.reason, Reason::uri_too_long);
  EXPECT_TRUE(r.reply.close_connection);
  RequestParser exact(limits);
  EXPECT_EQ(exact.parse("GET " + at_limit, head).state, ParseState::incomplete);
}

TEST(RequestParser, DefaultUriLimit) {
  const std::string at_limit = "/" + std::string(8 * 1024 - 1, 'x');
  RequestHead head;
  EXPECT_EQ(parse_whole(request("", "GET " + at_limit + " HTTP/1.1"), head).state,
            ParseState::complete);
  EXPECT_EQ(parse_whole(request("", "GET " + at_limit + "x HTTP/1.1"), head).status, 414);
}

TEST(RequestParser, HeaderBytesBoundary) {
  HeadLimits limits;
  limits.max_header_bytes = 100;
  // "Host: example.com\r\n" is 19 bytes; fill the rest with one header of exactly 81 bytes
  const std::string filler = "X-Fill: " + std::string(81 - 8 - 2, 'v') + "\r\n";
  ASSERT_EQ(filler.size(), 81u);
  expect_ok(request(filler), limits);
  const std::string over = "X-Fill: " + std::string(81 - 8 - 2 + 1, 'v') + "\r\n";
  expect_error(request(over), 431, Reason::header_too_large, limits);
  // the final empty line is not a header line
  expect_ok(request(filler), limits);
  // known while the header lines still arrive
  RequestHead head;
  RequestParser parser(limits);
  const std::string partial = "GET / HTTP/1.1\r\nX-Big: " + std::string(200, 'a');
  const auto r = parser.parse(partial, head);
  EXPECT_EQ(r.state, ParseState::error);
  EXPECT_EQ(r.reply.status, 431);
  EXPECT_EQ(r.reply.reason, Reason::header_too_large);
  EXPECT_TRUE(r.reply.close_connection);
}

TEST(RequestParser, HeaderBytesOverflowOnLineStartOrLineBreak) {
  HeadLimits limits;
  limits.max_header_bytes = 20;
  expect_ok("GET / HTTP/1.1\r\nHost: example.com.\r\n\r\n", limits);  // exactly 20 bytes
  // the LF is the 21st byte
  expect_error("GET / HTTP/1.1\r\nHost: example.comm.\r\n\r\n", 431, Reason::header_too_large,
               limits);
  // the 19-byte Host line fits; the next line's first byte is the 20th, its CR the 21st
  expect_error(request("X"), 431, Reason::header_too_large, limits);
  limits.max_header_bytes = 19;
  expect_error(request("X"), 431, Reason::header_too_large, limits);
  expect_ok(request(""), limits);
}

TEST(RequestParser, HeaderCountBoundary) {
  HeadLimits limits;
  limits.max_header_count = 5;
  std::string four;
  for (int i = 0; i < 4; ++i)
    four += "X-" + std::to_string(i) + ": v\r\n";
  const auto head = expect_ok(request(four), limits);
  EXPECT_EQ(head.headers.size(), 5u);
  expect_error(request(four + "X-4: v\r\n"), 431, Reason::too_many_headers, limits);
  // known at the start of the extra line
  RequestHead h;
  RequestParser parser(limits);
  const auto r = parser.parse(request(four).substr(0, request(four).size() - 2) + "X", h);
  EXPECT_EQ(r.reply.reason, Reason::too_many_headers);
  EXPECT_EQ(r.reply.status, 431);
}

TEST(RequestParser, HugeLimitsDoNotWrapAround) {
  HeadLimits limits;
  limits.max_uri_bytes = SIZE_MAX;
  limits.max_header_bytes = SIZE_MAX;
  limits.max_header_count = SIZE_MAX;
  const auto head = expect_ok(request("X: y\r\n", "GET /abc HTTP/1.1"), limits);
  EXPECT_EQ(head.path, "/abc");
}

TEST(RequestParser, DefaultHeaderCount) {
  std::string many;
  for (int i = 0; i < 99; ++i)
    many += "X-" + std::to_string(i) + ": v\r\n";
  RequestHead head;
  EXPECT_EQ(parse_whole(request(many), head).state, ParseState::complete);
  EXPECT_EQ(head.headers.size(), 100u);
  EXPECT_EQ(parse_whole(request(many + "Y: 1\r\n"), head).reason, Reason::too_many_headers);
}

// ---- incremental -------------------------------------------------------------------------------

TEST(RequestParser, ByteByByteMatchesWholeForManyInputs) {
  const std::vector<std::string> inputs = {
      request(""),
      request("Content-Length: 10\r\nConnection: close\r\n", "PUT /x?y HTTP/1.1"),
      "\r\n\r\nGET / HTTP/1.0\r\n\r\n",
      request("Transfer-Encoding: chunked\r\nContent-Length: 1\r\n"),
      request("X: a\r\n b\r\n"),
      request("X: \x01\r\n"),
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET http://x/ HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
      request("Expect: nope\r\n"),
  };
  for (const auto& text : inputs) {
    SCOPED_TRACE(text);
    RequestHead whole_head;
    RequestHead byte_head;
    const Outcome whole = parse_whole(text, whole_head);
    EXPECT_EQ(parse_bytewise(text, byte_head), whole);
    if (whole.state == ParseState::complete) {
      EXPECT_EQ(whole_head.method, byte_head.method);
      EXPECT_EQ(whole_head.target, byte_head.target);
      EXPECT_EQ(whole_head.headers.size(), byte_head.headers.size());
      EXPECT_EQ(whole_head.framing, byte_head.framing);
      EXPECT_EQ(whole_head.content_length, byte_head.content_length);
      EXPECT_EQ(whole_head.keep_alive, byte_head.keep_alive);
    }
  }
}

TEST(RequestParser, ByteByByteOnOneGrowingBuffer) {
  // the usual case: one buffer that grows in place
  const std::string text = request("Accept: */*\r\nContent-Length: 3\r\n", "POST /p HTTP/1.1");
  std::string buffer;
  buffer.reserve(text.size());
  RequestHead head;
  RequestParser parser{HeadLimits{}};
  ParseResult r;
  for (const char c : text) {
    buffer.push_back(c);
    r = parser.parse(buffer, head);
    if (r.state != ParseState::incomplete) break;
  }
  ASSERT_EQ(r.state, ParseState::complete);
  EXPECT_EQ(r.head_bytes, text.size());
  EXPECT_EQ(head.path, "/p");
  EXPECT_EQ(head.content_length, 3u);
  EXPECT_EQ(head.headers.size(), 3u);
}

TEST(RequestParser, LargeHeadByteByByteStaysLinear) {
  // a 16 KiB head delivered one byte at a time: with rescans this would be ~10^8 steps
  std::string headers;
  while (headers.size() < 15 * 1024)
    headers += "X-Pad: " + std::string(100, 'p') + "\r\n";
  HeadLimits limits;
  limits.max_header_count = 1000;
  const std::string text = request(headers);
  std::string buffer;
  buffer.reserve(text.size());
  RequestHead head;
  RequestParser parser(limits);
  ParseResult r;
  for (const char c : text) {
    buffer.push_back(c);
    r = parser.parse(buffer, head);
    if (r.state != ParseState::incomplete) break;
  }
  EXPECT_EQ(r.state, ParseState::complete);
}

}  // namespace
}  // namespace portcullis::http
