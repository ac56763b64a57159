#pragma once
// Time as the gateway reads it, injected so that expiry, caches, health holds, rate limits and
// bans are tested without sleeping. `monotonic()` is for deadlines and ages; `wall()` is for
// anything compared with a token's exp/iat or shown to an operator (ban ends, revocations).

#include <atomic>
#include <chrono>
#include <cstdint>

namespace portcullis::core {

class Clock {
 public:
  using MonotonicTime = std::chrono::steady_clock::time_point;
  using WallTime = std::chrono::system_clock::time_point;

  virtual ~Clock() = default;
  virtual MonotonicTime monotonic() const = 0;
  virtual WallTime wall() const = 0;
};

// The real clocks. monotonic() reads CLOCK_MONOTONIC_COARSE (a few milliseconds' resolution at a
// fraction of a precise reading's cost; same epoch as steady_clock, so the two compare).
class SystemClock final : public Clock {
 public:
  MonotonicTime monotonic() const override;
  WallTime wall() const override;
};

// The process's real clock.
const Clock& system_clock();

// A clock that moves only when told to: for tests. Safe to read from several threads.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(WallTime wall_start = WallTime(std::chrono::seconds(1'700'000'000)))
      : offset_(0), wall_start_(wall_start) {}

  MonotonicTime monotonic() const override {
    return MonotonicTime(std::chrono::nanoseconds(offset_.load(std::memory_order_acquire)) +
                         std::chrono::hours(1));
  }
  WallTime wall() const override {
    return wall_start_ + std::chrono::duration_cast<WallTime::duration>(
                             std::chrono::nanoseconds(offset_.load(std::memory_order_acquire)));
  }
  // Moves both clocks forward together.
  void advance(std::chrono::nanoseconds by) {
    offset_.fetch_add(by.count(), std::memory_order_acq_rel);
  }

 private:
  std::atomic<std::int64_t> offset_;
  WallTime wall_start_;
};

}  // namespace portcullis::core
