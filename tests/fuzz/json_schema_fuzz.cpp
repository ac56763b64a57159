// Fuzz target for JSON Schema: the input is "<schema JSON>\0<instance JSON>" (without a NUL byte,
// the schema is validated against itself). The schema compiles or is refused with a SchemaError
// pointing into the document; a compiled schema compiles the same way without the unknown-keyword
// check; validate() and is_valid() agree, are deterministic, and a violation names a keyword and
// well-formed pointers. Any other exception or a crash is a finding.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "portcullis/validate/json_body.hpp"
#include "portcullis/validate/json_schema.hpp"

namespace {

using namespace portcullis;
using validate::JsonSchema;
using validate::SchemaError;

bool pointer_like(std::string_view p) {
  return p.empty() || p.front() == '/';
}

std::optional<JsonSchema> compile(const boost::json::value& document, bool strict) {
  validate::CompileOptions options;
  options.reject_unknown_keywords = strict;
  try {
    JsonSchema schema = JsonSchema::compile(document, options);
    FUZZ_CHECK(schema.node_count() >= 1);
    return schema;
  } catch (const SchemaError& error) {
    FUZZ_CHECK(pointer_like(error.pointer()));
    FUZZ_CHECK(!error.message().empty() && error.what()[0] != '\0');
    FUZZ_CHECK(error.kind() != SchemaError::Kind::not_json);
    return std::nullopt;
  }
}

void check_validation(const JsonSchema& schema, const boost::json::value& instance) {
  const auto violation = schema.validate(instance);
  FUZZ_CHECK(violation.has_value() != schema.is_valid(instance));
  if (!violation) return;
  FUZZ_CHECK(!violation->keyword.empty());
  FUZZ_CHECK(pointer_like(violation->instance_pointer));
  FUZZ_CHECK(pointer_like(violation->schema_pointer));
  const auto again = schema.validate(instance);
  FUZZ_CHECK(again && again->keyword == violation->keyword &&
             again->instance_pointer == violation->instance_pointer &&
             again->schema_pointer == violation->schema_pointer);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto nul = input.find('\0');
  const std::string_view schema_text = input.substr(0, nul);
  const std::string_view instance_text =
      nul == std::string_view::npos ? schema_text : input.substr(nul + 1);

  validate::JsonLimits limits;
  limits.max_bytes = 64 * 1024;
  limits.max_depth = 24;
  limits.max_string_bytes = 4096;
  const validate::JsonBody schema_json = validate::parse_json_body(schema_text, limits);
  if (!schema_json.ok()) return 0;
  const auto strict = compile(schema_json.value, true);
  const auto lenient = compile(schema_json.value, false);
  if (strict) FUZZ_CHECK(lenient.has_value());
  if (!lenient) return 0;

  const validate::JsonBody instance = validate::parse_json_body(instance_text, limits);
  if (!instance.ok()) return 0;
  check_validation(*lenient, instance.value);
  if (strict) {
    check_validation(*strict, instance.value);
    FUZZ_CHECK(strict->is_valid(instance.value) == lenient->is_valid(instance.value));
  }
  return 0;
}
