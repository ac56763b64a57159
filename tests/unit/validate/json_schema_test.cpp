#include "portcullis/validate/json_schema.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/parse.hpp>

namespace portcullis::validate {
namespace {

namespace json = boost::json;

JsonSchema compile(std::string_view schema, CompileOptions options = {}) {
  return JsonSchema::compile(json::parse(schema), options);
}

// The first violation for `instance`, checking that validate() and is_valid() agree.
std::optional<Violation> check(const JsonSchema& schema, std::string_view instance) {
  const json::value value = json::parse(instance);
  auto violation = schema.validate(value);
  EXPECT_EQ(schema.is_valid(value), !violation.has_value()) << instance;
  return violation;
}

bool valid(const JsonSchema& schema, std::string_view instance) {
  return !check(schema, instance).has_value();
}

// Compiles and expects a SchemaError of `kind` at `pointer`.
void expect_refused(std::string_view schema, SchemaError::Kind kind, std::string_view pointer,
                    CompileOptions options = {}) {
  try {
    compile(schema, options);
    ADD_FAILURE() << "compiled: " << schema;
  } catch (const SchemaError& error) {
    EXPECT_EQ(error.kind(), kind) << schema << ": " << error.what();
    EXPECT_EQ(error.pointer(), pointer) << schema << ": " << error.what();
  }
}

// ---- type, enum, const --------------------------------------------------------------------------

TEST(JsonSchemaType, EachType) {
  const auto s = compile(R"({"type": "integer"})");
  EXPECT_TRUE(valid(s, "1"));
  EXPECT_TRUE(valid(s, "-1"));
  EXPECT_TRUE(valid(s, "18446744073709551615"));
  EXPECT_TRUE(valid(s, "1.0"));  // draft-06 on: an integer-valued number is an integer
  EXPECT_FALSE(valid(s, "1.5"));
  EXPECT_FALSE(valid(s, "\"1\""));
  EXPECT_TRUE(valid(compile(R"({"type": "number"})"), "1.5"));
  EXPECT_TRUE(valid(compile(R"({"type": "number"})"), "7"));
  EXPECT_FALSE(valid(compile(R"({"type": "number"})"), "true"));
  EXPECT_TRUE(valid(compile(R"({"type": "null"})"), "null"));
  EXPECT_FALSE(valid(compile(R"({"type": "null"})"), "0"));
  EXPECT_TRUE(valid(compile(R"({"type": "boolean"})"), "false"));
  EXPECT_FALSE(valid(compile(R"({"type": "boolean"})"), "0"));
  EXPECT_TRUE(valid(compile(R"({"type": "object"})"), "{}"));
  EXPECT_FALSE(valid(compile(R"({"type": "object"})"), "[]"));
  EXPECT_TRUE(valid(compile(R"({"type": "array"})"), "[]"));
  EXPECT_TRUE(valid(compile(R"({"type": "string"})"), "\"\""));
}

TEST(JsonSchemaType, List) {
  const auto s = compile(R"({"type": ["string", "null"]})");
  EXPECT_TRUE(valid(s, "null"));
  EXPECT_TRUE(valid(s, "\"x\""));
  const auto v = check(s, "3");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->keyword, "type");
  EXPECT_EQ(v->instance_pointer, "");
  EXPECT_EQ(v->schema_pointer, "/type");
}

TEST(JsonSchemaType, BadValuesAreRefused) {
  expect_refused(R"({"type": "strin"})", SchemaError::Kind::invalid, "/type");
  expect_refused(R"({"type": ["string", 1]})", SchemaError::Kind::invalid, "/type/1");
  expect_refused(R"({"type": ["string", "string"]})", SchemaError::Kind::invalid, "/type/1");
  expect_refused(R"({"type": []})", SchemaError::Kind::invalid, "/type");
}

TEST(JsonSchemaEnum, ValuesCompareAsJson) {
  const auto s = compile(R"({"enum": [1, "a", null, [1, 2], {"k": true}]})");
  EXPECT_TRUE(valid(s, "1"));
  EXPECT_TRUE(valid(s, "1.0"));
  EXPECT_TRUE(valid(s, "\"a\""));
  EXPECT_TRUE(valid(s, "null"));
  EXPECT_TRUE(valid(s, "[1, 2]"));
  EXPECT_TRUE(valid(s, R"({"k": true})"));
  EXPECT_FALSE(valid(s, "[2, 1]"));
  EXPECT_FALSE(valid(s, "true"));
  EXPECT_FALSE(valid(s, "false"));
  EXPECT_FALSE(valid(s, "0"));
  EXPECT_EQ(check(s, "2")->keyword, "enum");
}

TEST(JsonSchemaEnum, StringsOnly) {
  const auto s = compile(R"({"enum": ["EUR", "USD", "GBP", "CHF"]})");
  EXPECT_TRUE(valid(s, "\"CHF\""));
  EXPECT_TRUE(valid(s, "\"EUR\""));
  EXPECT_FALSE(valid(s, "\"eur\""));
  EXPECT_FALSE(valid(s, "1"));
  expect_refused(R"({"enum": []})", SchemaError::Kind::invalid, "/enum");
  expect_refused(R"({"enum": "EUR"})", SchemaError::Kind::invalid, "/enum");
}

TEST(JsonSchemaConst, Equality) {
  const auto s = compile(R"({"const": {"a": [1, false]}})");
  EXPECT_TRUE(valid(s, R"({"a": [1.0, false]})"));
  EXPECT_FALSE(valid(s, R"({"a": [1, 0]})"));
  EXPECT_FALSE(valid(s, R"({"a": [1, false], "b": 1})"));
  EXPECT_EQ(check(s, "1")->keyword, "const");
  EXPECT_TRUE(valid(compile(R"({"const": null})"), "null"));
  EXPECT_FALSE(valid(compile(R"({"const": false})"), "0"));
}

// ---- numbers ------------------------------------------------------------------------------------

TEST(JsonSchemaNumbers, Bounds) {
  const auto s = compile(R"({"minimum": 1, "maximum": 10})");
  EXPECT_TRUE(valid(s, "1"));
  EXPECT_TRUE(valid(s, "10"));
  EXPECT_TRUE(valid(s, "10.0"));
  EXPECT_FALSE(valid(s, "0.999"));
  EXPECT_FALSE(valid(s, "10.0001"));
  EXPECT_TRUE(valid(s, "\"not a number\""));
  EXPECT_EQ(check(s, "0")->keyword, "minimum");
  EXPECT_EQ(check(s, "11")->keyword, "maximum");
  const auto e = compile(R"({"exclusiveMinimum": 0, "exclusiveMaximum": 1.5})");
  EXPECT_FALSE(valid(e, "0"));
  EXPECT_TRUE(valid(e, "0.0001"));
  EXPECT_TRUE(valid(e, "1"));
  EXPECT_FALSE(valid(e, "1.5"));
  EXPECT_EQ(check(e, "0")->keyword, "exclusiveMinimum");
  EXPECT_EQ(check(e, "2")->keyword, "exclusiveMaximum");
}

TEST(JsonSchemaNumbers, ExactAcrossRepresentations) {
  // 2^63 - 1 and 2^63 as integers, against bounds that doubles cannot tell apart.
  const auto s = compile(R"({"maximum": 9223372036854775807})");
  EXPECT_TRUE(valid(s, "9223372036854775807"));
  EXPECT_FALSE(valid(s, "9223372036854775808"));
  EXPECT_FALSE(valid(s, "9223372036854775808.0"));
  const auto u = compile(R"({"minimum": 18446744073709551615})");
  EXPECT_TRUE(valid(u, "18446744073709551615"));
  EXPECT_FALSE(valid(u, "18446744073709551614"));
  const auto neg = compile(R"({"minimum": -9223372036854775808})");
  EXPECT_TRUE(valid(neg, "-9223372036854775808"));
  // Parsed as doubles: -2^63 - 1 rounds to -2^63 (equal, so valid); the next double down is not.
  EXPECT_TRUE(valid(neg, "-9223372036854775809"));
  EXPECT_FALSE(valid(neg, "-9223372036854777856"));
  const auto frac = compile(R"({"minimum": 2.5})");
  EXPECT_FALSE(valid(frac, "2"));
  EXPECT_TRUE(valid(frac, "3"));
}

TEST(JsonSchemaNumbers, MultipleOf) {
  const auto cents = compile(R"({"multipleOf": 0.01})");
  for (const char* ok : {"0", "1", "19.99", "0.07", "1234567.89", "-42.10", "100000000.01"}) {
    EXPECT_TRUE(valid(cents, ok)) << ok;
  }
  for (const char* bad : {"19.991", "0.001", "0.005", "-1.234"}) {
    EXPECT_FALSE(valid(cents, bad)) << bad;
  }
  EXPECT_EQ(check(cents, "0.001")->keyword, "multipleOf");
  const auto ints = compile(R"({"multipleOf": 3})");
  EXPECT_TRUE(valid(ints, "9"));
  EXPECT_TRUE(valid(ints, "-9"));
  EXPECT_TRUE(valid(ints, "9.0"));
  EXPECT_FALSE(valid(ints, "10"));
  EXPECT_FALSE(valid(ints, "4.5"));
  EXPECT_TRUE(valid(ints, "18446744073709551615"));  // 3 * 6148914691236517205
  const auto tiny = compile(R"({"multipleOf": 0.0001})");
  EXPECT_TRUE(valid(tiny, "0.0075"));
  EXPECT_FALSE(valid(tiny, "0.00751"));
  // A quotient that overflows is not a multiple.
  EXPECT_FALSE(valid(compile(R"({"multipleOf": 0.123456789})"), "1e308"));
  expect_refused(R"({"multipleOf": 0})", SchemaError::Kind::invalid, "/multipleOf");
  expect_refused(R"({"multipleOf": -1})", SchemaError::Kind::invalid, "/multipleOf");
  expect_refused(R"({"minimum": "1"})", SchemaError::Kind::invalid, "/minimum");
}

// ---- strings ------------------------------------------------------------------------------------

TEST(JsonSchemaStrings, LengthInCodePoints) {
  const auto s = compile(R"({"minLength": 2, "maxLength": 3})");
  EXPECT_FALSE(valid(s, "\"a\""));
  EXPECT_TRUE(valid(s, "\"ab\""));
  EXPECT_TRUE(valid(s, "\"abc\""));
  EXPECT_FALSE(valid(s, "\"abcd\""));
  EXPECT_TRUE(valid(s, "\"\u00e9\u00e9\u00e9\""));            // 6 bytes, 3 code points
  EXPECT_TRUE(valid(s, "\"\\ud83d\\udca9\\ud83d\\udca9\""));  // two astral code points
  EXPECT_FALSE(valid(s, "\"\\ud83d\\udca9\""));               // one, in 4 bytes
  EXPECT_EQ(check(s, "\"a\"")->keyword, "minLength");
  EXPECT_EQ(check(s, "\"abcd\"")->keyword, "maxLength");
  EXPECT_TRUE(valid(s, "12345"));
  expect_refused(R"({"minLength": -1})", SchemaError::Kind::invalid, "/minLength");
  expect_refused(R"({"maxLength": 1.5})", SchemaError::Kind::invalid, "/maxLength");
  EXPECT_TRUE(valid(compile(R"({"maxLength": 2.0})"), "\"ab\""));
}

TEST(JsonSchemaStrings, PatternIsASearch) {
  const auto s = compile(R"({"pattern": "[0-9]{3}"})");
  EXPECT_TRUE(valid(s, "\"ab123cd\""));
  EXPECT_FALSE(valid(s, "\"ab12cd\""));
  EXPECT_EQ(check(s, "\"x\"")->keyword, "pattern");
  const auto anchored = compile(R"({"pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$"})");
  EXPECT_TRUE(valid(anchored, "\"DE89370400440532013000\""));
  EXPECT_FALSE(valid(anchored, "\"DE89370400440532013000\\n\""));
  EXPECT_FALSE(valid(anchored, "\"de89370400440532013000\""));
}

TEST(JsonSchemaStrings, PatternsRe2CannotRunAreRefused) {
  expect_refused(R"({"pattern": "(a)\\1"})", SchemaError::Kind::unsupported, "/pattern");
  expect_refused(R"j({"pattern": "a(?=b)"})j", SchemaError::Kind::unsupported, "/pattern");
  expect_refused(R"({"pattern": "(?<!a)b"})", SchemaError::Kind::unsupported, "/pattern");
  expect_refused(R"({"pattern": "a{2000}"})", SchemaError::Kind::unsupported, "/pattern");
  expect_refused(R"({"pattern": "(unclosed"})", SchemaError::Kind::unsupported, "/pattern");
  expect_refused(R"({"patternProperties": {"^a$": {}, "(x)\\1": {}}})",
                 SchemaError::Kind::unsupported, "/patternProperties/(x)\\1");
}

TEST(JsonSchemaStrings, CatastrophicPatternRunsInLinearTime) {
  // (a+)+$ backtracks exponentially in a backtracking engine; RE2 does not backtrack.
  const auto s = compile(R"({"pattern": "^(a+)+$"})");
  const std::string attack = "\"" + std::string(50000, 'a') + "!\"";
  EXPECT_FALSE(valid(s, attack));
}

TEST(JsonSchemaStrings, Format) {
  const auto s = compile(R"({"format": "date"})");
  EXPECT_TRUE(valid(s, "\"2024-02-29\""));
  EXPECT_FALSE(valid(s, "\"2023-02-29\""));
  EXPECT_TRUE(valid(s, "20230229"));  // formats only constrain strings
  EXPECT_EQ(check(s, "\"x\"")->keyword, "format");
  for (const char* name :
       {"date-time", "date", "time", "email", "hostname", "ipv4", "ipv6", "uri", "uuid"}) {
    EXPECT_NO_THROW(compile(std::string(R"({"format": ")") + name + "\"}")) << name;
  }
  expect_refused(R"({"format": "iban"})", SchemaError::Kind::unsupported, "/format");
  CompileOptions lenient;
  lenient.reject_unknown_keywords = false;
  EXPECT_TRUE(valid(compile(R"({"format": "iban"})", lenient), "\"anything\""));
}

// ---- arrays -------------------------------------------------------------------------------------

TEST(JsonSchemaArrays, Items) {
  const auto s = compile(R"({"items": {"type": "integer"}})");
  EXPECT_TRUE(valid(s, "[]"));
  EXPECT_TRUE(valid(s, "[1, 2, 3]"));
  const auto v = check(s, "[1, 2, \"x\"]");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->instance_pointer, "/2");
  EXPECT_EQ(v->keyword, "type");
  EXPECT_EQ(v->schema_pointer, "/items/type");
  EXPECT_TRUE(valid(s, "{\"0\": \"x\"}"));
}

TEST(JsonSchemaArrays, TupleAndAdditionalItems) {
  const auto s =
      compile(R"({"items": [{"type": "string"}, {"type": "number"}], "additionalItems": false})");
  EXPECT_TRUE(valid(s, "[\"a\", 1]"));
  EXPECT_TRUE(valid(s, "[\"a\"]"));
  EXPECT_FALSE(valid(s, "[1, 1]"));
  const auto v = check(s, "[\"a\", 1, null]");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->instance_pointer, "/2");
  EXPECT_EQ(v->keyword, "additionalItems");
  const auto typed = compile(R"({"items": [{}], "additionalItems": {"type": "boolean"}})");
  EXPECT_TRUE(valid(typed, "[1, true, false]"));
  EXPECT_FALSE(valid(typed, "[1, true, 2]"));
  // Without a tuple, additionalItems has nothing to follow and is ignored.
  EXPECT_TRUE(valid(compile(R"({"items": {}, "additionalItems": false})"), "[1, 2]"));
  EXPECT_TRUE(valid(compile(R"({"additionalItems": false})"), "[1, 2]"));
  const auto f = check(compile(R"({"items": false})"), "[1]");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->keyword, "items");
  EXPECT_EQ(f->instance_pointer, "/0");
}

