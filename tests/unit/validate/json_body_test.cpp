#include "portcullis/validate/json_body.hpp"

#include <gtest/gtest.h>

#include <string>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/serialize.hpp>

namespace portcullis::validate {
namespace {

using core::Reason;

JsonLimits limits(std::size_t bytes = 4096, std::size_t depth = 8, std::size_t strings = 64) {
  JsonLimits l;
  l.max_bytes = bytes;
  l.max_depth = depth;
  l.max_string_bytes = strings;
  return l;
}

Reason parse(std::string_view body, const JsonLimits& l = limits()) {
  return parse_json_body(body, l).reason;
}

TEST(JsonBody, ParsesDocuments) {
  const auto body =
      parse_json_body(R"({"amount": 12.5, "currency": "EUR", "tags": [1, null]})", limits());
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(body.value.at("currency").as_string(), "EUR");
  EXPECT_EQ(body.value.at("tags").as_array().size(), 2u);
  EXPECT_EQ(body.error_offset, 0u);
  EXPECT_EQ(parse("  \n\t[1]\r\n "), Reason::none);
  EXPECT_EQ(parse("\"just a string\""), Reason::none);
  EXPECT_EQ(parse("42"), Reason::none);
  EXPECT_EQ(parse("null"), Reason::none);
  EXPECT_TRUE(parse_json_body("null", limits()).value.is_null());
}

TEST(JsonBody, RefusesWhatIsNotJson) {
  for (const char* bad : {"",
                          "   ",
                          "{",
                          "{\"a\":}",
                          "[1,]",
                          "{\"a\":1,}",
                          "{'a':1}",
                          "[1] [2]",
                          "[1] x",
                          "nul",
                          "01",
                          "1.",
                          ".5",
                          "+1",
                          "NaN",
                          "Infinity",
                          "\"\\x41\"",
                          "/* c */ 1",
                          "[1] // c",
                          "\xEF\xBB\xBF{}",
                          "\"\xC3\x28\"",
                          "\"\xED\xA0\x80\"",
                          "{\"a\" 1}",
                          "\"tab\tinside\""}) {
    const auto body = parse_json_body(bad, limits());
    EXPECT_EQ(body.reason, Reason::invalid_json) << bad;
    EXPECT_TRUE(body.value.is_null());
  }
}

TEST(JsonBody, RefusesRepeatedNames) {
  EXPECT_EQ(parse(R"({"amount": 1, "amount": 1000000})"), Reason::invalid_json);
  EXPECT_EQ(parse(R"({"a": {"x": 1, "x": 2}})"), Reason::invalid_json);
  EXPECT_EQ(parse(R"([{"a": 1}, {"b": 1, "c": 2, "b": 3}])"), Reason::invalid_json);
  EXPECT_EQ(parse(R"({"a": {"x": 1}, "a": {}})"), Reason::invalid_json);
  EXPECT_EQ(parse(R"({"a": {}, "a": {}})"), Reason::invalid_json);
  EXPECT_EQ(parse(R"({"a": 1, "\u0061": 2})"), Reason::invalid_json);  // same name, escaped
  // The same name in different objects is fine, and so are names that differ only in case.
  EXPECT_EQ(parse(R"({"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}], "A": 3})"), Reason::none);
}

TEST(JsonBody, Limits) {
  EXPECT_EQ(parse(std::string(4096, ' ') + "1"), Reason::body_too_large);
  EXPECT_EQ(parse(std::string(4095, ' ') + "1"), Reason::none);
  EXPECT_EQ(parse("[[[[[[[[1]]]]]]]]"), Reason::none);  // depth 8
  EXPECT_EQ(parse("[[[[[[[[[1]]]]]]]]]"), Reason::json_limit_exceeded);
  EXPECT_EQ(parse("{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}}"),
            Reason::json_limit_exceeded);
  EXPECT_EQ(parse("\"" + std::string(64, 'x') + "\""), Reason::none);
  EXPECT_EQ(parse("\"" + std::string(65, 'x') + "\""), Reason::json_limit_exceeded);
  EXPECT_EQ(parse("{\"" + std::string(65, 'k') + "\": 1}"), Reason::json_limit_exceeded);
  // The limit counts unescaped bytes: 32 two-byte code points fit, 33 do not.
  std::string escaped = "\"";
  for (int i = 0; i < 33; ++i)
    escaped += "\\u00e9";
  EXPECT_EQ(parse(escaped + "\""), Reason::json_limit_exceeded);
  EXPECT_EQ(parse(escaped.substr(0, escaped.size() - 6) + "\""), Reason::none);
  EXPECT_EQ(parse("1e999"), Reason::json_limit_exceeded);
  EXPECT_EQ(parse("[-1e400]"), Reason::json_limit_exceeded);
  EXPECT_EQ(parse("1e308"), Reason::none);
  EXPECT_EQ(parse("123456789012345678901234567890"), Reason::none);  // a large but finite double
}

