#include "portcullis/auth/bearer.hpp"
#include "portcullis/core/text.hpp"

#include <array>
#include <string_view>

namespace portcullis::auth {
namespace {

using core::Reason;

// A table rather than a chain of comparisons: every bearer token on every request is scanned.
constexpr std::array<bool, 256> kB64TokenChars = [] {
  std::array<bool, 256> table{};
  for (int c = 'A'; c <= 'Z'; ++c)
    table[c] = true;
  for (int c = 'a'; c <= 'z'; ++c)
    table[c] = true;
  for (int c = '0'; c <= '9'; ++c)
    table[c] = true;
  for (const char c : std::string_view("-._~+/"))
    table[static_cast<unsigned char>(c)] = true;
  return table;
}();

bool is_b64token_char(char c) {
  return kB64TokenChars[static_cast<unsigned char>(c)];
}

bool is_jwt_reason(Reason reason) {
  const auto name = core::to_string(reason);
  return name.size() > 4 && name.substr(0, 4) == "jwt_";
}

}  // namespace

bool is_b64token(std::string_view token) {
  std::size_t i = 0;
  while (i < token.size() && is_b64token_char(token[i]))
    ++i;
  if (i == 0) return false;
  while (i < token.size() && token[i] == '=')
    ++i;
  return i == token.size();
}

ExtractedToken token_from_authorization(std::span<const std::string_view> values,
                                        std::string_view scheme, bool check_characters) {
  ExtractedToken found;  // jwt_missing
  std::size_t ours = 0;
  for (const std::string_view value : values) {
    // Another scheme (Basic, Digest...) is not a bearer token: it counts as no token.
    const auto end = value.find_first_of(" \t");
    if (!core::iequals(value.substr(0, end), scheme)) continue;
    if (++ours > 1) return {Reason::jwt_malformed, {}};
    if (end == std::string_view::npos || value[end] != ' ') return {Reason::jwt_malformed, {}};
    const std::string_view token = value.substr(end + 1);
    if (token.empty() || (check_characters && !is_b64token(token)))
      return {Reason::jwt_malformed, {}};
    found = {Reason::none, token};
  }
  // Two Authorization headers are ambiguous even if only one is ours.
  if (found.ok() && values.size() > 1) return {Reason::jwt_malformed, {}};
  return found;
}

ExtractedToken token_from_cookies(std::span<const std::string_view> values, std::string_view name,
                                  bool check_characters) {
  ExtractedToken found;  // jwt_missing
  bool seen = false;
  for (std::string_view header : values) {
    while (!header.empty()) {
      const auto semicolon = header.find(';');
      const std::string_view pair = core::trim_ows(header.substr(0, semicolon));
      header =
          semicolon == std::string_view::npos ? std::string_view{} : header.substr(semicolon + 1);
      const auto equals = pair.find('=');
      if (equals == std::string_view::npos || core::trim_ows(pair.substr(0, equals)) != name)
        continue;
      // The same cookie twice: a subdomain or path may be shadowing the real one.
      if (seen) return {Reason::jwt_malformed, {}};
      seen = true;
      std::string_view value = core::trim_ows(pair.substr(equals + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
        value = value.substr(1, value.size() - 2);
      if (value.empty()) {
        found = {Reason::jwt_missing, {}};
      } else if (check_characters && !is_b64token(value)) {
        return {Reason::jwt_malformed, {}};
      } else {
        found = {Reason::none, value};
      }
    }
  }
  return found;
}

std::string www_authenticate(Reason reason, std::string_view realm) {
  std::string out = "Bearer";
  bool first = true;
  const auto param = [&](std::string_view key) {
    out += first ? " " : ", ";
    first = false;
    out += key;
    out += "=\"";
  };
  if (!realm.empty()) {
    param("realm");
    for (const char c : realm) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) continue;
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  if (reason == Reason::jwt_missing || !is_jwt_reason(reason)) return out;
  param("error");
  out += reason == Reason::jwt_insufficient_scope || reason == Reason::jwt_claim_mismatch
             ? "insufficient_scope"
             : "invalid_token";
  out.push_back('"');
  return out;
}

int auth_failure_status(Reason reason) {
  return reason == Reason::jwt_insufficient_scope || reason == Reason::jwt_claim_mismatch ? 403
                                                                                          : 401;
}

}  // namespace portcullis::auth
