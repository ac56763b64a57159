#include "portcullis/obs/log_writer.hpp"

#include <stdio_ext.h>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "portcullis/core/errors.hpp"
#include "portcullis/obs/logs.hpp"

namespace portcullis::obs {
namespace {

std::array<std::atomic<std::uint64_t>, kLogKinds> write_errors{};

}  // namespace

std::string_view to_string(LogKind kind) {
  return kind == LogKind::access ? "access" : "security";
}

std::uint64_t log_write_errors(LogKind kind) {
  return write_errors[static_cast<std::size_t>(kind)].load(std::memory_order_relaxed);
}

bool LineWriter::write(std::FILE* stream, std::string_view line) {
  if (!stream) {
    failed(ENOENT);
    return false;
  }
  errno = 0;
  bool ok = std::fwrite(line.data(), 1, line.size(), stream) == line.size();
  ok = std::fputc('\n', stream) != EOF && ok;
  ok = std::fflush(stream) == 0 && ok;
  if (ok) return true;
  const int error = errno;
  __fpurge(stream);  // what is still buffered would be glued to the next line
  std::clearerr(stream);
  failed(error);
  return false;
}

void LineWriter::failed(int error) {
  write_errors[static_cast<std::size_t>(kind_)].fetch_add(1, std::memory_order_relaxed);
  ++failures_;
  ++failures_unreported_;
  const auto now = clock_.monotonic();
  if (warned_ && now - last_warning_ < kWarnEvery) return;
  warned_ = true;
  last_warning_ = now;
  std::string warning = R"({"time":")";
  append_utc_timestamp(warning, clock_.wall());
  warning += R"(","level":"error","event":"log_write_failed","log":")";
  warning += to_string(kind_);
  warning += R"(","target":")";
  core::append_json_escaped(warning, target_);
  warning += R"(","error":")";
  core::append_json_escaped(warning, error ? std::strerror(error) : "write failed");
  warning += R"(","failed_writes":)";
  warning += std::to_string(failures_unreported_);
  warning += "}\n";
  failures_unreported_ = 0;
  if (warnings_) {
    std::fwrite(warning.data(), 1, warning.size(), warnings_);
    std::fflush(warnings_);
  }
}

}  // namespace portcullis::obs
