#include "portcullis/obs/logs.hpp"

#include "portcullis/core/errors.hpp"
#include "portcullis/obs/log_writer.hpp"

#include <spdlog/async.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <ctime>
#include <mutex>

namespace portcullis::obs {
namespace {

constexpr std::size_t kQueueLines = 8192;  // about 3 MiB, preallocated
// The security log has a queue and a writer thread of its own, and never drops a line: when its
// queue is full (the disk cannot keep up with 64k queued events) the writing thread waits. Access
// lines may be dropped under overload (and are counted); a refusal, ban or revocation may not.
constexpr std::size_t kSecurityQueueLines = 65536;

// A file sink that can reopen its file, so log rotation by rename + SIGUSR1 works. Each line is
// written and flushed at once; failed writes are counted (LineWriter).
class ReopenableFileSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  ReopenableFileSink(std::string path, LogKind kind)
      : path_(std::move(path)), writer_(kind, path_) {
    open();
  }
  ~ReopenableFileSink() override {
    if (file_) std::fclose(file_);
  }
  void reopen() {
    std::lock_guard lock(mutex_);
    if (file_) std::fclose(file_);
    open();
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    writer_.write(file_, std::string_view(message.payload.data(), message.payload.size()));
  }
  void flush_() override {}  // every line is flushed as it is written

 private:
  void open() { file_ = std::fopen(path_.c_str(), "a"); }
  std::string path_;
  LineWriter writer_;
  std::FILE* file_ = nullptr;
};

// Writes the payload only: the line is already complete JSON.
class RawStreamSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  RawStreamSink(std::FILE* stream, std::string name, LogKind kind)
      : stream_(stream), writer_(kind, std::move(name)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    writer_.write(stream_, std::string_view(message.payload.data(), message.payload.size()));
  }
  void flush_() override {}  // every line is flushed as it is written

 private:
  std::FILE* stream_;
  LineWriter writer_;
};

std::shared_ptr<spdlog::details::thread_pool> shared_pool() {
  static std::once_flag once;
  static std::shared_ptr<spdlog::details::thread_pool> pool;
  std::call_once(once,
                 [] { pool = std::make_shared<spdlog::details::thread_pool>(kQueueLines, 1); });
  return pool;
}

std::shared_ptr<spdlog::details::thread_pool> security_pool() {
  static std::once_flag once;
  static std::shared_ptr<spdlog::details::thread_pool> pool;
  std::call_once(
      once, [] { pool = std::make_shared<spdlog::details::thread_pool>(kSecurityQueueLines, 1); });
  return pool;
}

std::shared_ptr<spdlog::logger> make_logger(LogKind kind, const std::string& target) {
  if (target == "off") return nullptr;
  const bool never_drop = kind == LogKind::security;
  const std::string name(to_string(kind));
  spdlog::sink_ptr sink;
  if (target == "stdout") {
    sink = std::make_shared<RawStreamSink>(stdout, target, kind);
  } else if (target == "stderr") {
    sink = std::make_shared<RawStreamSink>(stderr, target, kind);
  } else {
    sink = std::make_shared<ReopenableFileSink>(target, kind);
  }
  auto logger = std::make_shared<spdlog::async_logger>(
      name, sink, never_drop ? security_pool() : shared_pool(),
      never_drop ? spdlog::async_overflow_policy::block
                 : spdlog::async_overflow_policy::overrun_oldest);
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  return logger;
}

void append_number(std::string& out, double value) {
  char buffer[32];
  const int length = std::snprintf(buffer, sizeof buffer, "%.3f", value);
  out.append(buffer, static_cast<std::size_t>(length));
}

// The path as logged: at most 512 bytes, and without segment parameters (";jsessionid=..."),
// which carry session ids as often as a query string does.
void append_logged_path(std::string& out, std::string_view path) {
  path = path.substr(0, 512);
  if (path.find(';') == std::string_view::npos) {
    core::append_json_escaped(out, path);
    return;
  }
  std::string kept;
  kept.reserve(path.size());
  bool in_parameters = false;
  for (const char c : path) {
    if (c == '/') in_parameters = false;
    if (c == ';') in_parameters = true;
    if (!in_parameters) kept += c;
  }
  core::append_json_escaped(out, kept);
}

void append_common(std::string& out, const AccessRecord& record) {
  out += R"({"time":")";
  append_utc_timestamp(out, std::chrono::system_clock::now());
  out += R"(","request_id":")";
  core::append_json_escaped(out, record.request_id);
  out += R"(","client_ip":")";
  out += record.client_ip.to_string();
  out += R"(","method":")";
  core::append_json_escaped(out, record.method);
  out += R"(","path":")";
  append_logged_path(out, record.path);
  out += R"(","route":")";
  core::append_json_escaped(out, record.route);
  out += R"(","status":)";
  out += std::to_string(record.status);
}

