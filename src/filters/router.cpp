#include "portcullis/filters/router.hpp"

#include <algorithm>

namespace portcullis::filters {
namespace {

bool contains(const std::vector<std::string>& methods, std::string_view method) {
  return std::find(methods.begin(), methods.end(), method) != methods.end();
}

// True when the comma-separated `allow` list built so far already holds `method`; checking the
// string itself keeps the 405 path free of a second container.
bool allow_has(std::string_view allow, std::string_view method) {
  while (!allow.empty()) {
    const auto comma = allow.find(", ");
    if (allow.substr(0, comma) == method) return true;
    if (comma == std::string_view::npos) break;
    allow.remove_prefix(comma + 2);
  }
  return false;
}

}  // namespace

bool path_has_prefix(std::string_view path, std::string_view prefix) {
  if (!path.starts_with(prefix)) return false;
  // A prefix ending in '/' ("/" or "/api/") already ends on a segment boundary.
  if (prefix.empty() || prefix.back() == '/') return true;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

Router::Router(const config::Policy& policy) {
  routes_.reserve(policy.routes.size());
  for (const auto& route : policy.routes) {
    CompiledRoute compiled{
        &route, route.match.path, route.match.path_prefix, route.match.methods.empty(), {}};
    compiled.methods.reserve(route.match.methods.size() + 1);
    for (const auto& method : route.match.methods) {
      if (!contains(compiled.methods, method)) compiled.methods.push_back(method);
      // HEAD is GET without the body; listed right after GET so Allow reads naturally.
      if (method == "GET" && !contains(compiled.methods, "HEAD")) {
        compiled.methods.emplace_back("HEAD");
      }
    }
    routes_.push_back(std::move(compiled));
  }
}

RouteDecision Router::match(std::string_view method, std::string_view path) const {
  RouteDecision decision;
  bool path_matched = false;
  for (std::size_t i = 0; i < routes_.size(); ++i) {
    const CompiledRoute& compiled = routes_[i];
    if (!compiled.exact.empty()) {
      if (path != compiled.exact) continue;
    } else if (!compiled.prefix.empty()) {
      if (!path_has_prefix(path, compiled.prefix)) continue;
    }
    if (compiled.any_method || contains(compiled.methods, method)) {
      decision.kind = RouteDecision::Kind::matched;
      decision.route = compiled.route;
      decision.route_index = i;
      decision.allow.clear();
      return decision;
    }
    // The path is known but not with this method: remember what it would accept, in route
    // order, each method once.
    path_matched = true;
    for (const auto& allowed : compiled.methods) {
      if (allow_has(decision.allow, allowed)) continue;
      if (!decision.allow.empty()) decision.allow += ", ";
      decision.allow += allowed;
    }
  }
  decision.kind =
      path_matched ? RouteDecision::Kind::method_not_allowed : RouteDecision::Kind::not_found;
  return decision;
}

}  // namespace portcullis::filters
