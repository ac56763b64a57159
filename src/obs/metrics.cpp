#include "portcullis/obs/metrics.hpp"

#include <prometheus/text_serializer.h>

#include <sstream>
#include <vector>

namespace portcullis::obs {
namespace {

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  return kBuckets;
}

constexpr std::array<std::string_view, 6> kStatusClasses = {"1xx", "2xx", "3xx",
                                                            "4xx", "5xx", "other"};

// The histogram bucket of `seconds` as Prometheus counts it (the first bound not below it).
std::size_t latency_bucket(double seconds) {
  const auto& bounds = latency_buckets();
  std::size_t i = 0;
  while (i < bounds.size() && seconds > bounds[i])
    ++i;
  return i;
}

std::uint64_t nanoseconds(double seconds) {
  return seconds > 0 ? static_cast<std::uint64_t>(seconds * 1e9 + 0.5) : 0;
}

void add(std::atomic<std::uint64_t>& counter, std::uint64_t amount) {
  counter.fetch_add(amount, std::memory_order_relaxed);
}

}  // namespace

void RouteMetrics::observe(int status, double seconds, double upstream_seconds) const {
  Cell& cell = cells_[thread_cell() % kCells];
  const int class_index = status >= 100 && status < 600 ? status / 100 - 1 : 5;
  add(cell.by_status_class[static_cast<std::size_t>(class_index)], 1);
  add(cell.duration[latency_bucket(seconds)], 1);
  add(cell.duration_ns, nanoseconds(seconds));
  if (upstream_seconds >= 0) {
    add(cell.upstream[latency_bucket(upstream_seconds)], 1);
    add(cell.upstream_ns, nanoseconds(upstream_seconds));
  }
}

void RouteMetrics::carry_over() {
  Totals now;
  for (const Cell& cell : cells_) {
    for (std::size_t i = 0; i < kStatusClasses; ++i)
      now.by_status_class[i] += cell.by_status_class[i].load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < kLatencyBuckets; ++i) {
      now.duration[i] += cell.duration[i].load(std::memory_order_relaxed);
      now.upstream[i] += cell.upstream[i].load(std::memory_order_relaxed);
    }
    now.duration_ns += cell.duration_ns.load(std::memory_order_relaxed);
    now.upstream_ns += cell.upstream_ns.load(std::memory_order_relaxed);
  }
  for (std::size_t i = 0; i < kStatusClasses; ++i) {
    if (now.by_status_class[i] > carried_.by_status_class[i])
      by_status_class_[i]->Increment(
          static_cast<double>(now.by_status_class[i] - carried_.by_status_class[i]));
  }
  const auto carry = [](prometheus::Histogram& histogram, const auto& buckets, const auto& before,
                        std::uint64_t sum_ns, std::uint64_t sum_before) {
    std::vector<double> increments(kLatencyBuckets);
    bool any = false;
    for (std::size_t i = 0; i < kLatencyBuckets; ++i) {
      increments[i] = static_cast<double>(buckets[i] - before[i]);
      any = any || buckets[i] != before[i];
    }
    if (any) histogram.ObserveMultiple(increments, static_cast<double>(sum_ns - sum_before) / 1e9);
  };
  carry(*duration_, now.duration, carried_.duration, now.duration_ns, carried_.duration_ns);
  carry(*upstream_duration_, now.upstream, carried_.upstream, now.upstream_ns,
        carried_.upstream_ns);
  carried_ = now;
}

