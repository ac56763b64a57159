#include "portcullis/auth/algorithm.hpp"

#include <array>
#include <utility>

namespace portcullis::auth {
namespace {

constexpr std::array<std::pair<std::string_view, Algorithm>, 13> kNames = {{
    {"RS256", Algorithm::rs256},
    {"RS384", Algorithm::rs384},
    {"RS512", Algorithm::rs512},
    {"PS256", Algorithm::ps256},
    {"PS384", Algorithm::ps384},
    {"PS512", Algorithm::ps512},
    {"ES256", Algorithm::es256},
    {"ES384", Algorithm::es384},
    {"ES512", Algorithm::es512},
    {"EdDSA", Algorithm::eddsa},
    {"HS256", Algorithm::hs256},
    {"HS384", Algorithm::hs384},
    {"HS512", Algorithm::hs512},
}};

}  // namespace

std::optional<Algorithm> parse_algorithm(std::string_view name) {
  for (const auto& [text, algorithm] : kNames) {
    if (text == name) return algorithm;
  }
  return std::nullopt;
}

std::string_view to_string(Algorithm algorithm) {
  for (const auto& [text, value] : kNames) {
    if (value == algorithm) return text;
  }
  return "unknown";
}

bool is_symmetric(Algorithm algorithm) {
  return algorithm == Algorithm::hs256 || algorithm == Algorithm::hs384 ||
         algorithm == Algorithm::hs512;
}

}  // namespace portcullis::auth
