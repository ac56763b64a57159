#include "portcullis/core/clock.hpp"

#include <time.h>

namespace portcullis::core {

Clock::MonotonicTime SystemClock::monotonic() const {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return MonotonicTime(std::chrono::duration_cast<MonotonicTime::duration>(
      std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec)));
}

Clock::WallTime SystemClock::wall() const {
  return std::chrono::system_clock::now();
}

const Clock& system_clock() {
  static const SystemClock clock;
  return clock;
}

}  // namespace portcullis::core
