#pragma once
// Route matching, compiled once per policy. First match wins; a path that some route matches
// but not with this method gives 405 with the union of those routes' methods in `Allow`.
// path_prefix matches whole segments: "/api" matches "/api" and "/api/x", never "/apix"; a
// prefix ending in '/' matches everything below it. A route that lists GET also allows HEAD.

#include <string>
#include <string_view>
#include <vector>

#include "portcullis/config/policy.hpp"

namespace portcullis::filters {

struct RouteDecision {
  enum class Kind { matched, not_found, method_not_allowed };
  Kind kind = Kind::not_found;
  const config::Route* route = nullptr;  // when matched
  std::size_t route_index = 0;           // when matched
  std::string allow;                     // when method_not_allowed: "GET, HEAD, POST"
};

class Router {
 public:
  // Keeps a pointer to `policy`, which must outlive the router (both live in one snapshot).
  explicit Router(const config::Policy& policy);

  // `path` is the normalised path (see http/path.hpp).
  RouteDecision match(std::string_view method, std::string_view path) const;

 private:
  struct CompiledRoute {
    const config::Route* route;
    std::string exact;   // exact path, or empty
    std::string prefix;  // prefix, or empty
    bool any_method;
    std::vector<std::string> methods;  // GET implies HEAD (added at compile time)
  };
  std::vector<CompiledRoute> routes_;
};

// True when `path` lies under `prefix` by whole segments.
bool path_has_prefix(std::string_view path, std::string_view prefix);

}  // namespace portcullis::filters
