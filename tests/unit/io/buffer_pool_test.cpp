// The per-thread buffer pool: a buffer given back is the one taken next for its size, and the
// pool keeps a bounded number of buffers.

#include <gtest/gtest.h>

#include <vector>

#include "portcullis/io/buffer_pool.hpp"

namespace portcullis::io {
namespace {

TEST(BufferPool, GivenBackBufferIsTakenAgainForItsSizeOnly) {
  BufferPool pool;
  auto buffer = pool.take(1024);
  char* const address = buffer.get();
  pool.give(std::move(buffer), 1024);
  auto other_size = pool.take(2048);
  EXPECT_NE(other_size.get(), address);
  auto again = pool.take(1024);
  EXPECT_EQ(again.get(), address);
  auto fresh = pool.take(1024);  // the free one is in use: a new one
  EXPECT_NE(fresh.get(), address);
}

TEST(BufferPool, KeepsAtMostSixtyFourPerSize) {
  BufferPool pool;
  std::vector<std::unique_ptr<char[]>> taken;
  for (int i = 0; i < 70; ++i)
    taken.push_back(pool.take(64));
  std::vector<char*> given;
  for (auto& buffer : taken) {
    given.push_back(buffer.get());
    pool.give(std::move(buffer), 64);
  }
  // The first 64 given back are kept (last in, first out); the rest were freed.
  for (int i = 63; i >= 0; --i)
    EXPECT_EQ(pool.take(64).get(), given[static_cast<std::size_t>(i)]);
}

}  // namespace
}  // namespace portcullis::io
