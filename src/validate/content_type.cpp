#include "portcullis/validate/content_type.hpp"
#include "portcullis/core/text.hpp"

#include <algorithm>

namespace portcullis::validate {
namespace {

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && core::iequals(s.substr(s.size() - suffix.size()), suffix);
}

// RFC 9110 tchar.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

// Reads a token at `pos`; returns its length (0 when there is none).
std::size_t token_length(std::string_view s, std::size_t pos) {
  std::size_t end = pos;
  while (end < s.size() && is_tchar(s[end]))
    ++end;
  return end - pos;
}

void skip_ows(std::string_view s, std::size_t& pos) {
  while (pos < s.size() && is_ows(s[pos]))
    ++pos;
}

// quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE, starting at `pos` (on the quote).
bool skip_quoted_string(std::string_view s, std::size_t& pos) {
  ++pos;
  while (pos < s.size()) {
    const auto c = static_cast<unsigned char>(s[pos]);
    if (c == '"') {
      ++pos;
      return true;
    }
    if (c == '\\') {
      if (pos + 1 >= s.size()) return false;
      const auto escaped = static_cast<unsigned char>(s[pos + 1]);
      if (escaped != '\t' && (escaped < 0x20 || escaped == 0x7f)) return false;
      pos += 2;
      continue;
    }
    if (c != '\t' && (c < 0x20 || c == 0x7f)) return false;
    ++pos;
  }
  return false;
}

}  // namespace

std::optional<MediaType> parse_media_type(std::string_view value) {
  std::size_t pos = 0;
  skip_ows(value, pos);
  MediaType media;
  const std::size_t type_len = token_length(value, pos);
  if (type_len == 0) return std::nullopt;
  media.type = value.substr(pos, type_len);
  pos += type_len;
  if (pos >= value.size() || value[pos] != '/') return std::nullopt;
  ++pos;
  const std::size_t subtype_len = token_length(value, pos);
  if (subtype_len == 0) return std::nullopt;
  media.subtype = value.substr(pos, subtype_len);
  pos += subtype_len;

  skip_ows(value, pos);
  if (pos < value.size() && value[pos] != ';') return std::nullopt;
  if (pos < value.size()) media.parameters = value.substr(pos + 1);
  while (pos < value.size()) {
    // At a ';'. Empty parameters (";;") are allowed by the grammar.
    ++pos;
    skip_ows(value, pos);
    if (pos >= value.size()) break;
    if (value[pos] == ';') continue;
    const std::size_t name_len = token_length(value, pos);
    if (name_len == 0) return std::nullopt;
    pos += name_len;
    if (pos >= value.size() || value[pos] != '=') return std::nullopt;
    ++pos;
    if (pos < value.size() && value[pos] == '"') {
      if (!skip_quoted_string(value, pos)) return std::nullopt;
    } else {
      const std::size_t value_len = token_length(value, pos);
      if (value_len == 0) return std::nullopt;
      pos += value_len;
    }
    skip_ows(value, pos);
    if (pos < value.size() && value[pos] != ';') return std::nullopt;
  }
  return media;
}

bool is_json_media_type(std::string_view header_value) {
  const auto media = parse_media_type(header_value);
  if (!media || !core::iequals(media->type, "application")) return false;
  if (core::iequals(media->subtype, "json")) return true;
  return media->subtype.size() > 5 && ends_with_ci(media->subtype, "+json");
}

std::optional<MediaTypeSet> MediaTypeSet::compile(const std::vector<std::string>& entries,
                                                  std::string& error) {
  MediaTypeSet set;
  for (const auto& entry : entries) {
    const auto media = parse_media_type(entry);
    if (!media || !media->parameters.empty() || entry.find(';') != std::string::npos) {
      error = "content type \"" + entry + "\" is not of the form type/subtype or type/*";
      return std::nullopt;
    }
    if (media->type == "*") {
      error = "content type \"" + entry + "\": */* is not allowed; leave content_types out instead";
      return std::nullopt;
    }
    if (media->subtype.find('*') != std::string_view::npos && media->subtype != "*") {
      error = "content type \"" + entry + "\": a wildcard must be the whole subtype";
      return std::nullopt;
    }
    std::string normalised;
    normalised.reserve(media->type.size() + 1 + media->subtype.size());
    for (char c : media->type)
      normalised.push_back(core::ascii_lower(c));
    normalised.push_back('/');
    for (char c : media->subtype)
      normalised.push_back(core::ascii_lower(c));
    if (std::find(set.entries_.begin(), set.entries_.end(), normalised) == set.entries_.end()) {
      set.entries_.push_back(std::move(normalised));
    }
  }
  return set;
}

bool MediaTypeSet::allows(std::string_view header_value) const {
  const auto media = parse_media_type(header_value);
  if (!media) return false;
  for (const auto& entry : entries_) {
    const std::string_view e = entry;
    const auto slash = e.find('/');
    if (!core::iequals(media->type, e.substr(0, slash))) continue;
    const auto subtype = e.substr(slash + 1);
    if (subtype == "*" || core::iequals(media->subtype, subtype)) return true;
  }
  return false;
}

core::Reason MediaTypeSet::check(std::optional<std::string_view> header_value) const {
  if (!header_value || !allows(*header_value)) return core::Reason::content_type_not_allowed;
  return core::Reason::none;
}

}  // namespace portcullis::validate