TEST(JsonSchemaArrays, Contains) {
  const auto s = compile(R"({"contains": {"const": 5}})");
  EXPECT_TRUE(valid(s, "[1, 5, 7]"));
  EXPECT_FALSE(valid(s, "[1, 7]"));
  EXPECT_FALSE(valid(s, "[]"));
  EXPECT_EQ(check(s, "[]")->keyword, "contains");
  EXPECT_TRUE(valid(s, "5"));
  EXPECT_FALSE(valid(compile(R"({"contains": true})"), "[]"));
  EXPECT_TRUE(valid(compile(R"({"contains": true})"), "[0]"));
  EXPECT_FALSE(valid(compile(R"({"contains": false})"), "[0]"));
}

TEST(JsonSchemaArrays, Size) {
  const auto s = compile(R"({"minItems": 1, "maxItems": 2})");
  EXPECT_FALSE(valid(s, "[]"));
  EXPECT_TRUE(valid(s, "[1]"));
  EXPECT_TRUE(valid(s, "[1, 2]"));
  EXPECT_FALSE(valid(s, "[1, 2, 3]"));
  EXPECT_EQ(check(s, "[]")->keyword, "minItems");
  EXPECT_EQ(check(s, "[1, 2, 3]")->keyword, "maxItems");
}

