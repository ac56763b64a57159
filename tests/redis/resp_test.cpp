#include <gtest/gtest.h>

#include <string>

#include "portcullis/redis/reply.hpp"

namespace portcullis::redis {
namespace {

TEST(Resp, EncodesBinarySafeArguments) {
  EXPECT_EQ(encode(make_command("SET", "k", std::string("a\0b", 3))),
            std::string("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na\0b\r\n", 29));
  EXPECT_EQ(encode(make_command("PING")), "*1\r\n$4\r\nPING\r\n");
}

TEST(Resp, ParsesEveryTypeAndNestedArraysFedByteByByte) {
  const std::string input =
      "+OK\r\n-ERR bad\r\n:-42\r\n$3\r\nabc\r\n$-1\r\n*-1\r\n*0\r\n"
      "*2\r\n*2\r\n$1\r\na\r\n:1\r\n$0\r\n\r\n";
  Parser parser(1024);
  std::vector<Value> values;
  for (const char byte : input) {
    ASSERT_TRUE(parser.feed(std::string_view(&byte, 1)));
    while (auto value = parser.next())
      values.push_back(std::move(*value));
  }
  ASSERT_FALSE(parser.failed());
  ASSERT_EQ(values.size(), 8u);
  EXPECT_EQ(values[0].type, Value::Type::status);
  EXPECT_EQ(values[0].string, "OK");
  EXPECT_TRUE(values[1].is_error());
  EXPECT_EQ(values[1].string, "ERR bad");
  EXPECT_EQ(values[2].integer, -42);
  EXPECT_EQ(values[3].string, "abc");
  EXPECT_TRUE(values[4].is_nil());
  EXPECT_TRUE(values[5].is_nil());
  EXPECT_TRUE(values[6].is_array());
  EXPECT_TRUE(values[6].elements.empty());
  ASSERT_EQ(values[7].elements.size(), 2u);
  ASSERT_EQ(values[7].elements[0].elements.size(), 2u);
  EXPECT_EQ(values[7].elements[0].elements[0].string, "a");
  EXPECT_EQ(values[7].elements[0].elements[1].integer, 1);
  EXPECT_EQ(values[7].elements[1].type, Value::Type::string);
  EXPECT_TRUE(values[7].elements[1].string.empty());
}

TEST(Resp, RefusesWhatIsNotResp) {
  Parser parser(1024);
  parser.feed("HTTP/1.1 400 Bad Request\r\n");
  EXPECT_FALSE(parser.next());
  EXPECT_TRUE(parser.failed());
  EXPECT_FALSE(parser.feed("+OK\r\n"));  // in error for good
}

TEST(Resp, RefusesAReplyOverTheLimitBeforeCommittingIt) {
  // A declared length far beyond the limit: refused once the buffered bytes pass it.
  Parser big_string(1024);
  EXPECT_TRUE(big_string.feed("$1000000000\r\n"));
  EXPECT_FALSE(big_string.next());
  EXPECT_FALSE(big_string.feed(std::string(4096, 'x')));
  EXPECT_TRUE(big_string.failed());

  // A huge declared array commits nothing; its elements count against the limit as they come.
  Parser big_array(1024);
  EXPECT_TRUE(big_array.feed("*2000000000\r\n"));
  EXPECT_FALSE(big_array.next());
  EXPECT_FALSE(big_array.failed());
  for (int i = 0; i < 100 && !big_array.failed(); ++i) {
    big_array.feed(":1\r\n");
    big_array.next();
  }
  EXPECT_TRUE(big_array.failed());

  // The limit is per reply: many small replies in a row are fine.
  Parser many(256);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(many.feed("$5\r\nhello\r\n"));
    ASSERT_TRUE(many.next());
  }
}

}  // namespace
}  // namespace portcullis::redis