TEST(JsonBody, ErrorOffsetPointsAtTheProblem) {
  const auto body = parse_json_body("{\"a\": [1, 2, x]}", limits());
  EXPECT_EQ(body.reason, Reason::invalid_json);
  EXPECT_EQ(body.error_offset, 13u);
}

TEST(JsonBody, Streaming) {
  const std::string text = R"({"payment": {"amount": 10.25, "iban": "DE89370400440532013000"}})";
  for (std::size_t chunk = 1; chunk <= text.size(); ++chunk) {
    JsonBodyParser parser(limits());
    for (std::size_t i = 0; i < text.size(); i += chunk) {
      ASSERT_EQ(parser.write(std::string_view(text).substr(i, chunk)), Reason::none) << chunk;
    }
    ASSERT_EQ(parser.finish(), Reason::none) << chunk;
    EXPECT_EQ(parser.bytes(), text.size());
    const auto value = parser.release();
    EXPECT_EQ(value.at("payment").at("iban").as_string(), "DE89370400440532013000") << chunk;
  }
}

TEST(JsonBody, StreamingStopsAtTheFirstProblem) {
  JsonBodyParser parser(limits(16));
  EXPECT_EQ(parser.write("[1, 2, "), Reason::none);
  EXPECT_EQ(parser.write("3, 4, 5, 6, 7]"), Reason::body_too_large);
  EXPECT_EQ(parser.write("]"), Reason::body_too_large);  // stays failed
  EXPECT_EQ(parser.finish(), Reason::body_too_large);
  EXPECT_TRUE(parser.release().is_null());

  parser.reset();
  EXPECT_EQ(parser.write("[1]"), Reason::none);
  EXPECT_EQ(parser.write("  \n"), Reason::none);  // trailing white space is fine
  EXPECT_EQ(parser.write(" ,"), Reason::invalid_json);

  parser.reset();
  EXPECT_EQ(parser.write("{\"a\": 1, \"a\""), Reason::none);
  EXPECT_EQ(parser.write(": 2}"), Reason::none);
  EXPECT_EQ(parser.finish(), Reason::invalid_json);  // the repeat shows when the document ends

  parser.reset();
  EXPECT_EQ(parser.write("12"), Reason::none);
  EXPECT_EQ(parser.write("34"), Reason::none);
  EXPECT_EQ(parser.finish(), Reason::none);
  EXPECT_EQ(parser.release().as_int64(), 1234);

  parser.reset();
  EXPECT_EQ(parser.finish(), Reason::invalid_json);  // no body at all
}

TEST(JsonBody, SplitStringsCountTowardsTheLimit) {
  JsonBodyParser parser(limits(4096, 8, 10));
  EXPECT_EQ(parser.write("[\"abcdef"), Reason::none);
  EXPECT_EQ(parser.write("ghijk\"]"), Reason::json_limit_exceeded);
}

TEST(JsonBody, ArenaStorage) {
  unsigned char buffer[4096];
  boost::json::monotonic_resource arena(buffer, sizeof buffer);
  const auto body = parse_json_body(R"({"a": ["x", "y", {"b": 1}]})", limits(), &arena);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(boost::json::serialize(body.value), R"({"a":["x","y",{"b":1}]})");
  EXPECT_EQ(body.value.storage().get(), &arena);
}

}  // namespace
}  // namespace portcullis::validate
