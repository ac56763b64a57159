#include "portcullis/core/errors.hpp"

#include <gtest/gtest.h>

#include <set>

#include "portcullis/core/reason.hpp"

namespace portcullis::core {
namespace {

TEST(ErrorBody, IsTheSpecsSmallJsonObject) {
  EXPECT_EQ(error_body("not_found", "abc123"), R"({"error":"not_found","request_id":"abc123"})");
}

TEST(ErrorBody, EscapesTheRequestId) {
  EXPECT_EQ(error_body("bad_request", "a\"b\\c\x01"),
            R"({"error":"bad_request","request_id":"a\"b\\c\u0001"})");
}

TEST(JsonEscaping, KeepsUtf8AndEscapesEverythingElse) {
  std::string out;
  append_json_escaped(out, "caf\xc3\xa9 \"q\" \\ \t \x7f");
  EXPECT_EQ(out, "caf\xc3\xa9 \\\"q\\\" \\\\ \\u0009 \\u007f");
  out.clear();
  // Invalid UTF-8: a lone continuation byte, an overlong '/', a surrogate, a cut sequence.
  append_json_escaped(out, "\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82");
  EXPECT_EQ(out, "\\u0080|\\u00c0\\u00af|\\u00ed\\u00a0\\u0080|\\u00e2\\u0082");
  out.clear();
  append_json_escaped(out, "\xf0\x9f\x94\x92");  // a 4-byte sequence
  EXPECT_EQ(out, "\xf0\x9f\x94\x92");
}

TEST(ErrorCodes, StatusesOfTheSpecHaveStableCodes) {
  EXPECT_EQ(error_code_for_status(400), "bad_request");
  EXPECT_EQ(error_code_for_status(404), "not_found");
  EXPECT_EQ(error_code_for_status(405), "method_not_allowed");
  EXPECT_EQ(error_code_for_status(408), "request_timeout");
  EXPECT_EQ(error_code_for_status(413), "payload_too_large");
  EXPECT_EQ(error_code_for_status(414), "uri_too_long");
  EXPECT_EQ(error_code_for_status(415), "unsupported_media_type");
  EXPECT_EQ(error_code_for_status(429), "too_many_requests");
  EXPECT_EQ(error_code_for_status(431), "request_header_fields_too_large");
  EXPECT_EQ(error_code_for_status(500), "internal_error");
  EXPECT_EQ(error_code_for_status(502), "bad_gateway");
  EXPECT_EQ(error_code_for_status(503), "service_unavailable");
  EXPECT_EQ(error_code_for_status(504), "gateway_timeout");
  EXPECT_EQ(error_code_for_status(599), "upstream_error");
}

TEST(ReasonPhrases, KnownAndUnknown) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(308), "Permanent Redirect");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(299), "Unknown");
}

TEST(Reasons, NamesAreUniqueSnakeCase) {
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < kReasonCount; ++i) {
    const auto name = to_string(static_cast<Reason>(i));
    EXPECT_FALSE(name.empty());
    for (const char c : name)
      EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') << name;
    EXPECT_TRUE(names.insert(name).second) << name;
  }
  EXPECT_EQ(to_string(Reason::smuggling_cl_te), "smuggling_cl_te");
  EXPECT_EQ(to_string(static_cast<Reason>(250)), "unknown");
}

}  // namespace
}  // namespace portcullis::core
