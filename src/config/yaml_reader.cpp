#include "yaml_reader.hpp"

#include <algorithm>
#include <charconv>
#include <system_error>
#include <tuple>

#include "portcullis/config/units.hpp"
#include "syntax.hpp"

namespace portcullis::config {
namespace {
namespace fs = std::filesystem;
}  // namespace

using syntax::quote;

std::string Reader::describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return node.Tag() == "?" ? quote(node.Scalar()) : "the quoted string " + quote(node.Scalar());
    default:
      return "nothing";
  }
}

void Reader::error(const YAML::Mark& mark, std::string message) {
  const bool placed = !mark.is_null() && mark.line >= 0;
  diagnostics_.push_back(
      {file_, placed ? mark.line + 1 : 0, placed ? mark.column + 1 : 0, std::move(message)});
}

void Reader::warning(const Entry* at, std::string message) {
  Location where{file_, 0, 0};
  if (at) where = location_of(*at);
  warnings_.push_back({file_, where.line, where.column, std::move(message)});
}

std::vector<Diagnostic> Reader::take_errors() {
  std::stable_sort(diagnostics_.begin(), diagnostics_.end(),
                   [](const Diagnostic& a, const Diagnostic& b) {
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
  return std::move(diagnostics_);
}

YAML::Mark Reader::mark_of(const Entry& entry) {
  if (entry.value.IsDefined() && !entry.value.IsNull() && !entry.value.Mark().is_null()) {
    return entry.value.Mark();
  }
  if (entry.key.IsDefined()) return entry.key.Mark();
  return entry.value.IsDefined() ? entry.value.Mark() : YAML::Mark::null_mark();
}

Location Reader::location_of(const Entry& entry) const {
  const auto mark = mark_of(entry);
  if (mark.is_null()) return {file_, 0, 0};
  return {file_, mark.line + 1, mark.column + 1};
}

Location Reader::key_location_of(const Entry& entry) const {
  if (!entry.key.IsDefined()) return location_of(entry);
  return {file_, entry.key.Mark().line + 1, entry.key.Mark().column + 1};
}

std::string Reader::line_of(const Entry& entry) {
  const YAML::Mark mark = entry.key.IsDefined() ? entry.key.Mark() : mark_of(entry);
  return "line " + std::to_string(mark.line + 1);
}

std::optional<Section> Reader::section(const Entry& entry,
                                       std::initializer_list<std::string_view> allowed,
                                       bool any_key) {
  const std::string where = entry.path.empty() ? "at the top level" : "in " + entry.path;
  if (!entry.value.IsMap()) {
    error(entry, (entry.path.empty() ? std::string("the policy") : entry.path) +
                     ": expected a mapping (key: value), got " + describe(entry.value));
    return std::nullopt;
  }
  Section result(entry.value, entry.path);
  std::vector<std::pair<std::string, int>> seen;  // every key so far and its line, for duplicates
  for (auto it = entry.value.begin(); it != entry.value.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      error(key.Mark(), "keys " + where + " must be plain names, got " + describe(key));
      continue;
    }
    const std::string name = key.Scalar();
    const auto first = std::find_if(seen.begin(), seen.end(),
                                    [&](const auto& other) { return other.first == name; });
    if (first != seen.end()) {
      error(key.Mark(), "duplicate key " + quote(name) + " " + where + " (first at line " +
                            std::to_string(first->second) + ")");
      continue;
    }
    seen.emplace_back(name, key.Mark().line + 1);
    if (!any_key && std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string message = "unknown key " + quote(name) + " " + where;
      const auto best = syntax::closest(name, std::span(allowed.begin(), allowed.size()));
      if (!best.empty()) message += "; did you mean " + quote(best) + "?";
      error(key.Mark(), std::move(message));
      continue;
    }
    result.add(name, Entry{key, it->second, result.child(name)});
  }
  return result;
}

std::vector<Entry> Reader::items(const Entry& entry) {
  std::vector<Entry> result;
  if (!entry.value.IsSequence()) {
    error(entry, entry.path + ": expected a list, got " + describe(entry.value));
    return result;
  }
  std::size_t index = 0;
  for (auto it = entry.value.begin(); it != entry.value.end(); ++it, ++index) {
    result.push_back({YAML::Node(YAML::NodeType::Undefined), *it,
                      entry.path + "[" + std::to_string(index) + "]"});
  }
  return result;
}

std::optional<std::string> Reader::string(const Entry& entry) {
  if (entry.value.IsScalar()) return entry.value.Scalar();
  std::string message = entry.path + ": expected a string, got " + describe(entry.value);
  if (entry.value.IsNull()) message += " (write \"\" for an empty value)";
  error(entry, std::move(message));
  return std::nullopt;
}

std::optional<bool> Reader::boolean(const Entry& entry) {
  if (entry.value.IsScalar() && entry.value.Tag() == "?") {
    const auto& text = entry.value.Scalar();
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
  }
  error(entry, entry.path + ": expected true or false, got " + describe(entry.value));
  return std::nullopt;
}

std::optional<std::uint64_t> Reader::whole(const Entry& entry, std::uint64_t min,
                                           std::uint64_t max) {
  const auto& value = entry.value;
  if (!value.IsScalar() || value.Tag() != "?") {
    error(entry, entry.path + ": expected a whole number, got " + describe(value));
    return std::nullopt;
  }
  std::string_view text = value.Scalar();
  const bool negative = text.starts_with('-');
  if (negative) text.remove_prefix(1);
  if (text.empty() || !std::all_of(text.begin(), text.end(), syntax::is_digit)) {
    error(entry, entry.path + ": expected a whole number, got " + describe(value));
    return std::nullopt;
  }
  std::uint64_t number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (negative || ec != std::errc{} || end != text.data() + text.size() || number < min ||
      number > max) {
    error(entry,
          entry.path + ": " + syntax::range_text(min, max) + ", got " + quote(value.Scalar()));
    return std::nullopt;
  }
  return number;
}

std::optional<std::uint64_t> Reader::size(const Entry& entry) {
  if (entry.value.IsScalar()) {
    const auto parsed = parse_size(entry.value.Scalar());
    if (parsed && *parsed > 0) return parsed;
    if (parsed) {
      error(entry, entry.path + ": must be greater than 0");
      return std::nullopt;
    }
  }
  error(entry,
        entry.path + ": expected a size (4096, 64KiB, 1MiB, 1GiB), got " + describe(entry.value));
  return std::nullopt;
}

std::optional<Duration> Reader::duration(const Entry& entry, bool allow_zero) {
  if (entry.value.IsScalar()) {
    const auto parsed = parse_duration(entry.value.Scalar());
    if (parsed && (parsed->count() > 0 || allow_zero)) return parsed;
    if (parsed) {
      error(entry, entry.path + ": must be greater than 0");
      return std::nullopt;
    }
  }
  error(entry, entry.path + ": expected a duration with a unit (250ms, 10s, 5m, 1h), got " +
                   describe(entry.value));
  return std::nullopt;
}

void Reader::add_choice_error(const Entry& entry, const std::string& names) {
  error(entry, entry.path + ": expected one of " + names + ", got " + describe(entry.value));
}

std::optional<std::string> Reader::file_path(const Entry& entry, bool allow_empty) {
  const auto text = string(entry);
  if (!text) return std::nullopt;
  if (text->empty()) {
    if (allow_empty) return std::string();
    error(entry, entry.path + ": must name a file");
    return std::nullopt;
  }
  if (text->find('\0') != std::string::npos) {
    error(entry, entry.path + ": file name contains a NUL byte");
    return std::nullopt;
  }
  fs::path path(*text);
  if (path.is_relative()) path = base_dir_ / path;
  return path.lexically_normal().string();
}

std::optional<HostPort> Reader::host_port(const Entry& entry, bool allow_port_zero) {
  const auto text = string(entry);
  if (!text) return std::nullopt;
  std::string why;
  auto parsed = syntax::parse_host_port(*text, allow_port_zero, why);
  if (!parsed) error(entry, entry.path + ": " + quote(*text) + " " + why);
  return parsed;
}

std::optional<std::string> Reader::header_name(const Entry& entry) {
  const auto text = string(entry);
  if (!text) return std::nullopt;
  if (!syntax::is_token(*text)) {
    error(entry, entry.path + ": " + quote(*text) + " is not a valid header name");
    return std::nullopt;
  }
  return text;
}

std::optional<core::Cidr> Reader::cidr(const Entry& entry) {
  const auto text = string(entry);
  if (!text) return std::nullopt;
  std::string why;
  auto parsed = core::Cidr::parse(*text, &why);
  if (!parsed) error(entry, entry.path + ": " + quote(*text) + " is not a CIDR block: " + why);
  return parsed;
}

}  // namespace portcullis::config
