#pragma once
// Metrics of the shared security state and the abuse controls: the state backend's health and
// Redis command latency, the revocation mirror, rate-limit decisions, bans, IP-rule refusals
// and admin writes. Registered in the process's one registry (see Metrics); per-limit handles
// are resolved when a policy is loaded, so the request path only increments what it holds.

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "portcullis/obs/cell_counter.hpp"

namespace portcullis::obs {

enum class RedisErrorKind { timeout, disconnected, overloaded, protocol, server, count };
enum class AdminEndpoint { post_revocations, post_bans, delete_bans, get_bans, count };
enum class BanSource { login, admin, count };
enum class IpRuleRefusal { denied, not_allowed, count };
// The bounded per-key tables of the abuse controls.
enum class KeyTableKind { rate_limits, login_failures, count };

// One rate limit's decision counters (per-thread cells, carried over by carry_over()).
struct RateLimitMetrics {
  RateLimitMetrics(prometheus::Counter& allowed_counter, prometheus::Counter& denied_counter)
      : allowed(allowed_counter), denied(denied_counter) {}
  CellCounter allowed;
  CellCounter denied;
};

class StateMetrics {
 public:
  explicit StateMetrics(prometheus::Registry& registry);

  void backend_up(bool up) { backend_up_->Set(up ? 1 : 0); }
  void live_instances(std::size_t count) { live_instances_->Set(static_cast<double>(count)); }
  void redis_command(double seconds) { redis_latency_->Observe(seconds); }
  void redis_error(RedisErrorKind kind) {
    redis_errors_[static_cast<std::size_t>(kind)]->Increment();
  }
  void denylist_hit() { denylist_hits_->Increment(); }
  void mirror_size(std::size_t revocations, std::size_t cutoffs, std::size_t bans) {
    mirror_revocations_->Set(static_cast<double>(revocations));
    mirror_cutoffs_->Set(static_cast<double>(cutoffs));
    bans_active_->Set(static_cast<double>(bans));
  }
  void resync() { resyncs_->Increment(); }
  void fail_open_decision() { fail_open_->Increment(); }
  void admin_write(AdminEndpoint endpoint, bool ok) {
    admin_[static_cast<std::size_t>(endpoint)][ok ? 0 : 1]->Increment();
  }
  void ban_issued(BanSource source) { bans_issued_[static_cast<std::size_t>(source)]->Increment(); }
  void ip_rule_refusal(IpRuleRefusal kind) {
    ip_refusals_[static_cast<std::size_t>(kind)]->Increment();
  }
  // A key table's occupancy: keys held, keys that fit in its memory bound, and its cumulative
  // evictions (idle keys, and active ones when a shard had no idle key left).
  void key_table(KeyTableKind table, std::size_t keys, std::size_t capacity,
                 std::uint64_t evicted_idle, std::uint64_t evicted_active);
  // Handles for one limit name, created on first use and kept for the process.
  const RateLimitMetrics& rate_limit(const std::string& name);
  // Carries the request-path counters' cells into what /metrics shows (Metrics::expose()).
  void carry_over() const;

 private:
  prometheus::Gauge* backend_up_;
  prometheus::Gauge* live_instances_;
  prometheus::Histogram* redis_latency_;
  std::array<prometheus::Counter*, static_cast<std::size_t>(RedisErrorKind::count)> redis_errors_{};
  prometheus::Counter* denylist_hits_;
  prometheus::Gauge* mirror_revocations_;
  prometheus::Gauge* mirror_cutoffs_;
  prometheus::Gauge* bans_active_;
  prometheus::Counter* resyncs_;
  prometheus::Counter* fail_open_;
  std::array<std::array<prometheus::Counter*, 2>, static_cast<std::size_t>(AdminEndpoint::count)>
      admin_{};
  std::array<prometheus::Counter*, static_cast<std::size_t>(BanSource::count)> bans_issued_{};
  std::array<prometheus::Counter*, static_cast<std::size_t>(IpRuleRefusal::count)> ip_refusals_{};
  prometheus::Family<prometheus::Counter>* rate_limits_;
  struct KeyTableHandles {
    prometheus::Gauge* keys = nullptr;
    prometheus::Gauge* capacity = nullptr;
    prometheus::Counter* evicted_idle = nullptr;
    prometheus::Counter* evicted_active = nullptr;
    std::uint64_t seen_idle = 0;  // the table's counts at the last update
    std::uint64_t seen_active = 0;
  };
  std::mutex key_tables_mutex_;
  std::array<KeyTableHandles, static_cast<std::size_t>(KeyTableKind::count)> key_tables_{};
  mutable std::mutex limits_mutex_;
  std::unordered_map<std::string, std::unique_ptr<RateLimitMetrics>> limits_;
};

}  // namespace portcullis::obs