TEST(JsonSchemaArrays, UniqueItems) {
  const auto s = compile(R"({"uniqueItems": true})");
  EXPECT_TRUE(valid(s, "[1, 2, \"1\", true, null, [1], {\"a\": 1}]"));
  EXPECT_FALSE(valid(s, "[1, 1.0]"));
  EXPECT_FALSE(valid(s, "[{\"a\": 1, \"b\": 2}, {\"b\": 2, \"a\": 1}]"));
  EXPECT_FALSE(valid(s, "[[1, [2]], [1, [2.0]]]"));
  EXPECT_TRUE(valid(s, "[0, false]"));
  EXPECT_EQ(check(s, "[1, 1]")->keyword, "uniqueItems");
  EXPECT_TRUE(valid(compile(R"({"uniqueItems": false})"), "[1, 1]"));
  // Large arrays take the hashing path.
  std::string big = "[";
  for (int i = 0; i < 500; ++i)
    big += std::to_string(i) + ",";
  EXPECT_TRUE(valid(s, big + "\"end\"]"));
  EXPECT_FALSE(valid(s, big + "250.0]"));
  EXPECT_FALSE(valid(s, big + "0]"));
}

// ---- objects ------------------------------------------------------------------------------------

TEST(JsonSchemaObjects, PropertiesAndRequired) {
  const auto s = compile(R"({
    "type": "object",
    "properties": {"username": {"type": "string"}, "password": {"type": "string", "minLength": 8}},
    "required": ["username", "password"]
  })");
  EXPECT_TRUE(valid(s, R"({"username": "ann", "password": "correct horse"})"));
  auto v = check(s, R"({"username": "ann", "password": "short"})");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->instance_pointer, "/password");
  EXPECT_EQ(v->keyword, "minLength");
  EXPECT_EQ(v->schema_pointer, "/properties/password/minLength");
  v = check(s, R"({"username": "ann"})");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->instance_pointer, "/password");  // the missing member
  EXPECT_EQ(v->keyword, "required");
  EXPECT_EQ(v->schema_pointer, "/required");
  expect_refused(R"({"required": ["a", "a"]})", SchemaError::Kind::invalid, "/required/1");
  expect_refused(R"({"required": "a"})", SchemaError::Kind::invalid, "/required");
  expect_refused(R"({"properties": {"a": 1}})", SchemaError::Kind::invalid, "/properties/a");
}

