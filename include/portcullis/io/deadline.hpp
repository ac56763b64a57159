#pragma once
// A connection's one deadline: the phase it bounds and when that phase must end, watched by one
// timer. The connection loop and the upstream exchange it hands a request to both set it; moving
// it later is a plain store, and only an earlier deadline touches the timer (the connection's
// watchdog then re-arms for it). When it passes, the watchdog cancels the connection's streams and
// `expired` names the phase that ran out of time.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>

#include "portcullis/config/policy.hpp"
#include "portcullis/core/clock.hpp"

namespace portcullis::io {

using Clock = std::chrono::steady_clock;

// The monotonic clock at jiffy resolution: deadlines, idle times, pool ages and endpoint health
// are read several times per request and need no better than a few milliseconds; this costs a
// fraction of a precise reading (kept for measured durations). Same epoch as steady_clock
// (CLOCK_MONOTONIC), so the two compare.
inline Clock::time_point coarse_now() {
  return core::SystemClock().monotonic();
}

enum class Phase : std::uint8_t {
  none,
  handshake,
  idle,
  head,
  body,
  client_write,
  upstream_connect,
  upstream_io,
};

struct Deadline {
  explicit Deadline(boost::asio::io_context& io) : timer(io) {}

  void set(Phase next, config::Duration timeout) {
    phase = next;
    expired = Phase::none;
    at = coarse_now() + timeout;
    if (at < armed) timer.cancel();  // the watchdog re-arms for the earlier time
  }

  boost::asio::steady_timer timer;
  Clock::time_point at = Clock::time_point::max();     // when the current phase must end
  Clock::time_point armed = Clock::time_point::max();  // what the timer waits for
  Phase phase = Phase::none;
  Phase expired = Phase::none;
};

}  // namespace portcullis::io
