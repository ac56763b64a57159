#pragma once
// The compiled form of a JsonSchema, shared by the compiler and the validator: a flat vector of
// nodes, one per subschema, that refer to each other by index. A $ref is an index, resolved once.

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <re2/re2.h>

#include <boost/json/value.hpp>

#include "portcullis/validate/formats.hpp"
#include "portcullis/validate/json_schema.hpp"

namespace portcullis::validate::detail {

inline constexpr std::uint32_t kNoNode = std::numeric_limits<std::uint32_t>::max();
inline constexpr std::uint64_t kUnbounded = std::numeric_limits<std::uint64_t>::max();

// The largest max_instance_depth honoured; the validator keeps the instance path in a fixed
// array of this size so that it never allocates.
inline constexpr std::size_t kMaxInstanceDepth = 256;

// The types of the `type` keyword, as bits. An integer-valued number has both number and integer.
enum TypeBit : std::uint8_t {
  kTypeNull = 1,
  kTypeBoolean = 2,
  kTypeObject = 4,
  kTypeArray = 8,
  kTypeNumber = 16,
  kTypeString = 32,
  kTypeInteger = 64,
};

// A JSON number as Boost.JSON holds it, compared exactly across the three representations.
struct Number {
  enum class Kind : std::uint8_t { int64, uint64, real };
  Kind kind = Kind::int64;
  std::int64_t i = 0;
  std::uint64_t u = 0;
  double d = 0;

  static Number of(const boost::json::value& v);  // v must be a number
};

// -1, 0 or 1 as a is less than, equal to or greater than b, mathematically.
int compare(const Number& a, const Number& b);

// True when `x` is an integer multiple of `m` (m > 0); for decimals, within a few ulps.
bool is_multiple_of(const Number& x, const Number& m);

// JSON equality as JSON Schema defines it: numbers by value (1 == 1.0), objects regardless of
// member order.
bool json_equal(const boost::json::value& a, const boost::json::value& b);

// A hash consistent with json_equal.
std::size_t json_hash(const boost::json::value& v);

struct PatternSchema {
  std::string pattern;  // as written, for messages
  std::unique_ptr<RE2> re;
  std::uint32_t schema = kNoNode;
};

struct Property {
  std::string name;
  std::uint32_t schema = kNoNode;
  bool required = false;  // also listed in `required`: counted during the member pass
};

struct Dependency {
  std::string name;
  std::uint32_t schema = kNoNode;     // the schema form, or
  std::vector<std::string> required;  // the property-list form
};

struct Node {
  enum class Kind : std::uint8_t { accept_all, reject_all, schema };
  Kind kind = Kind::schema;
  std::string location;  // JSON pointer of this subschema in the schema document

  std::uint32_t ref = kNoNode;  // $ref: when set, every other keyword is ignored (draft-07)

  std::uint8_t types = 0;  // 0 = no `type` keyword
  bool has_const = false;
  bool has_enum = false;
  bool enum_all_strings = false;
  boost::json::value const_value;
  std::vector<boost::json::value> enum_values;
  std::vector<std::string> enum_strings;  // sorted, when every enum value is a string

  // numbers
  bool has_minimum = false, has_maximum = false;
  bool has_exclusive_minimum = false, has_exclusive_maximum = false;
  bool has_multiple_of = false;
  Number minimum, maximum, exclusive_minimum, exclusive_maximum, multiple_of;

  // strings
  std::uint64_t min_length = 0;
  std::uint64_t max_length = kUnbounded;
  std::string pattern_source;
  std::unique_ptr<RE2> pattern;
  bool has_format = false;
  Format format = Format::date_time;

  // arrays
  std::uint32_t items = kNoNode;           // one schema for every element, or
  std::vector<std::uint32_t> tuple_items;  // one per position
  bool items_is_tuple = false;
  std::uint32_t additional_items = kNoNode;  // after the tuple
  std::uint32_t contains = kNoNode;
  std::uint64_t min_items = 0;
  std::uint64_t max_items = kUnbounded;
  bool unique_items = false;

  // objects
  std::uint64_t min_properties = 0;
  std::uint64_t max_properties = kUnbounded;
  std::vector<std::string> required;
  std::vector<std::string> required_elsewhere;  // required names without a property schema
  std::size_t required_with_property = 0;       // required names that have one
  std::vector<Property> properties;             // sorted by name
  std::vector<PatternSchema> pattern_properties;
  std::uint32_t additional_properties = kNoNode;
  std::uint32_t property_names = kNoNode;
  std::vector<Dependency> dependencies;
  bool walks_members = false;  // any of properties, patternProperties, additionalProperties,
                               // propertyNames: members need a pass

  // applicators on the same instance
  std::vector<std::uint32_t> all_of, any_of, one_of;
  std::uint32_t not_schema = kNoNode;
  std::uint32_t if_schema = kNoNode, then_schema = kNoNode, else_schema = kNoNode;
};

}  // namespace portcullis::validate::detail

namespace portcullis::validate {

struct JsonSchema::Program {
  std::vector<detail::Node> nodes;
  std::uint32_t root = 0;
  std::size_t max_instance_depth = 64;
};

}  // namespace portcullis::validate