TEST(JsonSchemaObjects, AdditionalProperties) {
  const auto s = compile(R"({"properties": {"a": {}}, "patternProperties": {"^x-": {}},
                              "additionalProperties": false})");
  EXPECT_TRUE(valid(s, R"({"a": 1, "x-trace": 2})"));
  const auto v = check(s, R"({"a": 1, "admin": true})");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->instance_pointer, "/admin");
  EXPECT_EQ(v->keyword, "additionalProperties");
  const auto typed = compile(R"({"additionalProperties": {"type": "number"}})");
  EXPECT_TRUE(valid(typed, R"({"a": 1, "b": 2.5})"));
  EXPECT_FALSE(valid(typed, R"({"a": "1"})"));
}

TEST(JsonSchemaObjects, PatternProperties) {
  const auto s = compile(
      R"({"patternProperties": {"^amount_": {"type": "number"}, "_eur$": {"minimum": 0}}})");
  EXPECT_TRUE(valid(s, R"({"amount_eur": 5, "other": "x"})"));
  EXPECT_FALSE(valid(s, R"({"amount_eur": -5})"));  // both patterns apply
  EXPECT_FALSE(valid(s, R"({"amount_usd": "5"})"));
}

TEST(JsonSchemaObjects, PropertyNames) {
  const auto s = compile(R"({"propertyNames": {"pattern": "^[a-z_]+$", "maxLength": 8}})");
  EXPECT_TRUE(valid(s, R"({"amount": 1, "iban": 2})"));
  const auto v = check(s, R"({"amount": 1, "Amount": 2})");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->instance_pointer, "/Amount");
  EXPECT_EQ(v->keyword, "pattern");
  EXPECT_EQ(v->schema_pointer, "/propertyNames/pattern");
  // Names longer than the validator's stack buffer still work.
  EXPECT_FALSE(valid(s, "{\"" + std::string(1000, 'a') + "\": 1}"));
  EXPECT_TRUE(valid(compile(R"({"propertyNames": {"maxLength": 2000}})"),
                    "{\"" + std::string(1000, 'a') + "\": 1}"));
  EXPECT_TRUE(valid(compile(R"({"propertyNames": false})"), "{}"));
  EXPECT_EQ(check(compile(R"({"propertyNames": false})"), R"({"a": 1})")->keyword, "propertyNames");
}

