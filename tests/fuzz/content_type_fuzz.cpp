// Fuzz target for the content-type parser and a route's media-type rules. The input is
// "<entry>,<entry>,...\n<header value>" (without a newline, the whole input is the header value
// and the rules are application/json and text/*). Invariants: a parsed media type is two
// non-empty tokens inside the value; is_json_media_type agrees with the parse; allows() and
// check() agree, and an allowed value names one of the listed types.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.hpp"
#include "portcullis/validate/content_type.hpp"

namespace {

using namespace portcullis;

bool token_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s)
    if (!token_char(c)) return false;
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  std::vector<std::string> entries = {"application/json", "text/*"};
  std::string_view value = input;
  if (newline != std::string_view::npos) {
    entries.clear();
    std::string_view list = input.substr(0, newline);
    value = input.substr(newline + 1);
    while (!list.empty()) {
      const auto comma = list.find(',');
      entries.emplace_back(list.substr(0, comma));
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
  }

  const auto media = validate::parse_media_type(value);
  if (media) {
    FUZZ_CHECK(is_token(media->type) && is_token(media->subtype));
    FUZZ_CHECK(fuzz::inside(media->type, value) && fuzz::inside(media->subtype, value));
    FUZZ_CHECK(fuzz::inside(media->parameters, value));
    FUZZ_CHECK(media->type.data() < media->subtype.data());
  }
  const bool json = validate::is_json_media_type(value);
  if (json) {
    FUZZ_CHECK(media && lower(media->type) == "application");
    const std::string subtype = lower(media->subtype);
    FUZZ_CHECK(subtype == "json" || subtype.ends_with("+json"));
  } else if (media && lower(media->type) == "application") {
    FUZZ_CHECK(lower(media->subtype) != "json");
  }

  std::string error;
  const auto set = validate::MediaTypeSet::compile(entries, error);
  if (!set) {
    FUZZ_CHECK(!error.empty());
    return 0;
  }
  // Entries are kept lower-cased, duplicates once.
  FUZZ_CHECK(set->entries().size() <= entries.size());
  const bool allowed = set->allows(value);
  FUZZ_CHECK(allowed == (set->check(value) == core::Reason::none));
  FUZZ_CHECK(set->check(std::nullopt) == core::Reason::content_type_not_allowed);
  if (!allowed) return 0;
  FUZZ_CHECK(media.has_value());
  const std::string type = lower(media->type);
  const std::string full = type + "/" + lower(media->subtype);
  bool listed = false;
  for (const std::string& entry : set->entries()) {
    FUZZ_CHECK(entry == lower(entry) && entry != "*/*");
    listed = listed || entry == full || entry == type + "/*";
  }
  FUZZ_CHECK(listed);
  return 0;
}
