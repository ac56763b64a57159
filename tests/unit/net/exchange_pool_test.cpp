// The per-thread pool of request exchanges: a pooled exchange gives back a large body's buffer
// and keeps a small one's.

#include <gtest/gtest.h>

#include <string>

#include "net/connection.hpp"

namespace portcullis::net {
namespace {

TEST(ExchangePool, ALargeBodyBufferIsReleasedWhenTheExchangeIsPooled) {
  auto exchange = take_exchange();
  exchange->body.assign(1024 * 1024, 'x');  // a 1 MiB body, read whole for validation
  Exchange* const pooled = exchange.get();
  give_exchange(std::move(exchange));
  auto again = take_exchange();
  ASSERT_EQ(again.get(), pooled);  // the same exchange, from the pool
  EXPECT_LE(again->body.capacity(), kBodyReserveBytes);
  EXPECT_TRUE(again->body.empty());
  give_exchange(std::move(again));
}

TEST(ExchangePool, ABodyBufferWithinTheReserveIsKept) {
  auto exchange = take_exchange();
  exchange->body.assign(kBodyReserveBytes / 2, 'x');
  const std::size_t capacity = exchange->body.capacity();
  Exchange* const pooled = exchange.get();
  give_exchange(std::move(exchange));
  auto again = take_exchange();
  ASSERT_EQ(again.get(), pooled);
  EXPECT_EQ(again->body.capacity(), capacity);  // reused by the next request: no allocation
  give_exchange(std::move(again));
}

TEST(ExchangePool, TheBoundIsTheReserveItself) {
  auto exchange = take_exchange();
  exchange->body.clear();
  exchange->body.shrink_to_fit();
  exchange->body.reserve(kBodyReserveBytes);
  const std::size_t at_reserve = exchange->body.capacity();
  give_exchange(std::move(exchange));
  auto again = take_exchange();
  if (at_reserve <= kBodyReserveBytes) {
    EXPECT_EQ(again->body.capacity(), at_reserve);  // exactly the reserve: kept
  }
  again->body.reserve(kBodyReserveBytes + 1);
  give_exchange(std::move(again));
  EXPECT_LE(take_exchange()->body.capacity(), kBodyReserveBytes);  // one byte over: released
}

}  // namespace
}  // namespace portcullis::net
