#include "portcullis/validate/content_type.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace portcullis::validate {
namespace {

MediaTypeSet compile(const std::vector<std::string>& entries) {
  std::string error;
  auto set = MediaTypeSet::compile(entries, error);
  EXPECT_TRUE(set) << error;
  return set.value_or(MediaTypeSet{});
}

TEST(ContentType, ParsesMediaTypes) {
  auto m = parse_media_type("application/json");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, "application");
  EXPECT_EQ(m->subtype, "json");
  EXPECT_EQ(m->parameters, "");
  m = parse_media_type(" Application/Vnd.Bank+JSON ; charset=\"utf-8\";q=1 ");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, "Application");
  EXPECT_EQ(m->subtype, "Vnd.Bank+JSON");
  EXPECT_EQ(m->parameters, " charset=\"utf-8\";q=1 ");
  EXPECT_TRUE(parse_media_type("text/plain;"));
  EXPECT_TRUE(parse_media_type("text/plain;;a=b"));
  EXPECT_TRUE(parse_media_type("text/plain; a=\"x\\\"y\""));
  for (const char* bad :
       {"", " ", "application", "application/", "/json", "application/json/x",
        "application/json, text/plain", "application /json", "application/ json",
        "application/json charset=utf-8", "application/json; charset", "application/json; =x",
        "application/json; charset=", "application/json; charset=\"utf-8",
        "application/json; a=b c", "appli(cation)/json", "application/json\x01",
        "application/js\xC3\xA9on"}) {
    EXPECT_FALSE(parse_media_type(bad)) << bad;
  }
}

TEST(ContentType, JsonMediaTypes) {
  EXPECT_TRUE(is_json_media_type("application/json"));
  EXPECT_TRUE(is_json_media_type("Application/JSON; charset=utf-8"));
  EXPECT_TRUE(is_json_media_type("application/problem+json"));
  EXPECT_TRUE(is_json_media_type("application/vnd.bank.payment.v2+JSON"));
  EXPECT_FALSE(is_json_media_type("application/+json"));
  EXPECT_FALSE(is_json_media_type("text/json"));
  EXPECT_FALSE(is_json_media_type("application/jsonx"));
  EXPECT_FALSE(is_json_media_type("application/json-patch"));
  EXPECT_FALSE(is_json_media_type("application/x-www-form-urlencoded"));
  EXPECT_FALSE(is_json_media_type("application/json, text/html"));
}

TEST(ContentType, SetMatchesWithoutParameters) {
  const auto set = compile({"application/json", "Text/*"});
  EXPECT_EQ(set.entries(), (std::vector<std::string>{"application/json", "text/*"}));
  EXPECT_TRUE(set.allows("application/json"));
  EXPECT_TRUE(set.allows("APPLICATION/Json; charset=utf-8"));
  EXPECT_TRUE(set.allows("text/plain"));
  EXPECT_TRUE(set.allows("text/csv; header=present"));
  EXPECT_FALSE(set.allows("application/problem+json"));
  EXPECT_FALSE(set.allows("application/xml"));
  EXPECT_FALSE(set.allows("multipart/form-data; boundary=x"));
  EXPECT_FALSE(set.allows("application/json, text/plain"));
  EXPECT_FALSE(
      set.allows("application/json;"
                 "charset"));
  EXPECT_FALSE(set.allows(""));
  EXPECT_EQ(set.check(std::string_view("application/json")), core::Reason::none);
  EXPECT_EQ(set.check(std::string_view("application/xml")), core::Reason::content_type_not_allowed);
  EXPECT_EQ(set.check(std::nullopt), core::Reason::content_type_not_allowed);
  EXPECT_EQ(set.check(std::string_view("garbage")), core::Reason::content_type_not_allowed);
}

TEST(ContentType, BadEntriesAreRefused) {
  for (const char* bad : {"*/*", "*/json", "application", "application/json; charset=utf-8",
                          "application/js*", "", "application/json, text/plain"}) {
    std::string error;
    EXPECT_FALSE(MediaTypeSet::compile({bad}, error)) << bad;
    EXPECT_NE(error.find(bad), std::string::npos) << error;
  }
  const auto duplicates = compile({"application/json", "application/JSON"});
  EXPECT_EQ(duplicates.entries().size(), 1u);
  EXPECT_FALSE(compile({}).allows("application/json"));  // an empty set allows nothing
}

}  // namespace
}  // namespace portcullis::validate
