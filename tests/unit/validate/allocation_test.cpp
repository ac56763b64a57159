// validate() on a valid body allocates nothing: counted by replacing the global allocation
// functions for this test binary (they only count, on the calling thread, while asked to).

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <new>

#include <boost/json/parse.hpp>

#include "portcullis/validate/json_schema.hpp"

namespace {
thread_local bool counting = false;
thread_local long allocations = 0;
}  // namespace

// GCC pairs the inlined malloc and free across these replacements and warns; they do match.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  if (counting) ++allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  return ::operator new(size);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}

#pragma GCC diagnostic pop

namespace portcullis::validate {
namespace {

long allocations_during(const std::function<void()>& work) {
  allocations = 0;
  counting = true;
  work();
  counting = false;
  return allocations;
}

TEST(Allocation, ValidBodiesCostNoAllocation) {
  const auto schema = JsonSchema::compile(boost::json::parse(R"({
    "definitions": {"iban": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$"}},
    "type": "object",
    "properties": {
      "amount": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.01},
      "currency": {"enum": ["EUR", "USD", "GBP"]},
      "date": {"type": "string", "format": "date"},
      "debtor": {"$ref": "#/definitions/iban"},
      "beneficiary": {"type": "object", "properties": {"iban": {"$ref": "#/definitions/iban"},
                      "name": {"type": "string", "maxLength": 70}}, "required": ["iban"],
                      "additionalProperties": false},
      "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
      "meta": {"propertyNames": {"pattern": "^[a-z]+$"}}
    },
    "required": ["amount", "currency"],
    "anyOf": [{"required": ["debtor"]}, {"required": ["beneficiary"]}],
    "additionalProperties": false
  })"));
  const auto body = boost::json::parse(R"({"amount": 19.99, "currency": "EUR",
    "date": "2024-06-28", "debtor": "DE89370400440532013000",
    "beneficiary": {"iban": "FR1420041010050500013M02606", "name": "Dupont"},
    "tags": ["a", "b"], "meta": {"source": 1}})");
  ASSERT_FALSE(schema.validate(body));  // warms RE2's caches
  EXPECT_EQ(allocations_during([&] { EXPECT_FALSE(schema.validate(body)); }), 0);
  EXPECT_EQ(allocations_during([&] { EXPECT_TRUE(schema.is_valid(body)); }), 0);
  // A failure builds the violation, which may allocate.
  const auto bad = boost::json::parse(R"({"amount": 19.999, "currency": "EUR", "debtor": "x"})");
  EXPECT_TRUE(schema.validate(bad));
}

}  // namespace
}  // namespace portcullis::validate
