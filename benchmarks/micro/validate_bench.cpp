// Cost of checking a JSON request body: parse under limits (repeated names refused) and validate
// against a compiled draft-07 schema, for a realistic credit-transfer request of about 1 KiB and a
// bulk request of about 16 KiB. Throughput is reported as bytes/s, and "time_per_KiB" gives the
// cost per KiB of body directly.

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>

#include "portcullis/validate/json_body.hpp"
#include "portcullis/validate/json_schema.hpp"

namespace {

using portcullis::validate::JsonBody;
using portcullis::validate::JsonLimits;
using portcullis::validate::JsonSchema;

constexpr const char* kDefinitions = R"(
  "definitions": {
    "iban": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$"},
    "bic": {"type": "string", "pattern": "^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$"},
    "amount": {
      "type": "object",
      "properties": {
        "value": {"type": "number", "exclusiveMinimum": 0, "maximum": 999999999.99,
                  "multipleOf": 0.01},
        "currency": {"enum": ["EUR", "USD", "GBP", "CHF", "JPY", "SEK", "NOK", "DKK", "PLN",
                              "CZK", "HUF", "RON", "BGN", "CAD", "AUD", "NZD", "SGD", "HKD",
                              "CNY", "INR", "ZAR", "MXN", "BRL", "TRY", "ILS", "AED", "SAR",
                              "KRW", "THB", "ISK"]}
      },
      "required": ["value", "currency"],
      "additionalProperties": false
    },
    "address": {
      "type": "object",
      "properties": {
        "street": {"type": "string", "minLength": 1, "maxLength": 70},
        "building_number": {"type": "string", "maxLength": 16},
        "postcode": {"type": "string", "pattern": "^[A-Za-z0-9 -]{2,16}$"},
        "city": {"type": "string", "minLength": 1, "maxLength": 35},
        "country": {"type": "string", "pattern": "^[A-Z]{2}$"}
      },
      "required": ["city", "country"],
      "additionalProperties": false
    },
    "party": {
      "type": "object",
      "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 140},
        "iban": {"$ref": "#/definitions/iban"},
        "bic": {"$ref": "#/definitions/bic"},
        "email": {"type": "string", "format": "email"},
        "address": {"$ref": "#/definitions/address"}
      },
      "required": ["name", "iban"],
      "additionalProperties": false
    },
    "payment": {
      "type": "object",
      "properties": {
        "payment_id": {"type": "string", "format": "uuid"},
        "end_to_end_id": {"type": "string", "pattern": "^[A-Za-z0-9/?:().,'+ -]{1,35}$"},
        "created_at": {"type": "string", "format": "date-time"},
        "requested_execution_date": {"type": "string", "format": "date"},
        "instructed_amount": {"$ref": "#/definitions/amount"},
        "debtor": {"$ref": "#/definitions/party"},
        "beneficiary": {"$ref": "#/definitions/party"},
        "charge_bearer": {"enum": ["DEBT", "CRED", "SHAR", "SLEV"]},
        "purpose_code": {"type": "string", "pattern": "^[A-Z]{4}$"},
        "instant": {"type": "boolean"},
        "remittance_information": {"type": "string", "maxLength": 140},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 32}, "maxItems": 10,
                 "uniqueItems": true}
      },
      "required": ["payment_id", "end_to_end_id", "instructed_amount", "debtor", "beneficiary",
                   "requested_execution_date"],
      "additionalProperties": false
    }
  })";

std::string single_schema() {
  return std::string(R"({"$schema": "http://json-schema.org/draft-07/schema#",
                         "$ref": "#/definitions/payment",)") +
         kDefinitions + "}";
}

std::string bulk_schema() {
  return std::string(R"({"$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
      "batch_id": {"type": "string", "format": "uuid"},
      "submitted_at": {"type": "string", "format": "date-time"},
      "control_sum": {"type": "number", "minimum": 0, "multipleOf": 0.01},
      "payments": {"type": "array", "minItems": 1, "maxItems": 100,
                   "items": {"$ref": "#/definitions/payment"}}
    },
    "required": ["batch_id", "payments"],
    "additionalProperties": false,)") +
         kDefinitions + "}";
}

std::string payment(int n) {
  char buffer[1200];
  std::snprintf(buffer, sizeof buffer,
                R"({
  "payment_id": "3f2c8a1e-7b4d-4c9a-9e21-%012d",
  "end_to_end_id": "E2E-2024-06-27-%06d",
  "created_at": "2024-06-27T09:15:30.123+02:00",
  "requested_execution_date": "2024-06-28",
  "instructed_amount": {"value": %d.%02d, "currency": "EUR"},
  "debtor": {
    "name": "Muster Handels GmbH",
    "iban": "DE89370400440532013000",
    "bic": "COBADEFFXXX",
    "email": "treasury@muster-handel.example",
    "address": {"street": "Hauptstrasse", "building_number": "12a", "postcode": "10115",
                "city": "Berlin", "country": "DE"}
  },
  "beneficiary": {
    "name": "Fournitures Dupont SARL",
    "iban": "FR1420041010050500013M02606",
    "bic": "PSSTFRPPPAR",
    "email": "comptabilite@dupont-fournitures.example",
    "address": {"street": "Rue de Rivoli", "building_number": "44", "postcode": "75004",
                "city": "Paris", "country": "FR"}
  },
  "charge_bearer": "SLEV",
  "purpose_code": "SUPP",
  "instant": false,
  "remittance_information": "Invoice INV-2024-%05d, order 7781-A, thank you",
  "tags": ["supplier", "q2", "recurring"]
})",
                n, n, 1000 + n * 37, n % 100, n);
  return buffer;
}