void append_identity(std::string& out, const AccessRecord& record) {
  if (!record.subject.empty()) {
    out += R"(,"subject":")";
    core::append_json_escaped(out, record.subject.substr(0, 256));
    out += '"';
  }
  if (!record.token_hash.empty()) {
    out += R"(,"token_hash":")";
    core::append_json_escaped(out, record.token_hash);
    out += '"';
  }
  if (!record.client_certificate.empty()) {
    out += R"(,"client_certificate":")";
    core::append_json_escaped(out, record.client_certificate);
    out += '"';
  }
  if (record.report_only) out += R"(,"mode":"report_only")";
}

}  // namespace

void append_utc_timestamp(std::string& out, std::chrono::system_clock::time_point time) {
  // The seconds part changes once a second: format it once per second per thread.
  thread_local std::time_t cached_second = -1;
  thread_local char cached[24];
  const auto since_epoch = time.time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const std::time_t now = seconds.count();
  if (now != cached_second) {
    std::tm utc{};
    gmtime_r(&now, &utc);
    std::strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &utc);
    cached_second = now;
  }
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
  char fraction[8];
  std::snprintf(fraction, sizeof fraction, ".%03dZ", static_cast<int>(millis));
  out += cached;
  out += fraction;
}

Logs::Logs(const config::LoggingSettings& settings)
    : settings_(settings),
      access_(make_logger(LogKind::access, settings.access_log)),
      security_(make_logger(LogKind::security, settings.security_log)) {}

Logs::~Logs() {
  flush();
}

void Logs::access(const AccessRecord& record) {
  if (!access_) return;
  std::string line;
  line.reserve(384);
  append_common(line, record);
  line += R"(,"bytes_in":)";
  line += std::to_string(record.bytes_in);
  line += R"(,"bytes_out":)";
  line += std::to_string(record.bytes_out);
  line += R"(,"duration_ms":)";
  append_number(line, record.duration_seconds * 1000.0);
  if (!record.upstream.empty()) {
    line += R"(,"upstream":")";
    core::append_json_escaped(line, record.upstream);
    line += '"';
  }
  if (record.upstream_seconds >= 0) {
    line += R"(,"upstream_ms":)";
    append_number(line, record.upstream_seconds * 1000.0);
  }
  if (!record.tls_version.empty()) {
    line += R"(,"tls":")";
    line += record.tls_version;
    line += '"';
  }
  if (record.reason != core::Reason::none) {
    line += R"(,"reason":")";
    line += core::to_string(record.reason);
    line += '"';
  }
  append_identity(line, record);
  line += '}';
  access_->info(line);
}

void Logs::rejection(const AccessRecord& record) {
  if (!security_) return;
  std::string line;
  line.reserve(256);
  line += R"({"time":")";
  append_utc_timestamp(line, std::chrono::system_clock::now());
  line += R"(","event":"rejected","reason":")";
  line += core::to_string(record.reason);
  line += R"(","status":)";
  line += std::to_string(record.status);
  line += R"(,"request_id":")";
  core::append_json_escaped(line, record.request_id);
  line += R"(","client_ip":")";
  line += record.client_ip.to_string();
  line += R"(","method":")";
  core::append_json_escaped(line, record.method.substr(0, 32));
  line += R"(","path":")";
  append_logged_path(line, record.path);
  line += R"(","route":")";
  core::append_json_escaped(line, record.route);
  line += '"';
  append_identity(line, record);
  line += '}';
  security_->info(line);
}

void Logs::security_event(std::string_view json_members) {
  if (!security_) return;
  std::string line = R"({"time":")";
  append_utc_timestamp(line, std::chrono::system_clock::now());
  line += "\",";
  line += json_members;
  line += '}';
  security_->info(line);
}

std::uint64_t Logs::dropped_lines() {
  return shared_pool()->overrun_counter();
}

void Logs::reopen() {
  for (const auto& logger : {access_, security_}) {
    if (!logger) continue;
    for (const auto& sink : logger->sinks()) {
      if (auto* file = dynamic_cast<ReopenableFileSink*>(sink.get())) file->reopen();
    }
  }
}

void Logs::flush() {
  if (access_) access_->flush();
  if (security_) security_->flush();
}

}  // namespace portcullis::obs
