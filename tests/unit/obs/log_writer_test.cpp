#include "portcullis/obs/log_writer.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "portcullis/obs/logs.hpp"
#include "portcullis/obs/metrics.hpp"

namespace portcullis::obs {
namespace {

using std::chrono::seconds;

std::string contents(std::FILE* file) {
  std::fflush(file);
  std::rewind(file);
  std::string text;
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0)
    text.append(buffer, n);
  return text;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t found = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++found;
  return found;
}

struct Files {
  std::FILE* full = std::fopen("/dev/full", "w");  // every write fails with ENOSPC
  std::FILE* warnings = std::tmpfile();
  ~Files() {
    if (full) std::fclose(full);
    if (warnings) std::fclose(warnings);
  }
};

TEST(LineWriter, WritesAndFlushesWholeLines) {
  core::ManualClock clock;
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  LineWriter writer(LogKind::access, "access.log", clock, nullptr);
  const auto before = log_write_errors(LogKind::access);
  EXPECT_TRUE(writer.write(out, R"({"a":1})"));
  EXPECT_TRUE(writer.write(out, R"({"b":2})"));
  EXPECT_EQ(contents(out), "{\"a\":1}\n{\"b\":2}\n");
  EXPECT_EQ(writer.failures(), 0u);
  EXPECT_EQ(log_write_errors(LogKind::access), before);
  std::fclose(out);
}

TEST(LineWriter, CountsEveryFailedLineOnAFullDevice) {
  core::ManualClock clock;
  Files files;
  ASSERT_NE(files.full, nullptr);
  LineWriter writer(LogKind::security, "/var/log/portcullis/security.log", clock, files.warnings);
  const auto access_before = log_write_errors(LogKind::access);
  const auto before = log_write_errors(LogKind::security);
  for (int i = 0; i < 5; ++i)
    EXPECT_FALSE(writer.write(files.full, R"({"event":"rejected"})"));
  EXPECT_EQ(writer.failures(), 5u);
  EXPECT_EQ(log_write_errors(LogKind::security), before + 5);
  EXPECT_EQ(log_write_errors(LogKind::access), access_before);  // counted per log
}

TEST(LineWriter, WarnsOnStderrAtMostOnceAMinuteWhileFailing) {
  core::ManualClock clock;
  Files files;
  ASSERT_NE(files.full, nullptr);
  LineWriter writer(LogKind::access, "/var/log/portcullis/access.log", clock, files.warnings);
  for (int i = 0; i < 3; ++i)
    writer.write(files.full, "{}");
  clock.advance(seconds(59));
  writer.write(files.full, "{}");
  std::string text = contents(files.warnings);
  EXPECT_EQ(count(text, "\n"), 1u) << text;
  EXPECT_NE(text.find(R"("event":"log_write_failed","log":"access")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("target":"/var/log/portcullis/access.log")"), std::string::npos);
  EXPECT_NE(text.find("No space left on device"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("failed_writes":1})"), std::string::npos) << text;

  clock.advance(seconds(1));  // a minute after the first warning
  writer.write(files.full, "{}");
  text = contents(files.warnings);
  EXPECT_EQ(count(text, "\n"), 2u) << text;
  EXPECT_NE(text.find(R"("failed_writes":4})"), std::string::npos) << text;  // 3 since the first
}

TEST(LineWriter, AStreamThatCouldNotBeOpenedCountsToo) {
  core::ManualClock clock;
  LineWriter writer(LogKind::access, "/nowhere/access.log", clock, nullptr);
  const auto before = log_write_errors(LogKind::access);
  EXPECT_FALSE(writer.write(nullptr, "{}"));
  EXPECT_EQ(log_write_errors(LogKind::access), before + 1);
}

TEST(LineWriter, WritesAgainOnceThereIsRoom) {
  // The same stream first fails (its descriptor points at /dev/full), then has room again.
  core::ManualClock clock;
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  LineWriter writer(LogKind::access, "access.log", clock, nullptr);
  EXPECT_TRUE(writer.write(out, "first"));
  std::FILE* full = std::fopen("/dev/full", "w");
  ASSERT_NE(full, nullptr);
  EXPECT_FALSE(writer.write(full, "lost"));
  std::fclose(full);
  EXPECT_TRUE(writer.write(out, "second"));
  EXPECT_EQ(contents(out), "first\nsecond\n");
  std::fclose(out);
}

// Through the asynchronous logs and the metric: lines sent to /dev/full are counted under their
// log, and /metrics shows them.
TEST(Logs, WriteErrorsReachTheMetric) {
  config::LoggingSettings settings;
  settings.access_log = "/dev/full";
  settings.security_log = "/dev/full";
  const auto access_before = log_write_errors(LogKind::access);
  const auto security_before = log_write_errors(LogKind::security);
  {
    Logs logs(settings);
    AccessRecord record;
    record.request_id = "r1";
    record.method = "GET";
    record.path = "/a";
    record.status = 200;
    for (int i = 0; i < 3; ++i)
      logs.access(record);
    logs.security_event(R"("event":"reload","result":"ok")");
    logs.flush();
    // The lines are written on the logs' own threads: wait for them, boundedly.
    const auto deadline = std::chrono::steady_clock::now() + seconds(10);
    while ((log_write_errors(LogKind::access) < access_before + 3 ||
            log_write_errors(LogKind::security) < security_before + 1) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
  }
  EXPECT_EQ(log_write_errors(LogKind::access), access_before + 3);
  EXPECT_EQ(log_write_errors(LogKind::security), security_before + 1);

  Metrics metrics("test", "openssl", "boost");
  metrics.sync_log_write_errors();
  const std::string exposition = metrics.expose();
  EXPECT_NE(exposition.find("portcullis_log_write_errors_total{log=\"access\"} " +
                            std::to_string(access_before + 3)),
            std::string::npos)
      << exposition;
  EXPECT_NE(exposition.find("portcullis_log_write_errors_total{log=\"security\"} " +
                            std::to_string(security_before + 1)),
            std::string::npos)
      << exposition;
}

}  // namespace
}  // namespace portcullis::obs
