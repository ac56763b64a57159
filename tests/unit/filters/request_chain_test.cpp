// The request phase list without sockets: order, short-circuit on the first answer,
// report-only routes, and the response filters on a phase's local reply.

#include "portcullis/filters/request_chain.hpp"

#include <gtest/gtest.h>

#include "portcullis/filters/response_headers.hpp"
#include "unit/auth/jwt_test_support.hpp"

namespace portcullis::filters {
namespace {

using auth::Algorithm;
using namespace auth::testing;

class RequestChainTest : public ::testing::Test {
 protected:
  RequestChainTest() : clock_(kNowTime) {
    provider_.name = "corp";
    provider_.issuer = std::string(kIssuer);
    provider_.audiences = {std::string(kAudience)};
    provider_.algorithms = {"ES256"};
    provider_.required_claims = {"exp"};
    provider_.forward_claims = {{"sub", "X-Auth-Subject"}};
    gate_ = std::make_unique<JwtProviderGate>(
        provider_, std::make_shared<auth::KeySetHolder>(provider_keys()));
    config::RouteAuth auth;
    auth.provider = "corp";
    auth.scopes = {"accounts:read"};
    rule_ = std::make_unique<RouteAuthRule>(*gate_, auth);
    validate::RequestRulesSpec spec;
    spec.content_types = {"application/json"};
    spec.max_body_bytes = 4096;
    rules_ = std::make_unique<validate::RequestRules>(std::move(spec));

    route_.name = "accounts";
    route_.auth = auth;
    route_.validate = config::RouteValidation{};
    chain_.auth = rule_.get();
    chain_.rules = rules_.get();
    chain_.phases = phases_for(route_, true);

    ctx_.policy = &policy_;
    ctx_.route = &route_;
    ctx_.request_id = "req-1";
    ctx_.head.method = "POST";
  }

  void set_headers(std::vector<http::Header> headers) {
    ctx_.head.headers = std::move(headers);
    ctx_.head.framing = http::BodyFraming::content_length;
    ctx_.head.content_length = 2;
    ctx_.head.declares_body = true;
  }

  std::string token(const json::object& claims) {
    return "Bearer " + make_token(Algorithm::es256, keys().ec256, claims);
  }

  std::string_view reply_header(std::string_view name) const {
    for (std::size_t i = 0; i < ctx_.reply.header_count; ++i) {
      if (ctx_.reply.headers[i].name == name) return ctx_.reply.headers[i].value;
    }
    return {};
  }

  Verdict run() {
    ChainServices services{cache_, clock_};
    return run_request_chain(ctx_, chain_, services);
  }

  core::ManualClock clock_;
  auth::VerifiedTokenCache cache_;
  config::Policy policy_;
  config::JwtProvider provider_;
  config::Route route_;
  std::unique_ptr<JwtProviderGate> gate_;
  std::unique_ptr<RouteAuthRule> rule_;
  std::unique_ptr<validate::RequestRules> rules_;
  RouteChain chain_;
  RequestCtx ctx_;
  std::string token_text_;
};

TEST_F(RequestChainTest, PhasesFollowTheFixedOrderAndOnlyWhatTheRouteConfigures) {
  EXPECT_EQ(chain_.phases, (std::vector<RequestPhase>{RequestPhase::request_rules,
                                                      RequestPhase::jwt, RequestPhase::authorize}));
  config::Route plain;
  EXPECT_TRUE(phases_for(plain, false).empty());
}

TEST_F(RequestChainTest, ContentTypeRulesAnswerBeforeAnySignatureIsVerified) {
  token_text_ = token(good_claims());
  set_headers({{"Content-Type", "text/plain"}, {"Authorization", token_text_}});
  EXPECT_EQ(run(), Verdict::respond);
  EXPECT_EQ(ctx_.reply.status, 415);
  EXPECT_FALSE(ctx_.jwt.checked);  // the chain stopped at the first answer
  EXPECT_EQ(ctx_.principal, nullptr);
}

TEST_F(RequestChainTest, MissingTokenIsRefusedWithTheBearerChallenge) {
  set_headers({{"Content-Type", "application/json"}});
  EXPECT_EQ(run(), Verdict::respond);
  EXPECT_EQ(ctx_.reply.status, 401);
  EXPECT_EQ(reply_header("WWW-Authenticate"), "Bearer");
  EXPECT_TRUE(ctx_.jwt.checked);
}

TEST_F(RequestChainTest, MissingScopeIsForbiddenAfterAuthentication) {
  auto claims = good_claims();
  claims["scope"] = "payments:write";
  token_text_ = token(claims);
  set_headers({{"Content-Type", "application/json"}, {"Authorization", token_text_}});
  EXPECT_EQ(run(), Verdict::respond);
  EXPECT_EQ(ctx_.reply.status, 403);
  EXPECT_NE(reply_header("WWW-Authenticate").find("insufficient_scope"), std::string_view::npos);
  ASSERT_NE(ctx_.principal, nullptr);
  EXPECT_TRUE(ctx_.claim_headers.empty());
}

TEST_F(RequestChainTest, AcceptedRequestCarriesPrincipalAndClaimHeaders) {
  token_text_ = token(good_claims());
  set_headers({{"Content-Type", "application/json"}, {"Authorization", token_text_}});
  EXPECT_EQ(run(), Verdict::next);
  ASSERT_NE(ctx_.principal, nullptr);
  EXPECT_EQ(ctx_.principal->subject, "alice");
  EXPECT_EQ(ctx_.claim_headers,
            (std::vector<std::pair<std::string, std::string>>{{"X-Auth-Subject", "alice"}}));
  EXPECT_EQ(ctx_.jwt.result, core::Reason::none);
}

TEST_F(RequestChainTest, ReportOnlyRouteRecordsTheRefusalAndGoesOn) {
  route_.enforce = false;
  set_headers({{"Content-Type", "text/plain"}});
  EXPECT_EQ(run(), Verdict::next);
  EXPECT_TRUE(ctx_.report_only);
  EXPECT_EQ(ctx_.record.reason, core::Reason::jwt_missing);  // the last refusal it saw
  EXPECT_EQ(ctx_.reply.status, 0);
}

TEST_F(RequestChainTest, LocalReplyGoesThroughTheResponseFilters) {
  set_headers({{"Content-Type", "application/json"}});
  ASSERT_EQ(run(), Verdict::respond);
  std::string out;
  std::array<ExtraHeader, LocalReply::kMaxHeaders> extra;
  for (std::size_t i = 0; i < ctx_.reply.header_count; ++i)
    extra[i] = {ctx_.reply.headers[i].name, ctx_.reply.headers[i].value};
  build_local_reply({policy_, ctx_.request_id, false, false}, ctx_.reply.status,
                    core::error_code_for_status(ctx_.reply.status),
                    std::span(extra.data(), ctx_.reply.header_count), out);
  EXPECT_EQ(out.rfind("HTTP/1.1 401 ", 0), 0u);
  EXPECT_NE(out.find("Strict-Transport-Security: max-age=63072000"), std::string::npos);
  EXPECT_NE(out.find("X-Content-Type-Options: nosniff"), std::string::npos);
  EXPECT_NE(out.find("X-Request-Id: req-1"), std::string::npos);
  EXPECT_NE(out.find("WWW-Authenticate: Bearer"), std::string::npos);
}

}  // namespace
}  // namespace portcullis::filters
