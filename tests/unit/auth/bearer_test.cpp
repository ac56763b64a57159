#include "portcullis/auth/bearer.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "unit/auth/jwt_test_support.hpp"

namespace portcullis::auth {
namespace {

using core::Reason;

ExtractedToken from_header(std::vector<std::string_view> values) {
  return token_from_authorization(values);
}

ExtractedToken from_cookies(std::vector<std::string_view> values, std::string_view name = "at") {
  return token_from_cookies(values, name);
}

TEST(TokenFromAuthorization, BearerWithAnyCasing) {
  for (const char* value : {"Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER abc.def.ghi"}) {
    const auto found = from_header({value});
    ASSERT_TRUE(found.ok()) << value;
    EXPECT_EQ(found.token, "abc.def.ghi");
  }
  EXPECT_EQ(from_header({"Bearer a-b_c~d+e/f=="}).token, "a-b_c~d+e/f==");
}

TEST(TokenFromAuthorization, MissingOrAnotherScheme) {
  EXPECT_EQ(from_header({}).reason, Reason::jwt_missing);
  EXPECT_EQ(from_header({"Basic dXNlcjpwYXNz"}).reason, Reason::jwt_missing);
  EXPECT_EQ(from_header({"BearerX abc"}).reason, Reason::jwt_missing);
  EXPECT_EQ(from_header({""}).reason, Reason::jwt_missing);
}

TEST(TokenFromAuthorization, MalformedShapes) {
  for (const char* value :
       {"Bearer", "Bearer ", "Bearer  abc", "Bearer\tabc", "Bearer abc def", "Bearer abc ",
        "Bearer a=b", "Bearer =abc", "Bearer abc,def", "Bearer \"abc\"", "Bearer abc\r\n"}) {
    EXPECT_EQ(from_header({value}).reason, Reason::jwt_malformed) << value;
  }
}

TEST(TokenFromAuthorization, RepeatedHeaderIsAmbiguous) {
  EXPECT_EQ(from_header({"Bearer a", "Bearer b"}).reason, Reason::jwt_malformed);
  EXPECT_EQ(from_header({"Basic x", "Bearer b"}).reason, Reason::jwt_malformed);
}

TEST(TokenFromAuthorization, CustomScheme) {
  const std::vector<std::string_view> values = {"DPoP abc"};
  EXPECT_EQ(token_from_authorization(values, "dpop").token, "abc");
  EXPECT_EQ(token_from_authorization(values).reason, Reason::jwt_missing);
}

TEST(TokenFromCookies, FindsTheNamedCookie) {
  EXPECT_EQ(from_cookies({"at=abc.def.ghi"}).token, "abc.def.ghi");
  EXPECT_EQ(from_cookies({"theme=dark; at=abc.def; lang=en"}).token, "abc.def");
  EXPECT_EQ(from_cookies({"theme=dark", "at=x.y.z"}).token, "x.y.z");
  EXPECT_EQ(from_cookies({"at=\"abc.def\""}).token, "abc.def");
  EXPECT_EQ(from_cookies({"theme=dark;at=abc"}).token, "abc");
}

TEST(TokenFromCookies, MissingOrEmpty) {
  EXPECT_EQ(from_cookies({}).reason, Reason::jwt_missing);
  EXPECT_EQ(from_cookies({"theme=dark"}).reason, Reason::jwt_missing);
  EXPECT_EQ(from_cookies({"AT=abc"}).reason, Reason::jwt_missing);  // names are case-sensitive
  EXPECT_EQ(from_cookies({"xat=abc; atx=abc"}).reason, Reason::jwt_missing);
  EXPECT_EQ(from_cookies({"at="}).reason, Reason::jwt_missing);
  EXPECT_EQ(from_cookies({"at"}).reason, Reason::jwt_missing);
}

TEST(TokenFromCookies, DuplicateOrBadValue) {
  EXPECT_EQ(from_cookies({"at=a; at=b"}).reason, Reason::jwt_malformed);
  EXPECT_EQ(from_cookies({"at=a", "at=b"}).reason, Reason::jwt_malformed);
  EXPECT_EQ(from_cookies({"at=a b"}).reason, Reason::jwt_malformed);
  EXPECT_EQ(from_cookies({"at=a,b"}).reason, Reason::jwt_malformed);
  EXPECT_EQ(from_cookies({"at=\"abc"}).reason, Reason::jwt_malformed);
}

TEST(WwwAuthenticate, FollowsRfc6750) {
  EXPECT_EQ(www_authenticate(Reason::jwt_missing), "Bearer");
  EXPECT_EQ(www_authenticate(Reason::jwt_expired), "Bearer error=\"invalid_token\"");
  EXPECT_EQ(www_authenticate(Reason::jwt_bad_signature), "Bearer error=\"invalid_token\"");
  EXPECT_EQ(www_authenticate(Reason::jwt_revoked), "Bearer error=\"invalid_token\"");
  EXPECT_EQ(www_authenticate(Reason::jwt_malformed), "Bearer error=\"invalid_token\"");
  EXPECT_EQ(www_authenticate(Reason::jwt_insufficient_scope),
            "Bearer error=\"insufficient_scope\"");
  EXPECT_EQ(www_authenticate(Reason::jwt_claim_mismatch), "Bearer error=\"insufficient_scope\"");
  EXPECT_EQ(www_authenticate(Reason::rate_limited), "Bearer");
}

TEST(WwwAuthenticate, RealmIsQuoted) {
  EXPECT_EQ(www_authenticate(Reason::jwt_missing, "api"), "Bearer realm=\"api\"");
  EXPECT_EQ(www_authenticate(Reason::jwt_expired, "api"),
            "Bearer realm=\"api\", error=\"invalid_token\"");
  EXPECT_EQ(www_authenticate(Reason::jwt_missing, "a\"b\\c\r\nd"), "Bearer realm=\"a\\\"b\\\\cd\"");
}

TEST(AuthFailureStatus, ScopeProblemsAre403) {
  EXPECT_EQ(auth_failure_status(Reason::jwt_insufficient_scope), 403);
  EXPECT_EQ(auth_failure_status(Reason::jwt_claim_mismatch), 403);
  EXPECT_EQ(auth_failure_status(Reason::jwt_missing), 401);
  EXPECT_EQ(auth_failure_status(Reason::jwt_expired), 401);
  EXPECT_EQ(auth_failure_status(Reason::jwt_revoked), 401);
}

}  // namespace
}  // namespace portcullis::auth
