#include "portcullis/core/clock.hpp"

#include <gtest/gtest.h>

namespace portcullis::core {
namespace {

using namespace std::chrono_literals;

TEST(ManualClock, MovesOnlyWhenAdvanced) {
  ManualClock clock;
  const auto mono = clock.monotonic();
  const auto wall = clock.wall();
  EXPECT_EQ(clock.monotonic(), mono);
  clock.advance(1500ms);
  EXPECT_EQ(clock.monotonic() - mono, 1500ms);
  EXPECT_EQ(clock.wall() - wall, 1500ms);
}

TEST(SystemClock, MonotonicNeverGoesBackAndMatchesSteadyClock) {
  const Clock& clock = system_clock();
  const auto first = clock.monotonic();
  const auto second = clock.monotonic();
  EXPECT_LE(first, second);
  // Coarse, but on the same epoch as steady_clock: within a few ticks of it.
  const auto precise = std::chrono::steady_clock::now();
  EXPECT_LT(std::chrono::abs(precise - clock.monotonic()), 100ms);
}

}  // namespace
}  // namespace portcullis::core
