// The request phase list without sockets: order, short-circuit on the first answer,
// report-only routes, and the response filters on a phase's local reply.

#include "portcullis/filters/request_chain.hpp"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <sstream>

#include "portcullis/filters/response_headers.hpp"
#include "portcullis/state/memory_backend.hpp"
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
    chain_.phases = phases_for(route_, true, policy_.rate_limits);

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

  // The next request on the same route (a pooled context is reset the same way).
  void fresh_request() {
    ctx_ = RequestCtx{};
    ctx_.policy = &policy_;
    ctx_.route = &route_;
  }

  std::string registry_serialized() {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, registry_.Collect());
    return out.str();
  }

  ChainServices services() {
    return ChainServices{cache_, clock_, state_.get(), &limiter_, &denied_, &metrics_, fail_open_};
  }

  Verdict run() {
    auto chain_services = services();
    if (check_ban(ctx_, chain_services) == Verdict::respond) return Verdict::respond;
    return run_request_chain(ctx_, chain_, chain_services);
  }

  // Adds a limit to the policy and the route, and recompiles the route's chain.
  void add_limit(config::RateLimitKey key, std::uint64_t rate, std::uint64_t burst) {
    config::RateLimit limit;
    limit.name = "limit" + std::to_string(policy_.rate_limits.size());
    limit.key = key;
    limit.rate = rate;
    limit.per = std::chrono::seconds(1);
    limit.burst = burst;
    policy_.rate_limits.push_back(limit);
    route_.rate_limits.push_back(policy_.rate_limits.size() - 1);
    const LimitRule rule{static_cast<std::uint32_t>(policy_.rate_limits.size()),
                         fleet_key_prefix(limit), limits::GcraLimit::make(rate, limit.per, burst),
                         &metrics_.rate_limit(limit.name), rate};
    (key == config::RateLimitKey::jwt_sub ? chain_.user_limits : chain_.ip_limits).push_back(rule);
    chain_.phases = phases_for(route_, true, policy_.rate_limits);
  }

  std::error_code write(auto record) {
    std::error_code result = std::make_error_code(std::errc::operation_in_progress);
    if constexpr (std::is_same_v<decltype(record), state::Revocation>) {
      state_->revoke(record, [&](std::error_code ec) { result = ec; });
    } else if constexpr (std::is_same_v<decltype(record), state::SubjectCutoff>) {
      state_->cut_off(record, [&](std::error_code ec) { result = ec; });
    } else {
      state_->ban(record, [&](std::error_code ec) { result = ec; });
    }
    return result;  // the memory backend without a file acknowledges at once
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
  std::shared_ptr<state::MemoryBackend> state_ =
      std::make_shared<state::MemoryBackend>(state::MemoryBackendOptions{}, clock_);
  limits::LocalLimiter limiter_;
  limits::DeniedUntilCache denied_;
  prometheus::Registry registry_;
  obs::StateMetrics metrics_{registry_};
  bool fail_open_ = false;
};

// A backend that cannot be reached: what the phases see while Redis is down.
class UnreachableBackend final : public state::Backend {
 public:
  explicit UnreachableBackend(const core::Clock& clock) : inner_({}, clock) {}
  const state::Mirror& mirror() const override { return inner_.mirror(); }
  void revoke(state::Revocation, Done done) override { done(state::StateError::stopped); }
  void cut_off(state::SubjectCutoff, Done done) override { done(state::StateError::stopped); }
  void ban(state::Ban, Done done) override { done(state::StateError::stopped); }
  void unban(core::IpAddress, Done done) override { done(state::StateError::stopped); }
  bool available() const override { return false; }
  bool durable() const override { return true; }
  bool shares_limits() const override { return shares; }
  std::size_t live_instances() const override { return instances; }

  bool shares = false;
  std::size_t instances = 1;

 private:
  state::MemoryBackend inner_;
};

