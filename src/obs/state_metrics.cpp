#include "portcullis/obs/state_metrics.hpp"

#include <string_view>

namespace portcullis::obs {
namespace {

prometheus::Counter* counter(prometheus::Registry& registry, const std::string& name,
                             const std::string& help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

prometheus::Gauge* gauge(prometheus::Registry& registry, const std::string& name,
                         const std::string& help, const prometheus::Labels& labels = {}) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add(labels);
}

}  // namespace

StateMetrics::StateMetrics(prometheus::Registry& registry) {
  backend_up_ = gauge(registry, "portcullis_state_backend_up",
                      "1 while the state backend is reachable (always 1 for the memory backend)");
  live_instances_ = gauge(registry, "portcullis_state_live_instances",
                          "Gateway instances sharing the Redis state backend, as last seen (1 for "
                          "the memory backend); fail_open limits run at limit / this");
  live_instances_->Set(1);
  redis_latency_ = &prometheus::BuildHistogram()
                        .Name("portcullis_redis_command_duration_seconds")
                        .Help("Time from sending a Redis command to its reply")
                        .Register(registry)
                        .Add({}, prometheus::Histogram::BucketBoundaries{
                                     0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05, 0.1, 0.25, 1});
  auto& redis_errors = prometheus::BuildCounter()
                           .Name("portcullis_redis_errors_total")
                           .Help("Redis commands that failed, by kind")
                           .Register(registry);
  constexpr std::array<std::string_view, 5> kRedisKinds = {"timeout", "disconnected", "overloaded",
                                                           "protocol", "server"};
  for (std::size_t i = 0; i < kRedisKinds.size(); ++i)
    redis_errors_[i] = &redis_errors.Add({{"kind", std::string(kRedisKinds[i])}});
  denylist_hits_ = counter(registry, "portcullis_denylist_hits_total",
                           "Verified tokens refused because they were revoked");
  auto& mirror = prometheus::BuildGauge()
                     .Name("portcullis_revocations")
                     .Help("Revocations this instance holds in memory, by kind")
                     .Register(registry);
  mirror_revocations_ = &mirror.Add({{"kind", "token"}});
  mirror_cutoffs_ = &mirror.Add({{"kind", "subject"}});
  bans_active_ = gauge(registry, "portcullis_bans_active", "Client IPs banned right now");
  resyncs_ = counter(registry, "portcullis_state_resyncs_total",
                     "Full reloads of the revocation and ban mirror from the state backend");
  fail_open_ = counter(registry, "portcullis_state_fail_open_total",
                       "Decisions taken on local knowledge alone while the state backend was "
                       "unreachable (on_unavailable: fail_open)");
  auto& admin = prometheus::BuildCounter()
                    .Name("portcullis_admin_requests_total")
                    .Help("Admin API requests, by endpoint and result")
                    .Register(registry);
  constexpr std::array<std::string_view, 4> kEndpoints = {"post_revocations", "post_bans",
                                                          "delete_bans", "get_bans"};
  for (std::size_t i = 0; i < kEndpoints.size(); ++i) {
    admin_[i][0] = &admin.Add({{"endpoint", std::string(kEndpoints[i])}, {"result", "ok"}});
    admin_[i][1] = &admin.Add({{"endpoint", std::string(kEndpoints[i])}, {"result", "error"}});
  }
  auto& bans = prometheus::BuildCounter()
                   .Name("portcullis_bans_issued_total")
                   .Help("Client IPs banned, by source")
                   .Register(registry);
  bans_issued_[0] = &bans.Add({{"source", "login"}});
  bans_issued_[1] = &bans.Add({{"source", "admin"}});
  auto& refusals = prometheus::BuildCounter()
                       .Name("portcullis_ip_rule_refusals_total")
                       .Help("Connections refused at accept by ip_rules, by rule")
                       .Register(registry);
  ip_refusals_[0] = &refusals.Add({{"rule", "deny"}});
  ip_refusals_[1] = &refusals.Add({{"rule", "not_allowed"}});
  rate_limits_ = &prometheus::BuildCounter()
                      .Name("portcullis_rate_limit_decisions_total")
                      .Help("Rate-limit decisions, by limit and result")
                      .Register(registry);
  auto& keys = prometheus::BuildGauge()
                   .Name("portcullis_limiter_keys")
                   .Help("Client keys held by the rate-limit and login-failure tables")
                   .Register(registry);
  auto& capacity = prometheus::BuildGauge()
                       .Name("portcullis_limiter_keys_capacity")
                       .Help("Client keys that fit in each table's memory bound")
                       .Register(registry);
  auto& evictions = prometheus::BuildCounter()
                        .Name("portcullis_limiter_evictions_total")
                        .Help(
                            "Keys dropped to make room, by table and kind (idle: the key's "
                            "budget was full again; active: no idle key was left)")
                        .Register(registry);
  constexpr std::array<std::string_view, 2> kTables = {"rate_limits", "login_failures"};
  for (std::size_t i = 0; i < kTables.size(); ++i) {
    const std::string table(kTables[i]);
    key_tables_[i].keys = &keys.Add({{"table", table}});
    key_tables_[i].capacity = &capacity.Add({{"table", table}});
    key_tables_[i].evicted_idle = &evictions.Add({{"table", table}, {"kind", "idle"}});
    key_tables_[i].evicted_active = &evictions.Add({{"table", table}, {"kind", "active"}});
  }
}

void StateMetrics::key_table(KeyTableKind table, std::size_t keys, std::size_t capacity,
                             std::uint64_t evicted_idle, std::uint64_t evicted_active) {
  std::lock_guard lock(key_tables_mutex_);
  auto& handles = key_tables_[static_cast<std::size_t>(table)];
  handles.keys->Set(static_cast<double>(keys));
  handles.capacity->Set(static_cast<double>(capacity));
  // The table counts from its creation; a table created anew (another memory bound) counts
  // from zero again, so only growth is added.
  if (evicted_idle > handles.seen_idle)
    handles.evicted_idle->Increment(static_cast<double>(evicted_idle - handles.seen_idle));
  if (evicted_active > handles.seen_active)
    handles.evicted_active->Increment(static_cast<double>(evicted_active - handles.seen_active));
  handles.seen_idle = evicted_idle;
  handles.seen_active = evicted_active;
}

const RateLimitMetrics& StateMetrics::rate_limit(const std::string& name) {
  std::lock_guard lock(limits_mutex_);
  auto& slot = limits_[name];
  if (!slot) {
    slot = std::make_unique<RateLimitMetrics>(
        rate_limits_->Add({{"limit", name}, {"result", "allowed"}}),
        rate_limits_->Add({{"limit", name}, {"result", "denied"}}));
  }
  return *slot;
}

void StateMetrics::carry_over() const {
  std::lock_guard lock(limits_mutex_);
  for (auto& [name, limit] : limits_) {
    limit->allowed.carry_over();
    limit->denied.carry_over();
  }
}

}  // namespace portcullis::obs
