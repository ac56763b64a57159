#include "portcullis/admin/requests.hpp"

#include <gtest/gtest.h>

namespace portcullis::admin {
namespace {

constexpr std::int64_t kNow = 1'700'000'000;

template <class T, class Result>
const T& as(const Result& result) {
  EXPECT_TRUE(std::holds_alternative<T>(result));
  return std::get<T>(result);
}

std::string error_of(const auto& result) {
  if (const auto* error = std::get_if<BodyError>(&result)) return error->message;
  return {};
}

TEST(AdminRevocation, TokenByJtiAndExp) {
  const auto parsed = parse_revocation(R"({"jti":"abc-1","exp":1700000600})", kNow);
  const auto& token = std::get<TokenRevocation>(as<RevocationRequest>(parsed));
  EXPECT_EQ(token.jti, "abc-1");
  EXPECT_EQ(token.exp, 1700000600);
  EXPECT_EQ(token.issuer, "");
}

TEST(AdminRevocation, SubjectCutoffWithIssuer) {
  const auto parsed = parse_revocation(
      R"({"sub":"alice","issued_before":1700000000,"iss":"https://idp.bank.example"})", kNow);
  const auto& cutoff = std::get<SubjectRevocation>(as<RevocationRequest>(parsed));
  EXPECT_EQ(cutoff.subject, "alice");
  EXPECT_EQ(cutoff.issued_before, kNow);
  EXPECT_EQ(cutoff.issuer, "https://idp.bank.example");
}

TEST(AdminRevocation, RefusesWhatIsNotExactlyOneForm) {
  const std::string_view bad[] = {
      "",
      "[]",
      "{",
      R"({"jti":"a"})",
      R"({"exp":1700000600})",
      R"({"jti":"a","exp":1700000600,"sub":"b"})",
      R"({"sub":"alice"})",
      R"({"jti":"a","exp":"1700000600"})",
      R"({"jti":"a","exp":-5})",
      R"({"jti":"a","exp":1.5})",
      R"({"jti":"","exp":1700000600})",
      R"({"jti":"a b","exp":1700000600})",
      R"({"jti":"a","exp":1700000600,"extra":1})",
      R"({"jti":"a","jti":"b","exp":1700000600})",
      R"({"sub":"alice","issued_before":1700999999})",  // more than a day ahead
  };
  for (const auto body : bad) {
    const auto parsed = parse_revocation(body, kNow);
    EXPECT_TRUE(std::holds_alternative<BodyError>(parsed)) << body;
    EXPECT_FALSE(error_of(parsed).empty()) << body;
    EXPECT_EQ(error_of(parsed).find("1700"), std::string::npos) << "no echo of the body";
  }
}

TEST(AdminRevocation, RefusesOversizedBodyBeforeParsing) {
  std::string body = R"({"jti":")" + std::string(kMaxBodyBytes, 'a') + R"(","exp":1700000600})";
  EXPECT_EQ(error_of(parse_revocation(body, kNow)), "body too large");
}

TEST(AdminBan, AddressDurationAndReason) {
  const auto parsed = parse_ban(R"({"ip":"2001:db8::7","duration":"30m","reason":"fraud"})");
  const auto& ban = as<BanRequest>(parsed);
  EXPECT_EQ(ban.ip, *core::IpAddress::parse("2001:db8::7"));
  EXPECT_EQ(ban.duration, std::chrono::minutes(30));
  EXPECT_EQ(ban.reason, "fraud");
  EXPECT_EQ(as<BanRequest>(parse_ban(R"({"ip":"192.0.2.1","duration":"10s"})")).reason, "manual");
}

TEST(AdminBan, RefusesBadAddressesAndDurations) {
  const std::string_view bad[] = {
      R"({"ip":"192.0.2.300","duration":"30m"})",
      R"({"ip":"192.0.2.1"})",
      R"({"ip":"192.0.2.1","duration":30})",
      R"({"ip":"192.0.2.1","duration":"0s"})",
      R"({"ip":"192.0.2.1","duration":"9999h"})",
      R"({"ip":"192.0.2.1","duration":"30m","x":1})",
      R"({"duration":"30m"})",
  };
  for (const auto body : bad)
    EXPECT_TRUE(std::holds_alternative<BodyError>(parse_ban(body))) << body;
}

TEST(AdminBan, PathNamesTheAddress) {
  EXPECT_EQ(ban_path_ip("/bans/192.0.2.1"), core::IpAddress::parse("192.0.2.1"));
  EXPECT_EQ(ban_path_ip("/bans/2001:db8::1"), core::IpAddress::parse("2001:db8::1"));
  EXPECT_FALSE(ban_path_ip("/bans/"));
  EXPECT_FALSE(ban_path_ip("/bans/nope"));
  EXPECT_FALSE(ban_path_ip("/ban/192.0.2.1"));
}

}  // namespace
}  // namespace portcullis::admin
