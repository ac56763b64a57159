// `headers`: response headers set on every response and removed from upstream ones, and the
// flags added to upstream cookies.

#include <algorithm>
#include <iterator>

#include "portcullis/core/text.hpp"
#include "sections.hpp"
#include "syntax.hpp"

namespace portcullis::config {
namespace {

using syntax::quote;

constexpr std::string_view kUnsettableHeaders[] = {
    "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
    "trailer",        "proxy-connection",  "host"};

void parse_response_set(Reader& reader, const Entry& entry, HeaderSettings& headers) {
  // Given at all, the list replaces the defaults: what is written is what is sent.
  const auto names = reader.section(entry, {}, true);
  if (!names) return;
  headers.response_set.clear();
  std::vector<std::string> seen;
  for (const auto& [name, item] : names->entries()) {
    if (!syntax::is_token(name)) {
      reader.error(item.key.Mark(), item.path + ": " + quote(name) + " is not a valid header name");
      continue;
    }
    const std::string folded = core::ascii_lowercase(name);
    if (is_unsettable_header(folded)) {
      reader.error(item.key.Mark(), item.path + ": " + name +
                                        " describes one message or one hop and cannot be set on "
                                        "every response");
      continue;
    }
    if (std::find(seen.begin(), seen.end(), folded) != seen.end()) {
      reader.error(item.key.Mark(),
                   item.path + ": header " + quote(name) + " is set twice (names ignore case)");
      continue;
    }
    seen.push_back(folded);
    const auto value = reader.string(item);
    if (!value) continue;
    if (!syntax::is_field_value(*value)) {
      reader.error(item, item.path + ": value has a control character (CR, LF, NUL, ...)");
      continue;
    }
    headers.response_set.emplace_back(name, *value);
  }
}

}  // namespace

bool is_unsettable_header(std::string_view lowercase_name) {
  return std::find(std::begin(kUnsettableHeaders), std::end(kUnsettableHeaders), lowercase_name) !=
         std::end(kUnsettableHeaders);
}

void parse_headers(Reader& reader, const Entry& entry, HeaderSettings& headers) {
  const auto section = reader.section(entry, {"response", "cookies"});
  if (!section) return;
  if (const Entry* response = section->find("response")) {
    if (const auto fields = reader.section(*response, {"set", "remove"})) {
      if (const Entry* set_entry = fields->find("set")) {
        parse_response_set(reader, *set_entry, headers);
      }
      if (const Entry* remove = fields->find("remove")) {
        if (remove->value.IsSequence()) headers.response_remove.clear();
        for (const auto& item : reader.items(*remove)) {
          if (auto name = reader.header_name(item)) {
            headers.response_remove.push_back(std::move(*name));
          }
        }
      }
    }
  }
  if (const Entry* cookies = section->find("cookies")) {
    if (const auto fields = reader.section(*cookies, {"secure", "http_only", "same_site"})) {
      auto& flags = headers.cookies;
      set(*fields, "secure", flags.secure, [&](const Entry& e) { return reader.boolean(e); });
      set(*fields, "http_only", flags.http_only, [&](const Entry& e) { return reader.boolean(e); });
      set(*fields, "same_site", flags.same_site, [&](const Entry& e) {
        return reader.choice<SameSite>(e, {{"Strict", SameSite::strict},
                                           {"Lax", SameSite::lax},
                                           {"None", SameSite::none},
                                           {"off", SameSite::off}});
      });
      // Browsers drop a SameSite=None cookie that is not Secure.
      if (flags.same_site == SameSite::none && !flags.secure) {
        const Entry* at = fields->find("same_site");
        const Entry* secure = fields->find("secure");
        reader.error(*at, at->path + ": None needs secure: true (browsers refuse it otherwise)" +
                              (secure ? "; secure: false is at " + Reader::line_of(*secure)
                                      : std::string()));
      }
    }
  }
}

}  // namespace portcullis::config
