#pragma once
// A strict first pass over a policy file's bytes with libyaml, before yaml-cpp builds a tree.
// libyaml reads events in one pass with memory bounded by the input, and it is fuzzed upstream;
// yaml-cpp 0.7 is not safe on every input (a file that is just "," makes it allocate without
// bound). So any input is answered here first, in time and memory linear in its size: a
// syntax error, a second document, nesting deeper than a policy needs, or more nodes or alias
// references than a policy needs is refused with its line and column, and only a text that
// passes reaches yaml-cpp. A mapping with more keys than any policy needs is refused too (the
// section parsers look keys up one by one: 200,000 of them took seconds), and so is any tag
// (`!`, `!!str`, a %TAG directive): a policy never needs one, and yaml-cpp 0.7 allocates without
// bound on some tagged texts that libyaml accepts.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace portcullis::config::detail {

struct YamlGuardLimits {
  std::size_t max_depth = 64;            // nested mappings and sequences
  std::size_t max_nodes = 1 << 20;       // scalars, mappings and sequences together
  std::size_t max_aliases = 256;         // "*name" references (each may stand for a large subtree)
  std::size_t max_mapping_keys = 10000;  // keys of one mapping (lists may be longer: ip_rules)
};

struct YamlProblem {
  int line = 1;  // 1-based
  int column = 1;
  std::string message;
};

std::optional<YamlProblem> check_yaml(std::string_view text, const YamlGuardLimits& limits = {});

}  // namespace portcullis::config::detail
