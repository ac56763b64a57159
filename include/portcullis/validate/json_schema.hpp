#pragma once
// JSON Schema draft-07, compiled once when the policy loads and then applied to request bodies.
//
// Compiling resolves every local $ref ("#", "#/definitions/x", JSON pointers with ~0, ~1 and
// %-escapes, $id-based references within the document) and every `pattern` to an RE2 program,
// so that validating a body allocates nothing on success, never backtracks, and never meets a
// surprise: a pattern RE2 cannot run, a reference that leads outside the document, a $ref cycle
// that would recurse without consuming the instance, a keyword or format this implementation does
// not enforce — each is a compile error pointing into the schema.
//
// Supported: type, enum, const, properties, required, additionalProperties, patternProperties,
// propertyNames, minProperties, maxProperties, dependencies, items, additionalItems, contains,
// minItems, maxItems, uniqueItems, minLength, maxLength (in code points), pattern, minimum,
// maximum, exclusiveMinimum, exclusiveMaximum, multipleOf, allOf, anyOf, oneOf, not,
// if/then/else, definitions, $ref, $id, boolean schemas, and format as an assertion for
// date-time, date, time, email, hostname, ipv4, ipv6, uri and uuid (see formats.hpp).
// Annotations ($schema, $comment, title, description, default, examples, readOnly, writeOnly)
// are accepted and ignored. Patterns are ECMA-262 (see ecma_regex.hpp).
//
// Numbers: integers compare exactly (int64 and uint64 ranges); decimals are doubles, so
// multipleOf 0.01 accepts 19.99 (the quotient is integral within a few ulps) and refuses 19.991.

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

namespace portcullis::validate {

// Why a schema was refused, and where. Thrown only while compiling (that is, while loading the
// policy); validation itself never throws.
class SchemaError : public std::runtime_error {
 public:
  enum class Kind {
    invalid,           // not a valid draft-07 schema: "minLength": -1, "type": "strin", ...
    unsupported,       // valid, but not enforced here: an unknown keyword or format, a pattern
                       // RE2 cannot run (backreferences, lookaround)
    remote_reference,  // a $ref that leaves the document (another file, a URL)
    reference_cycle,   // $ref/allOf/... loop back to a schema without descending into the instance
    not_json,          // (files only) the file is not JSON, or repeats a member name
  };

  SchemaError(Kind kind, std::string pointer, std::string message);

  Kind kind() const { return kind_; }
  // RFC 6901 pointer to the offending place in the schema document ("/properties/iban/pattern").
  const std::string& pointer() const { return pointer_; }
  const std::string& message() const { return message_; }
  // Set by JsonSchema::compile_file: 1-based line and column of the offending value, else 0.
  std::size_t line() const { return line_; }
  std::size_t column() const { return column_; }

  // "<pointer>: <message>", or "<line>:<column>: <message> (at <pointer>)" once the position in
  // the file is known.
  const char* what() const noexcept override { return what_.c_str(); }

  void set_position(std::size_t line, std::size_t column);

 private:
  Kind kind_;
  std::string pointer_;
  std::string message_;
  std::size_t line_ = 0;
  std::size_t column_ = 0;
  std::string what_;
};

struct CompileOptions {
  // Draft-07 ignores keywords it does not define. A gateway would rather refuse a schema in which
  // a typo ("maxLenght") or an unenforced keyword (contentEncoding) silently disables a check, so
  // by default those are compile errors. Names starting with "x-" (vendor extensions) are always
  // allowed. Set false for strict draft-07 behaviour (the conformance suite needs it: it keeps
  // subschemas under made-up keys and reaches them by JSON pointer).
  bool reject_unknown_keywords = true;

  // Nesting of arrays and objects (counted as JsonLimits::max_depth counts it) beyond which
  // validate() fails with keyword "depth" wherever the schema looks inside. Bodies are normally
  // bounded earlier by JsonLimits::max_depth. At most 256.
  std::size_t max_instance_depth = 64;
};

// The first failure found while validating. Keywords are checked in a fixed order (a value's own
// type, enum and size keywords first, then its members in document order, then missing required
// members, then allOf and friends), so the same body always yields the same violation.
struct Violation {
  // RFC 6901 pointer into the instance: "" for the whole body, "/password", "/items/3". For
  // `required` (and property `dependencies`) it names the missing member, for
  // `additionalProperties` and `propertyNames` the offending member. Member names come from the
  // client; escape the pointer as a JSON string before echoing it.
  std::string instance_pointer;
  // The keyword that failed: "minLength", "required", "anyOf", ...; "false" for a `false` schema
  // at the root, "depth" when the instance is nested beyond max_instance_depth. Static storage.
  std::string_view keyword;
  // Where that keyword sits in the schema: "/properties/password/minLength".
  std::string schema_pointer;
};

// An immutable compiled schema. Cheap to copy (shared state); safe to use from many threads.
class JsonSchema {
 public:
  // Compiles `document` (a draft-07 schema: an object or a boolean). Throws SchemaError.
  static JsonSchema compile(const boost::json::value& document, const CompileOptions& options = {});

  // Reads, parses (repeated member names refused) and compiles a schema file. Throws SchemaError
  // with line and column set when the offending place can be located in the file, so that
  // path + ":" + what() reads "schemas/login.json:3:24: must be a non-negative integer (at
  // /properties/a/minLength)". A file that cannot be read is a not_json error without position.
  static JsonSchema compile_file(const std::filesystem::path& path,
                                 const CompileOptions& options = {});

  // nullopt when `instance` is valid, else the first violation. Does not allocate unless it
  // fails (propertyNames on names over 200 bytes and uniqueItems on arrays over 32 elements
  // aside). Never throws.
  std::optional<Violation> validate(const boost::json::value& instance) const;

  // The same verdict without building the violation: the fastest check.
  bool is_valid(const boost::json::value& instance) const;

  // Number of compiled schema nodes (every subschema, boolean ones included); for tests and logs.
  std::size_t node_count() const;

  struct Program;  // the compiled form, defined in src/validate

 private:
  explicit JsonSchema(std::shared_ptr<const Program> program) : program_(std::move(program)) {}
  std::shared_ptr<const Program> program_;
};

}  // namespace portcullis::validate