TEST(JsonSchemaObjects, Size) {
  const auto s = compile(R"({"minProperties": 1, "maxProperties": 2})");
  EXPECT_FALSE(valid(s, "{}"));
  EXPECT_TRUE(valid(s, R"({"a": 1})"));
  EXPECT_FALSE(valid(s, R"({"a": 1, "b": 2, "c": 3})"));
  EXPECT_EQ(check(s, "{}")->keyword, "minProperties");
  EXPECT_EQ(check(s, R"({"a": 1, "b": 2, "c": 3})")->keyword, "maxProperties");
}

TEST(JsonSchemaObjects, Dependencies) {
  const auto s = compile(R"({"dependencies": {
      "credit_card": ["billing_address"],
      "iban": {"required": ["bic"], "properties": {"bic": {"minLength": 8}}}}})");
  EXPECT_TRUE(valid(s, R"({"name": "x"})"));
  EXPECT_TRUE(valid(s, R"({"credit_card": 1, "billing_address": "x"})"));
  auto v = check(s, R"({"credit_card": 1})");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->keyword, "dependencies");
  EXPECT_EQ(v->instance_pointer, "/billing_address");
  v = check(s, R"({"iban": "DE", "bic": "ABC"})");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->keyword, "minLength");
  EXPECT_EQ(v->instance_pointer, "/bic");
  EXPECT_EQ(check(s, R"({"iban": "DE"})")->keyword, "required");
  EXPECT_FALSE(valid(compile(R"({"dependencies": {"a": false}})"), R"({"a": 1})"));
  expect_refused(R"({"dependencies": {"a": [1]}})", SchemaError::Kind::invalid,
                 "/dependencies/a/0");
}

TEST(JsonSchemaObjects, PointerEscapesMemberNames) {
  const auto s = compile(R"({"additionalProperties": {"type": "string"}})");
  const auto v = check(s, R"({"a/b~c": 1})");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->instance_pointer, "/a~1b~0c");
  const auto nested = compile(R"({"properties": {"list": {"items": {"required": ["id"]}}}})");
  const auto n = check(nested, R"({"list": [{"id": 1}, {}]})");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->instance_pointer, "/list/1/id");
}

// ---- applicators --------------------------------------------------------------------------------

TEST(JsonSchemaApplicators, AllOf) {
  const auto s = compile(R"({"allOf": [{"type": "string"}, {"maxLength": 3}]})");
  EXPECT_TRUE(valid(s, "\"abc\""));
  const auto v = check(s, "\"abcd\"");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->keyword, "maxLength");
  EXPECT_EQ(v->schema_pointer, "/allOf/1/maxLength");
  EXPECT_EQ(check(compile(R"({"allOf": [true, false]})"), "1")->keyword, "allOf");
  expect_refused(R"({"allOf": []})", SchemaError::Kind::invalid, "/allOf");
}

TEST(JsonSchemaApplicators, AnyOf) {
  const auto s = compile(R"({"anyOf": [{"type": "string"}, {"minimum": 10}]})");
  EXPECT_TRUE(valid(s, "\"x\""));
  EXPECT_TRUE(valid(s, "11"));
  EXPECT_EQ(check(s, "5")->keyword, "anyOf");
}

TEST(JsonSchemaApplicators, OneOf) {
  const auto s = compile(R"({"oneOf": [{"type": "integer"}, {"minimum": 2}]})");
  EXPECT_TRUE(valid(s, "1"));
  EXPECT_TRUE(valid(s, "2.5"));
  EXPECT_FALSE(valid(s, "3"));    // both
  EXPECT_FALSE(valid(s, "1.5"));  // neither
  EXPECT_EQ(check(s, "3")->keyword, "oneOf");
}

