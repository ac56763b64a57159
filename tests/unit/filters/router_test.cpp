#include "portcullis/filters/router.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace portcullis::filters {
namespace {

using Kind = RouteDecision::Kind;

config::Route make_route(std::string name, std::string path, std::string prefix,
                         std::vector<std::string> methods = {}) {
  config::Route route;
  route.name = std::move(name);
  route.match.path = std::move(path);
  route.match.path_prefix = std::move(prefix);
  route.match.methods = std::move(methods);
  return route;
}

config::Route exact(std::string name, std::string path, std::vector<std::string> methods = {}) {
  return make_route(std::move(name), std::move(path), "", std::move(methods));
}

config::Route prefix(std::string name, std::string path, std::vector<std::string> methods = {}) {
  return make_route(std::move(name), "", std::move(path), std::move(methods));
}

TEST(PathHasPrefix, MatchesWholeSegmentsOnly) {
  EXPECT_TRUE(path_has_prefix("/api", "/api"));
  EXPECT_TRUE(path_has_prefix("/api/", "/api"));
  EXPECT_TRUE(path_has_prefix("/api/x/y", "/api"));
  EXPECT_FALSE(path_has_prefix("/apix", "/api"));
  EXPECT_FALSE(path_has_prefix("/ap", "/api"));
  EXPECT_FALSE(path_has_prefix("/API", "/api"));
  EXPECT_FALSE(path_has_prefix("/other/api", "/api"));
}

TEST(PathHasPrefix, TrailingSlashPrefixMatchesEverythingBelow) {
  EXPECT_TRUE(path_has_prefix("/static/", "/static/"));
  EXPECT_TRUE(path_has_prefix("/static/a.css", "/static/"));
  EXPECT_FALSE(path_has_prefix("/static", "/static/"));
  EXPECT_FALSE(path_has_prefix("/staticx/a", "/static/"));
  EXPECT_TRUE(path_has_prefix("/", "/"));
  EXPECT_TRUE(path_has_prefix("/anything/at/all", "/"));
}

TEST(Router, ExactPath) {
  config::Policy policy;
  policy.routes = {exact("health", "/health")};
  const Router router(policy);
  const auto hit = router.match("GET", "/health");
  EXPECT_EQ(hit.kind, Kind::matched);
  EXPECT_EQ(hit.route, &policy.routes[0]);
  EXPECT_EQ(hit.route_index, 0u);
  EXPECT_TRUE(hit.allow.empty());
  EXPECT_EQ(router.match("GET", "/health/x").kind, Kind::not_found);
  EXPECT_EQ(router.match("GET", "/healthz").kind, Kind::not_found);
  EXPECT_EQ(router.match("GET", "/").kind, Kind::not_found);
}

TEST(Router, PrefixRespectsSegmentBoundaries) {
  config::Policy policy;
  policy.routes = {prefix("api", "/api")};
  const Router router(policy);
  EXPECT_EQ(router.match("GET", "/api").kind, Kind::matched);
  EXPECT_EQ(router.match("GET", "/api/").kind, Kind::matched);
  EXPECT_EQ(router.match("DELETE", "/api/accounts/7").kind, Kind::matched);
  EXPECT_EQ(router.match("GET", "/apix").kind, Kind::not_found);
  EXPECT_EQ(router.match("GET", "/ap").kind, Kind::not_found);
}

TEST(Router, TrailingSlashPrefix) {
  config::Policy policy;
  policy.routes = {prefix("static", "/static/")};
  const Router router(policy);
  EXPECT_EQ(router.match("GET", "/static/app.js").kind, Kind::matched);
  EXPECT_EQ(router.match("GET", "/static/").kind, Kind::matched);
  EXPECT_EQ(router.match("GET", "/static").kind, Kind::not_found);
  EXPECT_EQ(router.match("GET", "/staticfiles/x").kind, Kind::not_found);
}

TEST(Router, RootPrefixAndNoPathMatchEverything) {
  config::Policy policy;
  policy.routes = {prefix("root", "/")};
  const Router root(policy);
  EXPECT_EQ(root.match("GET", "/").kind, Kind::matched);
  EXPECT_EQ(root.match("POST", "/a/b/c").kind, Kind::matched);

  config::Policy any;
  any.routes = {make_route("any", "", "")};
  const Router catch_all(any);
  EXPECT_EQ(catch_all.match("GET", "/").kind, Kind::matched);
  EXPECT_EQ(catch_all.match("PATCH", "/x/y").kind, Kind::matched);
}

TEST(Router, FirstMatchWins) {
  config::Policy policy;
  policy.routes = {prefix("login", "/api/login", {"POST"}), prefix("api", "/api"),
                   prefix("api-again", "/api")};
  const Router router(policy);
  const auto login = router.match("POST", "/api/login");
  ASSERT_EQ(login.kind, Kind::matched);
  EXPECT_EQ(login.route_index, 0u);
  EXPECT_EQ(login.route->name, "login");

  // The login route knows the path but not GET; a later route with any method takes it.
  const auto fallthrough = router.match("GET", "/api/login");
  ASSERT_EQ(fallthrough.kind, Kind::matched);
  EXPECT_EQ(fallthrough.route_index, 1u);
  EXPECT_EQ(fallthrough.route, &policy.routes[1]);
}

TEST(Router, MethodNotAllowedListsUnionInRouteOrder) {
  config::Policy policy;
  policy.routes = {prefix("writes", "/api", {"POST"}),
                   prefix("accounts", "/api/accounts", {"GET", "DELETE", "POST"}),
                   exact("one", "/api/accounts/7", {"PUT", "GET"}),
                   prefix("elsewhere", "/admin", {"OPTIONS"})};
  const Router router(policy);
  const auto decision = router.match("PATCH", "/api/accounts/7");
  EXPECT_EQ(decision.kind, Kind::method_not_allowed);
  EXPECT_EQ(decision.allow, "POST, GET, HEAD, DELETE, PUT");
  EXPECT_EQ(decision.route, nullptr);

  const auto shallower = router.match("PATCH", "/api/accounts");
  EXPECT_EQ(shallower.kind, Kind::method_not_allowed);
  EXPECT_EQ(shallower.allow, "POST, GET, HEAD, DELETE");
}

TEST(Router, GetImpliesHead) {
  config::Policy policy;
  policy.routes = {prefix("read", "/r", {"GET"}), prefix("both", "/b", {"GET", "HEAD"}),
                   prefix("head-first", "/h", {"HEAD", "GET"}), prefix("post", "/p", {"POST"})};
  const Router router(policy);
  EXPECT_EQ(router.match("HEAD", "/r").kind, Kind::matched);
  EXPECT_EQ(router.match("PUT", "/r").allow, "GET, HEAD");
  EXPECT_EQ(router.match("PUT", "/b").allow, "GET, HEAD");
  EXPECT_EQ(router.match("PUT", "/h").allow, "HEAD, GET");
  // HEAD is only implied by GET.
  const auto head_on_post = router.match("HEAD", "/p");
  EXPECT_EQ(head_on_post.kind, Kind::method_not_allowed);
  EXPECT_EQ(head_on_post.allow, "POST");
}

TEST(Router, MethodsCompareCaseSensitively) {
  config::Policy policy;
  policy.routes = {prefix("read", "/r", {"GET"})};
  const Router router(policy);
  EXPECT_EQ(router.match("get", "/r").kind, Kind::method_not_allowed);
}

TEST(Router, NotFound) {
  config::Policy empty;
  EXPECT_EQ(Router(empty).match("GET", "/").kind, Kind::not_found);

  config::Policy policy;
  policy.routes = {prefix("api", "/api", {"GET"}), exact("health", "/health")};
  const Router router(policy);
  const auto decision = router.match("GET", "/nothing");
  EXPECT_EQ(decision.kind, Kind::not_found);
  EXPECT_EQ(decision.route, nullptr);
  EXPECT_TRUE(decision.allow.empty());
}

}  // namespace
}  // namespace portcullis::filters
