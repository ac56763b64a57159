#pragma once
// Request bodies as JSON, parsed under limits that bound what a client can make the gateway
// allocate and recurse through. Beyond RFC 8259, a body is refused when an object repeats a member
// name: parsers disagree on which copy counts, and the gateway must not validate one "amount"
// while the upstream acts on the other. Numbers that overflow a double (1e999) are refused too.
//
// Verdicts map to answers as: body_too_large -> 413; invalid_json, json_limit_exceeded -> 400
// with "invalid_body".

#include <cstddef>
#include <memory>
#include <string_view>

#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>

#include "portcullis/core/reason.hpp"

namespace portcullis::validate {

struct JsonLimits {
  std::size_t max_bytes = 1024 * 1024;       // body text, whitespace included
  std::size_t max_depth = 32;                // nesting of arrays and objects; a scalar is depth 0
  std::size_t max_string_bytes = 64 * 1024;  // longest string or member name, unescaped UTF-8
};

// The outcome of parsing one body.
struct JsonBody {
  // none; body_too_large (more than max_bytes); json_limit_exceeded (too deep, a string too
  // long, a number out of range); invalid_json (not JSON, not UTF-8, empty, a repeated name).
  core::Reason reason = core::Reason::none;
  boost::json::value value;      // the document, when reason is none
  std::size_t error_offset = 0;  // bytes consumed when parsing stopped (for logs), else 0

  bool ok() const { return reason == core::Reason::none; }
};

// Parses a whole body. `storage` lets a caller put the document in a per-request arena
// (boost::json::monotonic_resource); by default it uses the heap.
JsonBody parse_json_body(std::string_view body, const JsonLimits& limits,
                         boost::json::storage_ptr storage = {});

// The same, fed chunk by chunk as the body arrives, so a body is checked while it streams and
// never needs to be held as text beyond the current chunk. Once a write fails the parser stays
// failed until reset(). Not thread-safe. Fastest kept per connection and reset() per request with
// a per-request boost::json::monotonic_resource: parsing then costs no heap allocation while the
// document fits the arena's buffer.
class JsonBodyParser {
 public:
  explicit JsonBodyParser(const JsonLimits& limits, boost::json::storage_ptr storage = {});
  ~JsonBodyParser();
  JsonBodyParser(JsonBodyParser&&) noexcept;
  JsonBodyParser& operator=(JsonBodyParser&&) noexcept;

  // Consumes a chunk. Reason::none while the body is still acceptable.
  core::Reason write(std::string_view chunk);

  // Declares the end of the body; checks that a complete document arrived, without repeated
  // names. Reason::none when the document can be released.
  core::Reason finish();

  // The document, after finish() returned Reason::none (null otherwise). Leaves the parser
  // needing reset() before the next body.
  boost::json::value release();

  // Bytes consumed so far (where parsing stopped, after a failure).
  std::size_t bytes() const;

  // Ready for the next body; `storage` as in the constructor.
  void reset(boost::json::storage_ptr storage = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace portcullis::validate