TEST(JsonSchemaApplicators, Not) {
  const auto s = compile(R"({"not": {"type": "null"}})");
  EXPECT_TRUE(valid(s, "1"));
  EXPECT_EQ(check(s, "null")->keyword, "not");
  EXPECT_FALSE(valid(compile(R"({"not": true})"), "1"));
  EXPECT_TRUE(valid(compile(R"({"not": false})"), "1"));
}

TEST(JsonSchemaApplicators, IfThenElse) {
  const auto s = compile(R"({
    "if": {"properties": {"country": {"const": "DE"}}},
    "then": {"properties": {"postcode": {"pattern": "^[0-9]{5}$"}}},
    "else": {"properties": {"postcode": {"minLength": 1}}}
  })");
  EXPECT_TRUE(valid(s, R"({"country": "DE", "postcode": "10115"})"));
  const auto v = check(s, R"({"country": "DE", "postcode": "SW1A"})");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->keyword, "pattern");
  EXPECT_EQ(v->schema_pointer, "/then/properties/postcode/pattern");
  EXPECT_TRUE(valid(s, R"({"country": "GB", "postcode": "SW1A"})"));
  EXPECT_FALSE(valid(s, R"({"country": "GB", "postcode": ""})"));
  // then/else without if do nothing; if alone does nothing.
  EXPECT_TRUE(valid(compile(R"({"then": false, "else": false})"), "1"));
  EXPECT_TRUE(valid(compile(R"({"if": false})"), "1"));
}

TEST(JsonSchemaApplicators, BooleanSchemas) {
  EXPECT_TRUE(valid(compile("true"), R"({"anything": [1]})"));
  const auto v = check(compile("false"), "1");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->keyword, "false");
  EXPECT_EQ(v->instance_pointer, "");
  EXPECT_TRUE(valid(compile("{}"), "null"));
  expect_refused("1", SchemaError::Kind::invalid, "");
  expect_refused(R"({"not": "x"})", SchemaError::Kind::invalid, "/not");
}

// ---- references ---------------------------------------------------------------------------------

TEST(JsonSchemaRef, RootAndDefinitions) {
  const auto s = compile(R"({
    "definitions": {"amount": {"type": "number", "multipleOf": 0.01},
                    "money": {"properties": {"amount": {"$ref": "#/definitions/amount"}}}},
    "properties": {"total": {"$ref": "#/definitions/money"}, "child": {"$ref": "#"}}
  })");
  EXPECT_TRUE(valid(s, R"({"total": {"amount": 1.25}, "child": {"total": {"amount": 2}}})"));
  const auto v = check(s, R"({"child": {"total": {"amount": 1.255}}})");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->instance_pointer, "/child/total/amount");
  EXPECT_EQ(v->schema_pointer, "/definitions/amount/multipleOf");
}

TEST(JsonSchemaRef, EscapedPointers) {
  const auto s = compile(R"({
    "definitions": {"a/b": {"type": "integer"}, "c~d": {"type": "string"},
                    "e%f": {"type": "null"}, "g\"h": {"type": "boolean"}},
    "properties": {"slash": {"$ref": "#/definitions/a~1b"}, "tilde": {"$ref": "#/definitions/c~0d"},
                   "percent": {"$ref": "#/definitions/e%25f"},
                   "quote": {"$ref": "#/definitions/g%22h"}}
  })");
  EXPECT_TRUE(valid(s, R"({"slash": 1, "tilde": "x", "percent": null, "quote": true})"));
  EXPECT_FALSE(valid(s, R"({"slash": "x"})"));
  EXPECT_FALSE(valid(s, R"({"tilde": 1})"));
  EXPECT_FALSE(valid(s, R"({"percent": 1})"));
  EXPECT_FALSE(valid(s, R"({"quote": 1})"));
}

