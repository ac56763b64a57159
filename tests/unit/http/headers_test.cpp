#include "portcullis/http/headers.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace portcullis::http {
namespace {

TEST(Headers, Iequals) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("Host", "Hos"));
  EXPECT_FALSE(iequals("Host", "Hosu"));
  // only ASCII letters fold: '@' (0x40) and '`' (0x60) differ by the case bit but are not letters
  EXPECT_FALSE(iequals("@", "`"));
  EXPECT_FALSE(iequals("[", "{"));
  EXPECT_FALSE(iequals("\xC9", "\xE9"));
}

TEST(Headers, HopByHop) {
  for (const char* name :
       {"Connection", "keep-alive", "Proxy-Connection", "te", "Trailer", "TRANSFER-ENCODING",
        "Upgrade", "Proxy-Authenticate", "proxy-authorization"}) {
    EXPECT_TRUE(is_hop_by_hop(name)) << name;
  }
  for (const char* name : {"Host", "Trailers", "Content-Length", "Authorization", "TE2", "",
                           "X-Connection", "Upgrade-Insecure-Requests"}) {
    EXPECT_FALSE(is_hop_by_hop(name)) << name;
  }
}

TEST(Headers, ForEachListElement) {
  std::vector<std::string> seen;
  for_each_list_element(" a ,b,, \t,\tc d\t, ", [&](std::string_view e) { seen.emplace_back(e); });
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b", "c d"}));
}

TEST(Headers, ListContains) {
  EXPECT_TRUE(list_contains("keep-alive, Close", "close"));
  EXPECT_TRUE(list_contains("close", "CLOSE"));
  EXPECT_FALSE(list_contains("closed, enclose", "close"));
  EXPECT_FALSE(list_contains("", "close"));
  EXPECT_FALSE(list_contains(" , ,", ""));
}

TEST(Headers, NamedByConnection) {
  const std::vector<std::string_view> connection = {"close", "X-Secret, x-other"};
  EXPECT_TRUE(named_by_connection("x-secret", connection));
  EXPECT_TRUE(named_by_connection("X-Other", connection));
  EXPECT_FALSE(named_by_connection("X-Sec", connection));
  EXPECT_FALSE(named_by_connection("X-Secret", {}));
}

TEST(Headers, TokenChars) {
  for (const char c : std::string("!#$%&'*+-.^_`|~09azAZ"))
    EXPECT_TRUE(is_token_char(c)) << c;
  for (const char c : std::string("()<>@,;:\\\"/[]?={} \t\x7f\x01\x80\xff")) {
    EXPECT_FALSE(is_token_char(c)) << static_cast<int>(c);
  }
  EXPECT_FALSE(is_token_char('\0'));
}

}  // namespace
}  // namespace portcullis::http
