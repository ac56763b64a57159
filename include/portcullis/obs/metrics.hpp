#pragma once
// Prometheus metrics. Families live for the process; per-route handles are resolved once when a
// policy is loaded (routes(...)), so the request path only increments counters it already holds.
// Label values are bounded: route names, status classes, reason codes, TLS versions, error kinds
// — never an IP, a path or a subject.

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "portcullis/core/reason.hpp"
#include "portcullis/obs/cell_counter.hpp"
#include "portcullis/obs/log_writer.hpp"
#include "portcullis/obs/state_metrics.hpp"

namespace portcullis::obs {

// The request counts and latencies of one route (or of "_unmatched" for requests no route
// took). The request path writes a cell of its own thread (no lock, no cache line shared with
// other workers: a Prometheus histogram takes a mutex per observation); Metrics::expose() carries
// what the cells gathered into the route's Prometheus counters and histograms.
class RouteMetrics {
 public:
  static constexpr std::size_t kStatusClasses = 6;    // 1xx..5xx, then "other"
  static constexpr std::size_t kLatencyBuckets = 16;  // 15 latency bounds (0.5 ms..30 s), +Inf

  // `upstream_seconds` < 0: the request never reached an upstream.
  void observe(int status, double seconds, double upstream_seconds) const;

 private:
  friend class Metrics;
  // Threads share cells round-robin beyond this many (the counts stay exact: atomic adds).
  static constexpr std::size_t kCells = CellCounter::kCells;
  struct alignas(64) Cell {
    std::array<std::atomic<std::uint64_t>, kStatusClasses> by_status_class{};
    std::array<std::atomic<std::uint64_t>, kLatencyBuckets> duration{};
    std::atomic<std::uint64_t> duration_ns{0};
    std::array<std::atomic<std::uint64_t>, kLatencyBuckets> upstream{};
    std::atomic<std::uint64_t> upstream_ns{0};
  };
  struct Totals {
    std::array<std::uint64_t, kStatusClasses> by_status_class{};
    std::array<std::uint64_t, kLatencyBuckets> duration{};
    std::uint64_t duration_ns = 0;
    std::array<std::uint64_t, kLatencyBuckets> upstream{};
    std::uint64_t upstream_ns = 0;
  };

  // Adds what the cells counted since the last call to the Prometheus objects (one caller at a
  // time: Metrics holds its routes mutex).
  void carry_over();

  mutable std::array<Cell, kCells> cells_;
  Totals carried_;
  std::array<prometheus::Counter*, kStatusClasses> by_status_class_{};
  prometheus::Histogram* duration_ = nullptr;
  prometheus::Histogram* upstream_duration_ = nullptr;
};

enum class UpstreamErrorKind { connect_failed, reset, timeout, bad_response, no_healthy, count };

class Metrics {
 public:
  explicit Metrics(std::string_view version, std::string_view openssl, std::string_view boost);

  // Handles for a route name, created on first use and kept for the process.
  const RouteMetrics& route(const std::string& name);
  static constexpr std::string_view kUnmatchedRoute = "_unmatched";

  void rejection(core::Reason reason) {
    rejections_[static_cast<std::size_t>(reason)]->Increment();
  }
  void upstream_error(UpstreamErrorKind kind) {
    upstream_errors_[static_cast<std::size_t>(kind)]->Increment();
  }
  void tls_handshake(std::string_view version);
  void tls_handshake_failure() { tls_failures_->Increment(); }
  void connection_opened() { active_connections_->Increment(); }
  void connection_closed() { active_connections_->Decrement(); }
  void config_reload(bool ok) { (ok ? reload_ok_ : reload_refused_)->Increment(); }
  // Brings portcullis_log_lines_dropped_total up to `total` (the log queue's overrun count).
  void log_lines_dropped(std::uint64_t total);
  // Brings portcullis_log_write_errors_total{log} up to what log_write_errors() counts.
  void sync_log_write_errors();
  // A JWT check: its result ("ok" or a jwt_* reason) and whether the token cache answered.
  void jwt_verification(core::Reason reason, bool cache_hit) {
    jwt_results_[static_cast<std::size_t>(reason)]->increment();
    (cache_hit ? jwt_cache_hits_ : jwt_cache_misses_)->increment();
  }

  // Prometheus text exposition format (version 0.0.4).
  std::string expose() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;

 public:
  StateMetrics state{*registry_};

 private:
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* duration_;
  prometheus::Family<prometheus::Histogram>* upstream_duration_;
  std::array<prometheus::Counter*, core::kReasonCount> rejections_{};
  std::array<prometheus::Counter*, static_cast<std::size_t>(UpstreamErrorKind::count)>
      upstream_errors_{};
  prometheus::Family<prometheus::Counter>* tls_handshakes_;
  prometheus::Counter* tls_failures_;
  prometheus::Counter* tls13_;
  prometheus::Counter* tls12_;
  prometheus::Gauge* active_connections_;
  prometheus::Counter* reload_ok_;
  prometheus::Counter* reload_refused_;
  prometheus::Counter* log_dropped_;
  std::mutex log_dropped_mutex_;
  std::uint64_t log_dropped_seen_ = 0;
  std::array<prometheus::Counter*, kLogKinds> log_write_errors_{};
  std::array<std::uint64_t, kLogKinds> log_write_errors_seen_{};
  // Counted on the request path: per-thread cells, carried over in expose().
  std::vector<std::unique_ptr<CellCounter>> request_counters_;
  std::array<CellCounter*, core::kReasonCount> jwt_results_{};
  CellCounter* jwt_cache_hits_ = nullptr;
  CellCounter* jwt_cache_misses_ = nullptr;
  CellCounter* cell_counter(prometheus::Counter& exposed);

  mutable std::mutex routes_mutex_;
  std::unordered_map<std::string, std::unique_ptr<RouteMetrics>> routes_;
};

}  // namespace portcullis::obs