std::string bulk_body(std::size_t target_bytes) {
  std::string body = R"({"batch_id": "9b1d4c2e-5a6f-4e3d-8c7b-1a2b3c4d5e6f",)"
                     R"( "submitted_at": "2024-06-27T09:15:00Z", "control_sum": 123456.78,)"
                     R"( "payments": [)";
  for (int n = 0; body.size() < target_bytes - 1100; ++n) {
    if (n > 0) body += ",\n";
    body += payment(n);
  }
  return body + "]}";
}

struct Fixture {
  JsonSchema schema;
  std::string body;
};

Fixture make(const std::string& schema_text, std::string body) {
  Fixture f{JsonSchema::compile(boost::json::parse(schema_text)), std::move(body)};
  JsonLimits limits;
  const JsonBody parsed = portcullis::validate::parse_json_body(f.body, limits);
  if (!parsed.ok() || f.schema.validate(parsed.value)) {
    std::fprintf(stderr, "benchmark body does not validate\n");
    std::abort();
  }
  return f;
}

const Fixture& fixture(int which) {
  static const Fixture single = make(single_schema(), payment(1));
  static const Fixture bulk = make(bulk_schema(), bulk_body(16 * 1024));
  return which == 0 ? single : bulk;
}

void report(benchmark::State& state, const Fixture& f) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.body.size()));
  state.SetLabel(std::to_string(f.body.size()) + " B body");
  state.counters["time_per_KiB"] = benchmark::Counter(
      static_cast<double>(f.body.size()) / 1024.0,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// What the gateway does per request: parse under limits, then validate.
void BM_ParseAndValidate(benchmark::State& state, int which) {
  const Fixture& f = fixture(which);
  const JsonLimits limits;
  for (auto _ : state) {
    const JsonBody body = portcullis::validate::parse_json_body(f.body, limits);
    auto violation = f.schema.validate(body.value);
    benchmark::DoNotOptimize(violation);
  }
  report(state, f);
}
BENCHMARK_CAPTURE(BM_ParseAndValidate, 1KiB, 0);
BENCHMARK_CAPTURE(BM_ParseAndValidate, 16KiB, 1);

// The same with the document in a per-request arena instead of the heap.
void BM_ParseAndValidateArena(benchmark::State& state, int which) {
  const Fixture& f = fixture(which);
  const JsonLimits limits;
  std::vector<unsigned char> arena_buffer(64 * 1024);
  for (auto _ : state) {
    boost::json::monotonic_resource arena(arena_buffer.data(), arena_buffer.size());
    const JsonBody body = portcullis::validate::parse_json_body(f.body, limits, &arena);
    auto violation = f.schema.validate(body.value);
    benchmark::DoNotOptimize(violation);
  }
  report(state, f);
}
BENCHMARK_CAPTURE(BM_ParseAndValidateArena, 1KiB, 0);
BENCHMARK_CAPTURE(BM_ParseAndValidateArena, 16KiB, 1);

// The recommended shape for the connection loop: one parser kept per connection (reset per
// request) and the document in a per-request arena, so that a request costs no heap allocation
// while it fits the arena.
void BM_ParseAndValidateReused(benchmark::State& state, int which) {
  const Fixture& f = fixture(which);
  const JsonLimits limits;
  std::vector<unsigned char> arena_buffer(64 * 1024);
  portcullis::validate::JsonBodyParser parser(limits);
  for (auto _ : state) {
    boost::json::monotonic_resource arena(arena_buffer.data(), arena_buffer.size());
    parser.reset(&arena);
    if (parser.write(f.body) != portcullis::core::Reason::none ||
        parser.finish() != portcullis::core::Reason::none) {
      state.SkipWithError("parse failed");
      break;
    }
    const boost::json::value document = parser.release();
    auto violation = f.schema.validate(document);
    benchmark::DoNotOptimize(violation);
  }
  report(state, f);
}
BENCHMARK_CAPTURE(BM_ParseAndValidateReused, 1KiB, 0);
BENCHMARK_CAPTURE(BM_ParseAndValidateReused, 16KiB, 1);

// The two halves on their own.
void BM_ParseOnly(benchmark::State& state, int which) {
  const Fixture& f = fixture(which);
  const JsonLimits limits;
  for (auto _ : state) {
    JsonBody body = portcullis::validate::parse_json_body(f.body, limits);
    benchmark::DoNotOptimize(body);
  }
  report(state, f);
}
BENCHMARK_CAPTURE(BM_ParseOnly, 1KiB, 0);
BENCHMARK_CAPTURE(BM_ParseOnly, 16KiB, 1);

void BM_ValidateOnly(benchmark::State& state, int which) {
  const Fixture& f = fixture(which);
  const JsonBody body = portcullis::validate::parse_json_body(f.body, JsonLimits{});
  for (auto _ : state) {
    auto violation = f.schema.validate(body.value);
    benchmark::DoNotOptimize(violation);
  }
  report(state, f);
}
BENCHMARK_CAPTURE(BM_ValidateOnly, 1KiB, 0);
BENCHMARK_CAPTURE(BM_ValidateOnly, 16KiB, 1);

// A body that fails deep inside (the last payment's beneficiary IBAN): the failure path, which
// builds the violation.
void BM_ValidateFailing(benchmark::State& state) {
  const Fixture& f = fixture(1);
  std::string text = f.body;
  const auto at = text.rfind("FR1420041010050500013M02606");
  text.replace(at, 2, "fr");
  const JsonBody body = portcullis::validate::parse_json_body(text, JsonLimits{});
  for (auto _ : state) {
    auto violation = f.schema.validate(body.value);
    if (!violation) state.SkipWithError("expected a violation");
    benchmark::DoNotOptimize(violation);
  }
  report(state, f);
}
BENCHMARK(BM_ValidateFailing);

}  // namespace
