#include "portcullis/auth/authorization.hpp"

#include <algorithm>

namespace portcullis::auth {

bool Principal::has_scope(std::string_view scope) const {
  // Linear: scope lists are short, and a hand-built Principal need not be sorted.
  return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}

core::Reason authorize(const Principal& principal, std::span<const std::string> required_scopes,
                       std::span<const ClaimRequirement> required_claims) {
  for (const auto& scope : required_scopes) {
    if (!principal.has_scope(scope)) return core::Reason::jwt_insufficient_scope;
  }
  for (const auto& [name, expected] : required_claims) {
    const boost::json::value* actual = principal.claims.if_contains(name);
    if (actual == nullptr) return core::Reason::jwt_claim_mismatch;
    if (*actual == expected) continue;
    if (actual->is_array() && !expected.is_array()) {
      const auto& items = actual->get_array();
      if (std::find(items.begin(), items.end(), expected) != items.end()) continue;
    }
    return core::Reason::jwt_claim_mismatch;
  }
  return core::Reason::none;
}

}  // namespace portcullis::auth
