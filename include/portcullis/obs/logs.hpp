#pragma once
// Access and security logs: one JSON object per line, written by spdlog on background threads so
// a slow disk does not stall a worker. Access lines share a queue whose oldest lines are dropped
// (and counted) when it is full; the security log has its own, larger queue and never drops a
// line: when even that is full, the writing thread waits. Lines never carry a token, cookie,
// password or query string.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "portcullis/config/policy.hpp"
#include "portcullis/core/ip.hpp"
#include "portcullis/core/reason.hpp"

namespace spdlog {
class logger;
}

namespace portcullis::obs {

// What one request did, filled in along its phases.
struct AccessRecord {
  std::string_view request_id;
  core::IpAddress client_ip;
  std::string_view method;
  std::string_view path;  // normalised when known, never with the query
  std::string_view route;
  int status = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  double duration_seconds = 0;
  std::string_view upstream;     // endpoint "host:port", empty when none was used
  double upstream_seconds = -1;  // time to the upstream's response head; < 0 when none
  std::string_view tls_version;
  core::Reason reason = core::Reason::none;
  std::string_view subject;             // of a verified token, when known
  std::string_view token_hash;          // short hash of the token, never the token
  bool report_only = false;             // refused by a rule with enforce: false, and let through
  std::string_view client_certificate;  // verified client-certificate subject (mTLS), if any
};

class Logs {
 public:
  explicit Logs(const config::LoggingSettings& settings);
  ~Logs();
  Logs(const Logs&) = delete;
  Logs& operator=(const Logs&) = delete;

  const config::LoggingSettings& settings() const { return settings_; }
  bool access_enabled() const { return access_ != nullptr; }

  void access(const AccessRecord& record);
  // A refused request: the security log gets the reason, never the request's content.
  void rejection(const AccessRecord& record);
  // An operational event already encoded as JSON members, e.g. R"("event":"reload","result":"ok")".
  void security_event(std::string_view json_members);

  // Access-log lines dropped so far, process-wide, because their queue was full.
  static std::uint64_t dropped_lines();

  // Reopens log files (SIGUSR1, after rotation).
  void reopen();
  void flush();

 private:
  config::LoggingSettings settings_;
  std::shared_ptr<spdlog::logger> access_;
  std::shared_ptr<spdlog::logger> security_;
};

// "2026-11-21T06:30:00.123Z"
void append_utc_timestamp(std::string& out, std::chrono::system_clock::time_point time);

}  // namespace portcullis::obs
