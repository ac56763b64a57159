#pragma once
// Route-level authorization (policy route `auth: { jwt: NAME, scopes: [...], claims: {...} }`),
// applied to a Principal that already passed verification and the denylist.

#include <boost/json/value.hpp>

#include <span>
#include <string>
#include <utility>

#include "portcullis/auth/principal.hpp"
#include "portcullis/core/reason.hpp"

namespace portcullis::auth {

// A claim the route requires: name and expected value.
using ClaimRequirement = std::pair<std::string, boost::json::value>;

// Decides whether `principal` may use the route:
//   - every scope of `required_scopes` is in principal.scopes, else jwt_insufficient_scope;
//   - for every requirement, the claim exists and either equals the value (JSON equality: the
//     string "1" is not the number 1) or, when the claim is an array and the value is not, the
//     array contains the value; else jwt_claim_mismatch.
// Scopes are checked first. Returns Reason::none when both hold; empty requirements always hold.
core::Reason authorize(const Principal& principal, std::span<const std::string> required_scopes,
                       std::span<const ClaimRequirement> required_claims);

}  // namespace portcullis::auth
