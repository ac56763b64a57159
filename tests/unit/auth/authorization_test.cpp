#include "portcullis/auth/authorization.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "unit/auth/jwt_test_support.hpp"

namespace portcullis::auth {
namespace {

using core::Reason;
namespace json = boost::json;

Principal principal() {
  Principal p;
  p.subject = "alice";
  p.scopes = {"accounts:read", "payments:write"};
  p.claims = json::object{{"sub", "alice"},
                          {"amr", json::array{"pwd", "mfa"}},
                          {"acr", "2"},
                          {"level", 3},
                          {"staff", true}};
  return p;
}

Reason check(std::vector<std::string> scopes, std::vector<ClaimRequirement> claims = {}) {
  return authorize(principal(), scopes, claims);
}

TEST(Authorize, NothingRequiredPasses) {
  EXPECT_EQ(check({}), Reason::none);
}

TEST(Authorize, EveryRequiredScopeMustBePresent) {
  EXPECT_EQ(check({"accounts:read"}), Reason::none);
  EXPECT_EQ(check({"accounts:read", "payments:write"}), Reason::none);
  EXPECT_EQ(check({"accounts:read", "admin"}), Reason::jwt_insufficient_scope);
  EXPECT_EQ(check({"accounts"}), Reason::jwt_insufficient_scope);  // no prefix matching
}

TEST(Authorize, ClaimEqualityOrArrayMembership) {
  EXPECT_EQ(check({}, {{"amr", "mfa"}}), Reason::none);
  EXPECT_EQ(check({}, {{"amr", "otp"}}), Reason::jwt_claim_mismatch);
  EXPECT_EQ(check({}, {{"acr", "2"}}), Reason::none);
  EXPECT_EQ(check({}, {{"acr", 2}}), Reason::jwt_claim_mismatch);  // "2" is not 2
  EXPECT_EQ(check({}, {{"level", 3}}), Reason::none);
  EXPECT_EQ(check({}, {{"staff", true}}), Reason::none);
  EXPECT_EQ(check({}, {{"staff", "true"}}), Reason::jwt_claim_mismatch);
  EXPECT_EQ(check({}, {{"tenant", "x"}}), Reason::jwt_claim_mismatch);
  EXPECT_EQ(check({}, {{"amr", json::array{"pwd", "mfa"}}}), Reason::none);
  EXPECT_EQ(check({}, {{"amr", json::array{"mfa"}}}), Reason::jwt_claim_mismatch);
  EXPECT_EQ(check({}, {{"amr", "mfa"}, {"acr", "2"}}), Reason::none);
  EXPECT_EQ(check({}, {{"amr", "mfa"}, {"acr", "3"}}), Reason::jwt_claim_mismatch);
}

TEST(Authorize, ScopesAreCheckedFirst) {
  EXPECT_EQ(check({"admin"}, {{"amr", "otp"}}), Reason::jwt_insufficient_scope);
}

}  // namespace
}  // namespace portcullis::auth
