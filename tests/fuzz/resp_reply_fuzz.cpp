// Fuzz target for the RESP reply parser (redis::Parser over hiredis' reader): bytes from a Redis
// server, or from anything that answers on its port. Invariants: the input fed whole and fed one
// byte at a time gives the same replies and the same final error state; a reply never holds more
// text than the parser's budget; every reply encoded again parses back to itself; a parser in
// error stays in error.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.hpp"
#include "portcullis/redis/reply.hpp"

namespace {

using portcullis::redis::Parser;
using portcullis::redis::Value;

constexpr std::size_t kBudget = 512;  // small, so that the budget is reached often
// Fed whole, an input longer than the budget plus the parser's slack for unparsed bytes would be
// refused for its length alone; fed byte by byte it would not. Compare below that length.
constexpr std::size_t kCompared = kBudget + 1024;

struct Outcome {
  std::vector<Value> replies;
  bool failed = false;
};

void drain(Parser& parser, Outcome& outcome) {
  while (auto value = parser.next())
    outcome.replies.push_back(std::move(*value));
  outcome.failed = parser.failed();
}

bool same(const Value& a, const Value& b) {
  if (a.type != b.type || a.integer != b.integer || a.string != b.string ||
      a.elements.size() != b.elements.size())
    return false;
  for (std::size_t i = 0; i < a.elements.size(); ++i) {
    if (!same(a.elements[i], b.elements[i])) return false;
  }
  return true;
}

std::size_t text_bytes(const Value& value) {
  std::size_t total = value.string.size();
  for (const auto& element : value.elements)
    total += text_bytes(element);
  return total;
}

void encode(const Value& value, std::string& out) {
  switch (value.type) {
    case Value::Type::nil:
      out += "$-1\r\n";
      break;
    case Value::Type::integer:
      out += ':' + std::to_string(value.integer) + "\r\n";
      break;
    case Value::Type::string:
      out += '$' + std::to_string(value.string.size()) + "\r\n" + value.string + "\r\n";
      break;
    case Value::Type::status:
      out += '+' + value.string + "\r\n";
      break;
    case Value::Type::error:
      out += '-' + value.string + "\r\n";
      break;
    case Value::Type::array:
      out += '*' + std::to_string(value.elements.size()) + "\r\n";
      for (const auto& element : value.elements)
        encode(element, out);
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), std::min(size, kCompared));

  Outcome whole;
  {
    Parser parser(kBudget);
    if (parser.feed(input)) drain(parser, whole);
    whole.failed = parser.failed();
    if (parser.failed()) {
      FUZZ_CHECK(!parser.feed("+OK\r\n"));
      FUZZ_CHECK(!parser.next().has_value());
    }
  }

  Outcome bytewise;
  {
    Parser parser(kBudget);
    for (const char c : input) {
      if (!parser.feed(std::string_view(&c, 1))) break;
      drain(parser, bytewise);
      if (parser.failed()) break;
    }
    bytewise.failed = parser.failed();
  }

  FUZZ_CHECK(whole.failed == bytewise.failed);
  FUZZ_CHECK(whole.replies.size() == bytewise.replies.size());
  for (std::size_t i = 0; i < whole.replies.size(); ++i) {
    FUZZ_CHECK(same(whole.replies[i], bytewise.replies[i]));
    FUZZ_CHECK(text_bytes(whole.replies[i]) <= kBudget);
  }

  // Each reply, encoded again, parses back to itself (and only to itself).
  for (const auto& reply : whole.replies) {
    std::string encoded;
    encode(reply, encoded);
    Parser parser(kBudget);
    FUZZ_CHECK(parser.feed(encoded));
    const auto again = parser.next();
    FUZZ_CHECK(again.has_value() && same(*again, reply));
    FUZZ_CHECK(!parser.next().has_value() && !parser.failed());
  }
  return 0;
}