TEST(JsonSchemaRef, IntoArraysAndSiblingsIgnored) {
  const auto s = compile(R"({"items": [{"type": "integer"}, {"$ref": "#/items/0"}]})");
  EXPECT_TRUE(valid(s, "[1, 2]"));
  EXPECT_FALSE(valid(s, "[1, \"2\"]"));
  CompileOptions lenient;
  lenient.reject_unknown_keywords = false;
  const auto siblings = compile(
      R"({"definitions": {"a": {"type": "array"}}, "properties": {"x": {"$ref": "#/definitions/a", "maxItems": 1}}})",
      lenient);
  EXPECT_TRUE(valid(siblings, R"({"x": [1, 2, 3]})"));
  // In strict mode an assertion beside $ref is refused rather than silently ignored.
  expect_refused(
      R"({"definitions": {"a": {}}, "properties": {"x": {"$ref": "#/definitions/a", "maxItems": 1}}})",
      SchemaError::Kind::unsupported, "/properties/x/maxItems");
  EXPECT_NO_THROW(
      compile(R"({"definitions": {"a": {}}, "$ref": "#/definitions/a", "title": "t"})"));
}

TEST(JsonSchemaRef, IdBasedReferences) {
  const auto tree = compile(R"({
    "$id": "http://example.com/tree",
    "type": "object",
    "properties": {"nodes": {"type": "array", "items": {"$ref": "node"}}},
    "definitions": {"node": {"$id": "http://example.com/node",
                             "properties": {"value": {"type": "number"}, "subtree": {"$ref": "tree"}}}}
  })");
  EXPECT_TRUE(valid(tree, R"({"nodes": [{"value": 1, "subtree": {"nodes": [{"value": 2}]}}]})"));
  EXPECT_FALSE(valid(tree, R"({"nodes": [{"value": 1, "subtree": {"nodes": [{"value": "x"}]}}]})"));

  const auto anchor = compile(R"({"allOf": [{"$ref": "#foo"}],
                                   "definitions": {"A": {"$id": "#foo", "type": "integer"}}})");
  EXPECT_TRUE(valid(anchor, "1"));
  EXPECT_FALSE(valid(anchor, "\"a\""));

  const auto absolute = compile(R"({"allOf": [{"$ref": "http://localhost:1234/bar#foo"}],
      "definitions": {"A": {"$id": "http://localhost:1234/bar#foo", "type": "integer"}}})");
  EXPECT_TRUE(valid(absolute, "1"));
  EXPECT_FALSE(valid(absolute, "\"a\""));

  const auto nested = compile(R"({"$id": "http://localhost:1234/root",
      "allOf": [{"$ref": "http://localhost:1234/nested.json#foo"}],
      "definitions": {"A": {"$id": "nested.json",
                            "definitions": {"B": {"$id": "#foo", "type": "integer"}}}}})");
  EXPECT_TRUE(valid(nested, "1"));
  EXPECT_FALSE(valid(nested, "\"a\""));

  const auto relative = compile(R"({"$id": "http://x.test/schemas/root.json",
      "properties": {"p": {"$ref": "sub/item.json#/definitions/n"}},
      "definitions": {"item": {"$id": "sub/item.json", "definitions": {"n": {"type": "null"}}}}})");
  EXPECT_TRUE(valid(relative, R"({"p": null})"));
  EXPECT_FALSE(valid(relative, R"({"p": 0})"));
}

