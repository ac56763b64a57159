#include "portcullis/validate/request_rules.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include <boost/json/parse.hpp>

namespace portcullis::validate {
namespace {

using core::Reason;

const char* kLoginSchema = R"({
  "type": "object",
  "properties": {"username": {"type": "string", "pattern": "^[a-z]{3,16}$"},
                 "password": {"type": "string", "minLength": 12}},
  "required": ["username", "password"],
  "additionalProperties": false
})";

RequestRulesSpec login_spec() {
  RequestRulesSpec spec;
  spec.content_types = {"application/json"};
  spec.max_body_bytes = 4096;
  spec.schema = JsonSchema::compile(boost::json::parse(kLoginSchema));
  return spec;
}

TEST(RequestRules, HeadChecks) {
  const RequestRules rules(login_spec());
  EXPECT_TRUE(rules.inspects_body());
  EXPECT_EQ(rules.max_body_bytes(), 4096u);
  EXPECT_TRUE(
      rules.check_head(std::string_view("application/json; charset=utf-8"), 100, true).ok());
  EXPECT_TRUE(rules.check_head(std::nullopt, std::nullopt, false).ok());  // no body, no check

  auto v = rules.check_head(std::string_view("text/plain"), 100, true);
  EXPECT_EQ(v.status, 415);
  EXPECT_EQ(v.reason, Reason::content_type_not_allowed);
  EXPECT_EQ(rules.check_head(std::nullopt, 100, true).status, 415);
  EXPECT_EQ(rules.check_head(std::string_view("application/json, text/plain"), 1, true).status,
            415);

  v = rules.check_head(std::string_view("application/json"), 4097, true);
  EXPECT_EQ(v.status, 413);
  EXPECT_EQ(v.reason, Reason::body_too_large);
  EXPECT_TRUE(rules.check_head(std::string_view("application/json"), 4096, true).ok());
  EXPECT_TRUE(rules.check_head(std::string_view("application/json"), std::nullopt, true).ok());
}

TEST(RequestRules, BodyChecks) {
  const RequestRules rules(login_spec());
  EXPECT_TRUE(rules.check_body(R"({"username": "ann", "password": "correct horse battery"})").ok());

  auto v = rules.check_body(R"({"username": "ann", "password": "short"})");
  EXPECT_EQ(v.status, 400);
  EXPECT_EQ(v.reason, Reason::schema_violation);
  EXPECT_EQ(v.pointer, "/password");

  v = rules.check_body(R"({"username": "ann", "password": "x", "password": "correct horse"})");
  EXPECT_EQ(v.status, 400);
  EXPECT_EQ(v.reason, Reason::invalid_json);
  EXPECT_EQ(v.pointer, "");

  v = rules.check_body("not json");
  EXPECT_EQ(v.status, 400);
  EXPECT_EQ(v.reason, Reason::invalid_json);
  EXPECT_EQ(rules.check_body("").reason, Reason::invalid_json);
  EXPECT_EQ(rules.check_body(std::string(64, '[') + std::string(64, ']')).reason,
            Reason::json_limit_exceeded);

  v = rules.check_body("\"" + std::string(5000, 'x') + "\"");
  EXPECT_EQ(v.status, 413);
  EXPECT_EQ(v.reason, Reason::body_too_large);
}

TEST(RequestRules, PointerCanBeHidden) {
  auto spec = login_spec();
  spec.expose_pointer = false;
  const RequestRules rules(std::move(spec));
  const auto v = rules.check_body(R"({"username": "ann", "password": "short"})");
  EXPECT_EQ(v.status, 400);
  EXPECT_EQ(v.pointer, "");
}

TEST(RequestRules, StreamedBodies) {
  const RequestRules rules(login_spec());
  auto parser = rules.body_parser();
  Reason parsed = parser.write(R"({"username": "ann", )");
  if (parsed == Reason::none) parsed = parser.write(R"("password": "short"})");
  if (parsed == Reason::none) parsed = parser.finish();
  const auto v = rules.check_document(parsed, parser.release());
  EXPECT_EQ(v.status, 400);
  EXPECT_EQ(v.pointer, "/password");

  auto big = rules.body_parser();
  EXPECT_EQ(big.write(std::string(4097, ' ')), Reason::body_too_large);
  EXPECT_EQ(rules.check_document(Reason::body_too_large, nullptr).status, 413);
}

TEST(RequestRules, SchemaWithoutContentTypesWantsJson) {
  RequestRulesSpec spec;
  spec.schema = JsonSchema::compile(boost::json::parse(R"({"type": "object"})"));
  const RequestRules rules(std::move(spec));
  EXPECT_TRUE(rules.check_head(std::string_view("application/json"), 2, true).ok());
  EXPECT_TRUE(rules.check_head(std::string_view("application/merge-patch+json"), 2, true).ok());
  EXPECT_EQ(rules.check_head(std::string_view("text/plain"), 2, true).status, 415);
  EXPECT_EQ(rules.check_head(std::nullopt, 2, true).status, 415);
  EXPECT_EQ(rules.max_body_bytes(), JsonLimits{}.max_bytes);
}

TEST(RequestRules, ContentTypesWithoutSchema) {
  RequestRulesSpec spec;
  spec.content_types = {"text/*", "application/octet-stream"};
  spec.max_body_bytes = 10;
  const RequestRules rules(std::move(spec));
  EXPECT_FALSE(rules.inspects_body());
  EXPECT_TRUE(rules.check_head(std::string_view("text/csv"), 5, true).ok());
  EXPECT_EQ(rules.check_head(std::string_view("application/json"), 5, true).status, 415);
  EXPECT_TRUE(rules.check_body("not json at all").status == 413);
  EXPECT_TRUE(rules.check_body("not json").ok());  // no schema: the body is not parsed
}

TEST(RequestRules, BadContentTypeEntry) {
  RequestRulesSpec spec;
  spec.content_types = {"*/*"};
  EXPECT_THROW(RequestRules{std::move(spec)}, std::invalid_argument);
}

TEST(RequestRules, InvalidBodyResponse) {
  EXPECT_EQ(invalid_body_response("req-1", "/password"),
            R"({"error":"invalid_body","request_id":"req-1","pointer":"/password"})");
  EXPECT_EQ(invalid_body_response("req-1", ""), R"({"error":"invalid_body","request_id":"req-1"})");
  EXPECT_EQ(invalid_body_response("r\"1", "/a\"b\\c\n"),
            R"({"error":"invalid_body","request_id":"r\"1","pointer":"/a\"b\\c\u000a"})");
  EXPECT_EQ(invalid_body_response("r", "/" + std::string(600, 'x')),
            R"({"error":"invalid_body","request_id":"r"})");
  const auto parsed = boost::json::parse(invalid_body_response("id", "/\xC3\xA9t\xC3\xA9~1x"));
  EXPECT_EQ(parsed.at("pointer").as_string(), "/\xC3\xA9t\xC3\xA9~1x");
}

TEST(RequestRules, StatusForReason) {
  EXPECT_EQ(status_for(Reason::none), 0);
  EXPECT_EQ(status_for(Reason::body_too_large), 413);
  EXPECT_EQ(status_for(Reason::content_type_not_allowed), 415);
  EXPECT_EQ(status_for(Reason::invalid_json), 400);
  EXPECT_EQ(status_for(Reason::json_limit_exceeded), 400);
  EXPECT_EQ(status_for(Reason::schema_violation), 400);
}

}  // namespace
}  // namespace portcullis::validate