// A reachable fleet backend whose leased budgets cover a request or not.
class FleetBackend final : public state::Backend {
 public:
  explicit FleetBackend(const core::Clock& clock) : inner_({}, clock) {}
  const state::Mirror& mirror() const override { return inner_.mirror(); }
  void revoke(state::Revocation, Done done) override { done(state::StateError::stopped); }
  void cut_off(state::SubjectCutoff, Done done) override { done(state::StateError::stopped); }
  void ban(state::Ban, Done done) override { done(state::StateError::stopped); }
  void unban(core::IpAddress, Done done) override { done(state::StateError::stopped); }
  bool available() const override { return true; }
  bool durable() const override { return true; }
  bool shares_limits() const override { return true; }
  bool decide_from_leases(std::span<const LimitCheck> checks,
                          LimitDecision& decision) const override {
    ++asked;
    if (!leased) return false;
    decision.allowed = true;
    decision.limit = checks.front().burst;
    return true;
  }

  bool leased = false;
  mutable int asked = 0;

 private:
  state::MemoryBackend inner_;
};

TEST_F(RequestChainTest, PhasesFollowTheFixedOrderAndOnlyWhatTheRouteConfigures) {
  EXPECT_EQ(chain_.phases,
            (std::vector<RequestPhase>{RequestPhase::request_rules, RequestPhase::jwt,
                                       RequestPhase::revocation, RequestPhase::authorize}));
  config::Route plain;
  EXPECT_TRUE(phases_for(plain, false, policy_.rate_limits).empty());
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

TEST_F(RequestChainTest, RevokedTokenIsRefusedAfterItsSignatureIsVerified) {
  token_text_ = token(good_claims());
  set_headers({{"Content-Type", "application/json"}, {"Authorization", token_text_}});
  ASSERT_FALSE(write(state::Revocation{"", "token-1", kNow + 600}));
  EXPECT_EQ(run(), Verdict::respond);
  EXPECT_EQ(ctx_.reply.status, 401);
  EXPECT_EQ(ctx_.reply.reason, core::Reason::jwt_revoked);
  EXPECT_NE(reply_header("WWW-Authenticate").find("invalid_token"), std::string_view::npos);
  EXPECT_TRUE(ctx_.claim_headers.empty());
  EXPECT_EQ(ctx_.subject, "alice");  // known for the logs
}

TEST_F(RequestChainTest, CachedTokenIsCheckedAgainstTheDenylistToo) {
  token_text_ = token(good_claims());
  set_headers({{"Content-Type", "application/json"}, {"Authorization", token_text_}});
  ASSERT_EQ(run(), Verdict::next);  // verified and cached
  fresh_request();
  set_headers({{"Content-Type", "application/json"}, {"Authorization", token_text_}});
  ASSERT_FALSE(write(state::SubjectCutoff{std::string(kIssuer), "alice", kNow}));
  EXPECT_EQ(run(), Verdict::respond);
  EXPECT_TRUE(ctx_.jwt.cache_hit);
  EXPECT_EQ(ctx_.reply.reason, core::Reason::jwt_revoked);
}

TEST_F(RequestChainTest, UnreachableStateRefusesJwtRoutesUnlessFailOpen) {
  token_text_ = token(good_claims());
  set_headers({{"Content-Type", "application/json"}, {"Authorization", token_text_}});
  state_.reset();
  UnreachableBackend unreachable(clock_);
  auto chain_services = services();
  chain_services.state = &unreachable;
  EXPECT_EQ(run_request_chain(ctx_, chain_, chain_services), Verdict::respond);
  EXPECT_EQ(ctx_.reply.status, 503);
  EXPECT_EQ(ctx_.reply.reason, core::Reason::state_unavailable);

  fresh_request();
  set_headers({{"Content-Type", "application/json"}, {"Authorization", token_text_}});
  chain_services.fail_open = true;
  EXPECT_EQ(run_request_chain(ctx_, chain_, chain_services), Verdict::next);
  EXPECT_NE(ctx_.principal, nullptr);
  EXPECT_NE(registry_serialized().find("portcullis_state_fail_open_total 1"), std::string::npos);
}

TEST_F(RequestChainTest, BannedClientIsRefusedUntilTheBanEnds) {
  ctx_.client_ip = *core::IpAddress::parse("2001:db8::7");
  ASSERT_FALSE(write(state::Ban{*core::IpAddress::parse("2001:db8::1"), kNow + 90, "test"}));
  set_headers({{"Content-Type", "application/json"}});
  EXPECT_EQ(run(), Verdict::respond);  // the same /64
  EXPECT_EQ(ctx_.reply.status, 429);
  EXPECT_EQ(ctx_.reply.reason, core::Reason::ip_banned);
  EXPECT_EQ(reply_header("Retry-After"), "90");
  EXPECT_FALSE(ctx_.jwt.checked);

  clock_.advance(std::chrono::seconds(90));
  ctx_.reply = {};
  EXPECT_EQ(run(), Verdict::respond);
  EXPECT_EQ(ctx_.reply.status, 401);  // the ban is over: on to the token check
}

TEST_F(RequestChainTest, PerIpLimitAnswersBeforeAnySignatureIsVerified) {
  add_limit(config::RateLimitKey::client_ip, 1, 2);
  EXPECT_EQ(chain_.phases.front(), RequestPhase::ip_limits);
  ctx_.client_ip = *core::IpAddress::parse("192.0.2.1");
  set_headers({{"Content-Type", "application/json"}});  // no token
  for (int i = 0; i < 2; ++i) {
    ctx_.reply = {};
    EXPECT_EQ(run(), Verdict::respond);
    EXPECT_EQ(ctx_.reply.status, 401);
  }
  ctx_.reply = {};
  ctx_.jwt = {};
  EXPECT_EQ(run(), Verdict::respond);
  EXPECT_EQ(ctx_.reply.status, 429);
  EXPECT_FALSE(ctx_.jwt.checked);
  EXPECT_EQ(reply_header("Retry-After"), "1");
  EXPECT_EQ(reply_header("RateLimit-Limit"), "2");
  EXPECT_EQ(reply_header("RateLimit-Remaining"), "0");
  EXPECT_EQ(reply_header("RateLimit-Reset"), "2");
  // A refused request consumed nothing: one emission interval later exactly one passes.
  clock_.advance(std::chrono::seconds(1));
  ctx_.reply = {};
  EXPECT_EQ(run(), Verdict::respond);
  EXPECT_EQ(ctx_.reply.status, 401);
  ctx_.reply = {};
  EXPECT_EQ(run(), Verdict::respond);
  EXPECT_EQ(ctx_.reply.status, 429);
  // Another client has its own budget.
  ctx_.client_ip = *core::IpAddress::parse("192.0.2.2");
  ctx_.reply = {};
  EXPECT_EQ(run(), Verdict::respond);
  EXPECT_EQ(ctx_.reply.status, 401);
}

TEST_F(RequestChainTest, PerUserLimitFollowsTheSubjectAcrossAddresses) {
  add_limit(config::RateLimitKey::jwt_sub, 1, 1);
  EXPECT_EQ(chain_.phases.back(), RequestPhase::user_limits);
  token_text_ = token(good_claims());
  set_headers({{"Content-Type", "application/json"}, {"Authorization", token_text_}});
  ctx_.client_ip = *core::IpAddress::parse("192.0.2.1");
  EXPECT_EQ(run(), Verdict::next);
  fresh_request();
  set_headers({{"Content-Type", "application/json"}, {"Authorization", token_text_}});
  ctx_.client_ip = *core::IpAddress::parse("198.51.100.9");
  EXPECT_EQ(run(), Verdict::respond);
  EXPECT_EQ(ctx_.reply.status, 429);
  EXPECT_EQ(ctx_.reply.reason, core::Reason::rate_limited);
}

TEST_F(RequestChainTest, WhileTheFleetIsUnreachableEachInstanceTakesItsShareOfALimit) {
  add_limit(config::RateLimitKey::client_ip, 10, 8);
  auto fleet = std::make_shared<UnreachableBackend>(clock_);
  fleet->shares = true;
  fleet->instances = 4;
  ChainServices chain_services{cache_, clock_, fleet.get(), &limiter_, &denied_, &metrics_, true};
  ctx_.client_ip = *core::IpAddress::parse("192.0.2.1");
  set_headers({{"Content-Type", "application/json"}});
  const auto passes = [&](const char* ip) {
    ctx_.client_ip = *core::IpAddress::parse(ip);
    int passed = 0;
    for (int i = 0; i < 20; ++i) {
      ctx_.reply = {};
      run_request_chain(ctx_, chain_, chain_services);
      passed += ctx_.reply.status == 401 ? 1 : 0;  // past the limit, refused by the JWT phase
    }
    return passed;
  };
  // Four live instances: a burst of 8 / 4 and 10 per second / 4 for this one.
  EXPECT_EQ(passes("192.0.2.1"), 2);
  clock_.advance(std::chrono::milliseconds(399));
  EXPECT_EQ(passes("192.0.2.1"), 0);
  clock_.advance(std::chrono::milliseconds(1));  // one interval of 400 ms
  EXPECT_EQ(passes("192.0.2.1"), 1);
  // Alone, the instance applies the whole limit.
  fleet->instances = 1;
  EXPECT_EQ(passes("192.0.2.2"), 8);
  // Never below one request per period and a burst of one, however many instances.
  fleet->instances = 1000;
  EXPECT_EQ(passes("192.0.2.3"), 1);
  clock_.advance(std::chrono::milliseconds(999));
  EXPECT_EQ(passes("192.0.2.3"), 0);
  clock_.advance(std::chrono::milliseconds(1));
  EXPECT_EQ(passes("192.0.2.3"), 1);
}

TEST_F(RequestChainTest, ALeasedBudgetDecidesWithoutSuspending) {
  add_limit(config::RateLimitKey::client_ip, 1000, 400);
  auto fleet = std::make_shared<FleetBackend>(clock_);
  ChainServices chain_services{cache_, clock_, fleet.get(), &limiter_, &denied_, &metrics_, false};
  ctx_.client_ip = *core::IpAddress::parse("192.0.2.1");
  set_headers({{"Content-Type", "application/json"}});
  EXPECT_EQ(run_request_chain(ctx_, chain_, chain_services), Verdict::suspend);
  ASSERT_EQ(ctx_.suspended.checks.size(), 1u);
  EXPECT_EQ(ctx_.suspended.checks[0].key, "limit0:ip:192.0.2.1");
  fleet->leased = true;
  ctx_.reply = {};
  EXPECT_EQ(run_request_chain(ctx_, chain_, chain_services), Verdict::respond);
  EXPECT_EQ(ctx_.reply.status, 401);  // on to the token check, no round trip
  EXPECT_EQ(fleet->asked, 2);
}

TEST_F(RequestChainTest, AClientTheFleetDeniedIsAnsweredLocallyWithTheDenyingLimitsFigures) {
  add_limit(config::RateLimitKey::client_ip, 100, 50);  // id 1
  add_limit(config::RateLimitKey::client_ip, 10, 3);    // id 2: the one that denied
  auto fleet = std::make_shared<FleetBackend>(clock_);
  ChainServices chain_services{cache_, clock_, fleet.get(), &limiter_, &denied_, &metrics_, false};
  const auto client = *core::IpAddress::parse("192.0.2.7");
  ctx_.client_ip = client;
  set_headers({{"Content-Type", "application/json"}});
  const auto now_us = limits::to_micros(clock_.monotonic());
  denied_.deny(limits::LimitKey::ip(2, client), now_us + 2'500'000, now_us);
  EXPECT_EQ(run_request_chain(ctx_, chain_, chain_services), Verdict::respond);
  EXPECT_EQ(ctx_.reply.status, 429);
  EXPECT_EQ(fleet->asked, 0);  // no round trip, no lease consulted
  EXPECT_EQ(reply_header("RateLimit-Limit"), "3");
  EXPECT_EQ(reply_header("Retry-After"), "3");
  EXPECT_EQ(reply_header("RateLimit-Remaining"), "0");
}

}  // namespace
}  // namespace portcullis::filters
