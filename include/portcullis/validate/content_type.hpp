#pragma once
// Content-Type rules for a route: which media types a request body may declare. Types are compared
// as type/subtype, case-insensitively, with parameters ignored ("application/json; charset=utf-8"
// is application/json). A Content-Type that does not parse is never allowed: the gateway refuses
// what it cannot read rather than guess what the upstream will make of it.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "portcullis/core/reason.hpp"

namespace portcullis::validate {

// A Content-Type header value taken apart (RFC 9110 section 8.3.1). Views into the header value;
// `type` and `subtype` keep the sender's case.
struct MediaType {
  std::string_view type;        // "application"
  std::string_view subtype;     // "json", "vnd.bank.payment+json"
  std::string_view parameters;  // everything after the first ';', unparsed ("" when none)
};

// Parses `type "/" subtype *( OWS ";" OWS [ parameter ] )` where type and subtype are tokens and a
// parameter is `token "=" ( token / quoted-string )`; surrounding whitespace is allowed.
// nullopt for anything else: an empty value, a missing subtype, a list ("a/b, c/d"), a stray
// character, an unterminated quoted string.
std::optional<MediaType> parse_media_type(std::string_view header_value);

// True for application/json and the structured-syntax suffix application/<anything>+json
// (RFC 6839), parameters ignored. False for a value that does not parse.
bool is_json_media_type(std::string_view header_value);

// The media types one route accepts, compiled once from the policy.
class MediaTypeSet {
 public:
  // Each entry is "type/subtype" or "type/*" (every subtype of that type), without parameters;
  // "*/*" is refused, as an accept-everything rule is better written by leaving the list out.
  // Returns nullopt and sets `error` (naming the entry) when an entry is malformed.
  static std::optional<MediaTypeSet> compile(const std::vector<std::string>& entries,
                                             std::string& error);

  // True when the header value parses and names one of the listed types.
  bool allows(std::string_view header_value) const;

  // The verdict for a request that carries a body: Reason::none when its Content-Type is allowed,
  // Reason::content_type_not_allowed (415) when it is not, does not parse, or is absent (nullopt).
  // Whether a bodyless request is checked at all is the caller's decision.
  core::Reason check(std::optional<std::string_view> header_value) const;

  // The entries as compiled, lower-cased: "application/json", "text/*".
  const std::vector<std::string>& entries() const { return entries_; }

 private:
  std::vector<std::string> entries_;
};

}  // namespace portcullis::validate
