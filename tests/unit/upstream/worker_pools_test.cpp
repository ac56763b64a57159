// A worker's side of the upstreams: round robin starts at the worker's own index (so workers
// spread over the endpoints) and advances per upstream; pools are found by endpoint id.

#include <gtest/gtest.h>

#include "portcullis/upstream/pool.hpp"

namespace portcullis::upstream {
namespace {

TEST(WorkerPools, RoundRobinStartsAtTheWorkerIndexAndAdvancesPerUpstream) {
  WorkerPools pools(3);
  EXPECT_EQ(pools.next_round_robin(0), 3u);
  EXPECT_EQ(pools.next_round_robin(0), 4u);
  EXPECT_EQ(pools.next_round_robin(2), 3u);  // another upstream: its own position
  EXPECT_EQ(pools.next_round_robin(0), 5u);
  EXPECT_EQ(pools.next_round_robin(1), 3u);
}

TEST(WorkerPools, OnePoolPerEndpointId) {
  WorkerPools pools(0);
  ConnectionPool& seven = pools.pool(7);
  EXPECT_EQ(seven.idle_count(), 0u);
  pools.pool(2);
  EXPECT_EQ(&pools.pool(7), &pools.pool(7));
  EXPECT_NE(&pools.pool(7), &pools.pool(2));
  EXPECT_EQ(pools.pool(9).take(ConnectionPool::Clock::now()), nullptr);  // empty
}

}  // namespace
}  // namespace portcullis::upstream
