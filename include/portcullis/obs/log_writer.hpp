#pragma once
// Writing log lines, and accounting for the ones that could not be written. A full disk, a
// closed pipe or an I/O error must not lose lines silently: every line whose write or flush
// fails is counted per log (portcullis_log_write_errors_total{log=...}), and while writes keep
// failing a warning goes to stderr at most once a minute, naming the log and the error.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "portcullis/core/clock.hpp"

namespace portcullis::obs {

enum class LogKind : std::uint8_t { access, security };
inline constexpr std::size_t kLogKinds = 2;

std::string_view to_string(LogKind kind);

// Lines of that log lost to failed writes so far, process-wide (they survive a reload).
std::uint64_t log_write_errors(LogKind kind);

// Writes lines to one stream for one log. Not thread-safe: one writer per sink, called under the
// sink's lock.
class LineWriter {
 public:
  static constexpr std::chrono::seconds kWarnEvery{60};

  // `target` names the destination in the warning (a path, "stdout", "stderr"); warnings go to
  // `warnings` (stderr unless a test says otherwise).
  LineWriter(LogKind kind, std::string target, const core::Clock& clock = core::system_clock(),
             std::FILE* warnings = stderr)
      : kind_(kind), target_(std::move(target)), clock_(clock), warnings_(warnings) {}

  // Writes `line` and a newline to `stream` (may be null: the file could not be opened) and
  // flushes it. False, counted, when any of it failed: the line is then dropped from the
  // stream's buffer, so a later line starts clean once there is room again.
  bool write(std::FILE* stream, std::string_view line);

  std::uint64_t failures() const { return failures_; }

 private:
  void failed(int error);

  LogKind kind_;
  std::string target_;
  const core::Clock& clock_;
  std::FILE* warnings_;
  std::uint64_t failures_ = 0;
  std::uint64_t failures_unreported_ = 0;
  bool warned_ = false;
  core::Clock::MonotonicTime last_warning_{};
};

}  // namespace portcullis::obs
