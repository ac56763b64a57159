#pragma once
// Which request phases a route runs, decided once when the policy is loaded: a route without
// auth, limits or rules pays nothing for them.

#include <vector>

#include "portcullis/config/policy.hpp"
#include "portcullis/filters/request_ctx.hpp"

namespace portcullis::filters {

// The route's phases in their fixed order (see RequestPhase). `has_rules`: the route has a
// `validate:` block (method and content-type rules, a declared body size).
std::vector<RequestPhase> phases_for(const config::Route& route, bool has_rules);

}  // namespace portcullis::filters