TEST(JsonSchemaRef, UnresolvableAndRemote) {
  expect_refused(R"({"$ref": "#/definitions/missing"})", SchemaError::Kind::invalid, "/$ref");
  expect_refused(R"({"$ref": "#nowhere"})", SchemaError::Kind::invalid, "/$ref");
  expect_refused(R"({"properties": {"a": {"$ref": "other.json"}}})",
                 SchemaError::Kind::remote_reference, "/properties/a/$ref");
  expect_refused(R"({"$ref": "http://json-schema.org/draft-07/schema#"})",
                 SchemaError::Kind::remote_reference, "/$ref");
  expect_refused(R"({"$ref": 5})", SchemaError::Kind::invalid, "/$ref");
  expect_refused(R"({"$ref": "#/definitions/x", "definitions": {"x": 5}})",
                 SchemaError::Kind::invalid, "/definitions/x");
}

TEST(JsonSchemaRef, CyclesWithoutProgressAreRefused) {
  expect_refused(R"({"$ref": "#"})", SchemaError::Kind::reference_cycle, "");
  expect_refused(R"({"definitions": {"a": {"$ref": "#/definitions/b"},
                                     "b": {"$ref": "#/definitions/a"}},
                     "allOf": [{"$ref": "#/definitions/a"}]})",
                 SchemaError::Kind::reference_cycle, "/definitions/a");
  expect_refused(R"({"anyOf": [{"type": "string"}, {"$ref": "#"}]})",
                 SchemaError::Kind::reference_cycle, "");
  expect_refused(R"({"not": {"not": {"$ref": "#"}}})", SchemaError::Kind::reference_cycle, "");
  // Recursion through properties or items consumes the instance and is fine.
  const auto list = compile(R"({"properties": {"next": {"$ref": "#"}, "v": {"type": "integer"}}})");
  EXPECT_TRUE(valid(list, R"({"v": 1, "next": {"v": 2, "next": {"v": 3}}})"));
  EXPECT_FALSE(valid(list, R"({"v": 1, "next": {"v": 2, "next": {"v": "x"}}})"));
}

// ---- limits -------------------------------------------------------------------------------------

TEST(JsonSchemaLimits, DeepInstances) {
  CompileOptions options;
  options.max_instance_depth = 10;
  const auto s =
      compile(R"({"items": {"$ref": "#"}, "additionalProperties": {"$ref": "#"}})", options);
  std::string ok, deep;
  for (int i = 0; i < 10; ++i)
    ok += "[";
  for (int i = 0; i < 10; ++i)
    ok += "]";
  EXPECT_TRUE(valid(s, ok));
  for (int i = 0; i < 11; ++i)
    deep += "[";
  for (int i = 0; i < 11; ++i)
    deep += "]";
  const auto v = check(s, deep);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->keyword, "depth");
  // Depth is only counted where the schema looks: an unconstrained deep value is fine.
  EXPECT_TRUE(valid(compile("{}", options), deep));
}

TEST(JsonSchemaLimits, ConcurrentUseAndCopies) {
  const auto s = compile(R"({"properties": {"n": {"type": "integer", "maximum": 100}}})");
  const JsonSchema copy = s;  // shares the compiled program
  EXPECT_EQ(copy.node_count(), s.node_count());
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const json::value good = json::parse(R"({"n": 5})");
      const json::value bad = json::parse(R"({"n": 500})");
      for (int i = 0; i < 2000; ++i) {
        if (!copy.is_valid(good) || copy.validate(bad)->instance_pointer != "/n") ++failures[t];
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  for (int f : failures)
    EXPECT_EQ(f, 0);
}

// ---- keywords and dialect -----------------------------------------------------------------------

TEST(JsonSchemaKeywords, UnknownKeywordsAreRefusedByDefault) {
  expect_refused(R"({"properties": {"a": {"maxLenght": 3}}})", SchemaError::Kind::unsupported,
                 "/properties/a/maxLenght");
  expect_refused(R"({"contentEncoding": "base64"})", SchemaError::Kind::unsupported,
                 "/contentEncoding");
  EXPECT_NO_THROW(compile(R"({"x-internal-id": 7, "title": "t", "description": "d",
      "$comment": "c", "default": 1, "examples": [1], "readOnly": true, "writeOnly": false,
      "$schema": "http://json-schema.org/draft-07/schema#", "$id": "http://e.test/s"})"));
  CompileOptions lenient;
  lenient.reject_unknown_keywords = false;
  EXPECT_TRUE(valid(compile(R"({"maxLenght": 3})", lenient), "\"long string\""));
}

TEST(JsonSchemaKeywords, OnlyDraft07) {
  expect_refused(R"({"$schema": "http://json-schema.org/draft-04/schema#"})",
                 SchemaError::Kind::unsupported, "/$schema");
  EXPECT_NO_THROW(compile(R"({"$schema": "http://json-schema.org/draft-07/schema"})"));
  expect_refused(R"({"title": 1})", SchemaError::Kind::invalid, "/title");
}

TEST(JsonSchemaKeywords, ErrorMessagesNameThePlace) {
  try {
    compile(R"j({"properties": {"iban": {"pattern": "(?=x)"}}})j");
    FAIL();
  } catch (const SchemaError& error) {
    EXPECT_EQ(std::string(error.what()).find("/properties/iban/pattern: "), 0u) << error.what();
    EXPECT_NE(error.message().find("lookahead"), std::string::npos);
    EXPECT_EQ(error.line(), 0u);
  }
}

// ---- files --------------------------------------------------------------------------------------

class SchemaFile : public ::testing::Test {
 protected:
  std::filesystem::path write(const std::string& text) {
    path_ =
        std::filesystem::temp_directory_path() /
        ("portcullis_schema_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".json");
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override {
    if (!path_.empty()) std::filesystem::remove(path_);
  }
  std::filesystem::path path_;
};

TEST_F(SchemaFile, CompilesAFile) {
  const auto s = JsonSchema::compile_file(write(R"({"type": "object", "required": ["a"]})"));
  EXPECT_TRUE(valid(s, R"({"a": 1})"));
}

TEST_F(SchemaFile, ErrorsCarryLineAndColumn) {
  const auto path = write("{\n  \"properties\": {\n    \"a\": {\"minLength\": -1}\n  }\n}\n");
  try {
    JsonSchema::compile_file(path);
    FAIL();
  } catch (const SchemaError& error) {
    EXPECT_EQ(error.pointer(), "/properties/a/minLength");
    EXPECT_EQ(error.line(), 3u);
    EXPECT_EQ(error.column(), 24u);
    EXPECT_EQ(std::string(error.what()),
              "3:24: must be a non-negative integer (at /properties/a/minLength)");
  }
}

TEST_F(SchemaFile, NotJsonAndRepeatedNames) {
  try {
    JsonSchema::compile_file(write("{\n  \"type\": \"object\",\n  oops\n}"));
    FAIL();
  } catch (const SchemaError& error) {
    EXPECT_EQ(error.kind(), SchemaError::Kind::not_json);
    EXPECT_EQ(error.line(), 3u);
  }
  try {
    JsonSchema::compile_file(write(R"({"type": "object", "type": "string"})"));
    FAIL();
  } catch (const SchemaError& error) {
    EXPECT_EQ(error.kind(), SchemaError::Kind::not_json);
  }
  try {
    JsonSchema::compile_file("/nonexistent/portcullis/schema.json");
    FAIL();
  } catch (const SchemaError& error) {
    EXPECT_EQ(error.kind(), SchemaError::Kind::not_json);
  }
}

TEST(SchemaFiles, ReferenceLoginSchema) {
  // This file is tests/unit/validate/json_schema_test.cpp in the source tree.
  const auto path =
      std::filesystem::path(__FILE__).parent_path().parent_path().parent_path().parent_path() /
      "conf/schemas/login.json";
  const auto s = JsonSchema::compile_file(path);
  EXPECT_TRUE(valid(s, R"({"username": "ann.smith", "password": "correct horse battery"})"));
  EXPECT_EQ(check(s, R"({"username": "ann", "password": "short"})")->instance_pointer, "/password");
  EXPECT_EQ(check(s, R"({"username": "ann smith", "password": "correct horse battery"})")
                ->instance_pointer,
            "/username");
  EXPECT_EQ(check(s, R"({"username": "ann", "password": "correct horse battery", "admin": true})")
                ->keyword,
            "additionalProperties");
  EXPECT_EQ(check(s, R"({"username": "ann"})")->keyword, "required");
}

}  // namespace
}  // namespace portcullis::validate