Metrics::Metrics(std::string_view version, std::string_view openssl, std::string_view boost)
    : registry_(std::make_shared<prometheus::Registry>()) {
  auto& registry = *registry_;
  requests_ = &prometheus::BuildCounter()
                   .Name("portcullis_requests_total")
                   .Help("Requests answered, by route and status class")
                   .Register(registry);
  duration_ =
      &prometheus::BuildHistogram()
           .Name("portcullis_request_duration_seconds")
           .Help("Time from the first byte of a request head to the last byte of its response")
           .Register(registry);
  upstream_duration_ = &prometheus::BuildHistogram()
                            .Name("portcullis_upstream_duration_seconds")
                            .Help("Time from sending a request upstream to its response head")
                            .Register(registry);
  auto& rejections = prometheus::BuildCounter()
                         .Name("portcullis_rejections_total")
                         .Help("Requests and connections refused or failed, by reason code")
                         .Register(registry);
  for (std::size_t i = 0; i < core::kReasonCount; ++i) {
    const auto reason = static_cast<core::Reason>(i);
    rejections_[i] = &rejections.Add({{"reason", std::string(core::to_string(reason))}});
  }
  auto& upstream_errors = prometheus::BuildCounter()
                              .Name("portcullis_upstream_errors_total")
                              .Help("Upstream failures, by kind")
                              .Register(registry);
  constexpr std::array<std::string_view, 5> kKinds = {"connect_failed", "reset", "timeout",
                                                      "bad_response", "no_healthy"};
  for (std::size_t i = 0; i < kKinds.size(); ++i)
    upstream_errors_[i] = &upstream_errors.Add({{"kind", std::string(kKinds[i])}});
  tls_handshakes_ = &prometheus::BuildCounter()
                         .Name("portcullis_tls_handshakes_total")
                         .Help("Completed TLS handshakes, by protocol version")
                         .Register(registry);
  tls13_ = &tls_handshakes_->Add({{"version", "TLSv1.3"}});
  tls12_ = &tls_handshakes_->Add({{"version", "TLSv1.2"}});
  tls_failures_ = &prometheus::BuildCounter()
                       .Name("portcullis_tls_handshake_failures_total")
                       .Help("TLS handshakes that failed or timed out")
                       .Register(registry)
                       .Add({});
  active_connections_ = &prometheus::BuildGauge()
                             .Name("portcullis_active_connections")
                             .Help("Client connections currently open")
                             .Register(registry)
                             .Add({});
  auto& reloads = prometheus::BuildCounter()
                      .Name("portcullis_config_reloads_total")
                      .Help("Policy reloads, by result")
                      .Register(registry);
  reload_ok_ = &reloads.Add({{"result", "ok"}});
  reload_refused_ = &reloads.Add({{"result", "refused"}});
  log_dropped_ = &prometheus::BuildCounter()
                      .Name("portcullis_log_lines_dropped_total")
                      .Help("Log lines dropped because the log queue was full")
                      .Register(registry)
                      .Add({});
  auto& write_errors =
      prometheus::BuildCounter()
          .Name("portcullis_log_write_errors_total")
          .Help("Log lines whose write or flush failed (disk full, I/O error), by log")
          .Register(registry);
  for (const auto kind : {LogKind::access, LogKind::security}) {
    log_write_errors_[static_cast<std::size_t>(kind)] =
        &write_errors.Add({{"log", std::string(to_string(kind))}});
  }
  auto& jwt = prometheus::BuildCounter()
                  .Name("portcullis_jwt_verifications_total")
                  .Help("JWT checks on authenticated routes, by result (ok or the reason code)")
                  .Register(registry);
  for (std::size_t i = 0; i < core::kReasonCount; ++i) {
    const auto reason = static_cast<core::Reason>(i);
    const auto name = core::to_string(reason);
    // Only ok and the jwt_* reasons are ever counted here; the rest point at "ok" unused.
    if (reason == core::Reason::none || name.starts_with("jwt_")) {
      jwt_results_[i] = cell_counter(
          jwt.Add({{"result", reason == core::Reason::none ? "ok" : std::string(name)}}));
    }
  }
  for (auto& slot : jwt_results_) {
    if (!slot) slot = jwt_results_[0];
  }
  auto& cache = prometheus::BuildCounter()
                    .Name("portcullis_jwt_cache_lookups_total")
                    .Help("Verified-token cache lookups, by result")
                    .Register(registry);
  jwt_cache_hits_ = cell_counter(cache.Add({{"result", "hit"}}));
  jwt_cache_misses_ = cell_counter(cache.Add({{"result", "miss"}}));
  prometheus::BuildGauge()
      .Name("portcullis_build_info")
      .Help("Build and library versions; always 1")
      .Register(registry)
      .Add({{"version", std::string(version)},
            {"openssl", std::string(openssl)},
            {"boost", std::string(boost)}})
      .Set(1);
}

CellCounter* Metrics::cell_counter(prometheus::Counter& exposed) {
  request_counters_.push_back(std::make_unique<CellCounter>(exposed));
  return request_counters_.back().get();
}

const RouteMetrics& Metrics::route(const std::string& name) {
  std::lock_guard lock(routes_mutex_);
  auto& slot = routes_[name];
  if (!slot) {
    slot = std::make_unique<RouteMetrics>();
    for (std::size_t i = 0; i < kStatusClasses.size(); ++i) {
      slot->by_status_class_[i] =
          &requests_->Add({{"route", name}, {"status_class", std::string(kStatusClasses[i])}});
    }
    slot->duration_ = &duration_->Add({{"route", name}}, latency_buckets());
    slot->upstream_duration_ = &upstream_duration_->Add({{"route", name}}, latency_buckets());
  }
  return *slot;
}

void Metrics::tls_handshake(std::string_view version) {
  if (version == "TLSv1.3") {
    tls13_->Increment();
  } else if (version == "TLSv1.2") {
    tls12_->Increment();
  } else {
    tls_handshakes_->Add({{"version", std::string(version)}}).Increment();
  }
}

void Metrics::log_lines_dropped(std::uint64_t total) {
  std::lock_guard lock(log_dropped_mutex_);
  if (total > log_dropped_seen_) {
    log_dropped_->Increment(static_cast<double>(total - log_dropped_seen_));
    log_dropped_seen_ = total;
  }
}

void Metrics::sync_log_write_errors() {
  std::lock_guard lock(log_dropped_mutex_);
  for (const auto kind : {LogKind::access, LogKind::security}) {
    const auto i = static_cast<std::size_t>(kind);
    const std::uint64_t total = log_write_errors(kind);
    if (total > log_write_errors_seen_[i]) {
      log_write_errors_[i]->Increment(static_cast<double>(total - log_write_errors_seen_[i]));
      log_write_errors_seen_[i] = total;
    }
  }
}

std::string Metrics::expose() const {
  {
    std::lock_guard lock(routes_mutex_);
    for (const auto& [name, route] : routes_)
      route->carry_over();
    for (const auto& counter : request_counters_)
      counter->carry_over();
  }
  state.carry_over();
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace portcullis::obs
