#pragma once
// Reading a YAML policy with diagnostics: every node keeps its FILE:LINE:COL, mappings are
// checked for unknown, repeated and non-scalar keys, and typed scalars (numbers, booleans,
// durations, sizes, enums, host:port, file paths, CIDRs, header names) are read with one
// message style. Problems are collected, never thrown, so a load reports all of them at once.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portcullis/config/loader.hpp"
#include "portcullis/config/policy.hpp"
#include "portcullis/core/ip.hpp"

namespace portcullis::config {

// One value of the policy and where it sits.
struct Entry {
  YAML::Node key;  // undefined for sequence items and the root
  YAML::Node value;
  std::string path;  // "server.limits.max_connections", "routes[2]"
};

// A mapping whose keys were checked: known, unique, plain.
class Section {
 public:
  Section(YAML::Node node, std::string path) : node_(std::move(node)), path_(std::move(path)) {}

  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  const std::vector<std::pair<std::string, Entry>>& entries() const { return entries_; }

  const Entry* find(std::string_view key) const {
    for (const auto& [name, entry] : entries_) {
      if (name == key) return &entry;
    }
    return nullptr;
  }
  std::string child(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  void add(std::string key, Entry entry) {
    entries_.emplace_back(std::move(key), std::move(entry));
  }

 private:
  YAML::Node node_;
  std::string path_;
  std::vector<std::pair<std::string, Entry>> entries_;
};

class Reader {
 public:
  Reader(std::string display_file, std::filesystem::path base_dir)
      : file_(std::move(display_file)), base_dir_(std::move(base_dir)) {}

  const std::string& file() const { return file_; }
  const std::filesystem::path& base_dir() const { return base_dir_; }

  // ---- diagnostics
  void error(const YAML::Mark& mark, std::string message);
  // Points at the value, or at its key when the value is missing or empty.
  void error(const Entry& entry, std::string message) { error(mark_of(entry), std::move(message)); }
  // A warning does not refuse the policy; `at` may be null when nothing in the file caused it.
  void warning(const Entry* at, std::string message);
  bool has_errors() const { return !diagnostics_.empty(); }
  // Errors in file order (line, then column); the reader is left empty.
  std::vector<Diagnostic> take_errors();
  std::vector<Diagnostic> take_warnings() { return std::move(warnings_); }

  // The value's place, or its key's when the value is null (a null value's mark is wherever the
  // next token starts).
  static YAML::Mark mark_of(const Entry& entry);
  Location location_of(const Entry& entry) const;
  // A named mapping entry's place is its key ("upstreams.core" points at `core:`).
  Location key_location_of(const Entry& entry) const;
  // "line N" of an entry's key (or value), for messages that name a second, conflicting key.
  static std::string line_of(const Entry& entry);
  // "a list", "nothing", "'text'", "the quoted string 'text'": what was found, for messages.
  static std::string describe(const YAML::Node& node);

  // ---- structure
  // The mapping at `entry`, with every key checked against `allowed` (any key when `any_key`).
  std::optional<Section> section(const Entry& entry,
                                 std::initializer_list<std::string_view> allowed,
                                 bool any_key = false);
  std::vector<Entry> items(const Entry& entry);

  // ---- scalars
  std::optional<std::string> string(const Entry& entry);
  std::optional<bool> boolean(const Entry& entry);
  std::optional<std::uint64_t> whole(const Entry& entry, std::uint64_t min, std::uint64_t max);
  std::optional<std::uint64_t> size(const Entry& entry);
  std::optional<Duration> duration(const Entry& entry, bool allow_zero = false);
  template <typename T>
  std::optional<T> choice(const Entry& entry,
                          std::initializer_list<std::pair<std::string_view, T>> choices);
  // A file name made absolute against the policy's folder; "" allowed only when `allow_empty`.
  std::optional<std::string> file_path(const Entry& entry, bool allow_empty);
  std::optional<HostPort> host_port(const Entry& entry, bool allow_port_zero);
  std::optional<std::string> header_name(const Entry& entry);
  // A CIDR block or a bare IPv4/IPv6 address (a /32 or /128).
  std::optional<core::Cidr> cidr(const Entry& entry);

 private:
  void add_choice_error(const Entry& entry, const std::string& names);

  std::string file_;
  std::filesystem::path base_dir_;
  std::vector<Diagnostic> diagnostics_;
  std::vector<Diagnostic> warnings_;
};

// Applies `read` to `key` of `section` when it is present and stores a valid result.
template <typename T, typename Read>
void set(const Section& section, std::string_view key, T& out, Read read) {
  if (const Entry* entry = section.find(key)) {
    if (auto value = read(*entry)) out = static_cast<T>(*value);
  }
}

template <typename T>
std::optional<T> Reader::choice(const Entry& entry,
                                std::initializer_list<std::pair<std::string_view, T>> choices) {
  if (entry.value.IsScalar()) {
    for (const auto& [name, value] : choices) {
      if (entry.value.Scalar() == name) return value;
    }
  }
  std::string names;
  for (const auto& [name, value] : choices) {
    if (!names.empty()) names += " | ";
    names += name;
  }
  add_choice_error(entry, names);
  return std::nullopt;
}

}  // namespace portcullis::config
