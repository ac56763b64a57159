#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "portcullis/redis/commands.hpp"
#include "portcullis/redis/stream_follower.hpp"
#include "redis/redis_server.hpp"

namespace portcullis::redis {
namespace {

using namespace test;

constexpr const char* kStream = "portcullis:changes";

class StreamFollowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.start();
    admin_ = Connection::create(io_.get_executor(), options());
    admin_->start();
    ASSERT_TRUE(run_until(io_, [&] { return admin_->ready(); }));
  }
  void TearDown() override {
    if (follower_) follower_->stop();
    admin_->stop();
    run_until(
        io_, [] { return false; }, 20ms);
  }
  RedisOptions options() {
    RedisOptions options;
    options.port = server_.port();
    options.command_timeout = 2s;
    options.backoff_max = 100ms;
    return options;
  }
  void follow(std::string from_id = {}) {
    StreamFollower::Handlers handlers;
    handlers.on_entry = [this](const StreamEntry& entry) {
      ASSERT_EQ(entry.fields.size(), 1u);
      ASSERT_EQ(entry.fields[0].first, "jti");
      entries_.push_back(entry.fields[0].second);
    };
    handlers.on_resync = [this]() -> asio::awaitable<bool> {
      // The owner reloads its state from Redis here; this one forgets what it had.
      ++reloads_;
      entries_.clear();
      co_return true;
    };
    follower_ = StreamFollower::create(io_.get_executor(), options(), kStream, handlers, 200ms);
    follower_->start(std::move(from_id));
    ASSERT_TRUE(run_until(io_, [&] { return follower_->following(); }));
  }
  std::string add(const std::string& jti) {
    const Field fields[] = {{"jti", jti}};
    const auto reply = run(io_, admin_->execute(xadd(kStream, 1000, fields)));
    EXPECT_TRUE(reply.ok());
    return reply.value.string;
  }
  bool received(std::size_t count) {
    return run_until(io_, [&] { return entries_.size() >= count; });
  }

  asio::io_context io_;
  RedisServer server_;
  std::shared_ptr<Connection> admin_;
  std::shared_ptr<StreamFollower> follower_;
  std::vector<std::string> entries_;
  int reloads_ = 0;
};

TEST_F(StreamFollowerTest, StartsWithAResyncThenDeliversNewEntriesInOrder) {
  add("before-start");
  follow();
  EXPECT_EQ(reloads_, 1);
  EXPECT_EQ(follower_->resyncs(), 1u);
  for (int i = 0; i < 5; ++i)
    add("t" + std::to_string(i));
  ASSERT_TRUE(received(5));
  // What the reload covered is not delivered again.
  EXPECT_EQ(entries_, (std::vector<std::string>{"t0", "t1", "t2", "t3", "t4"}));
  EXPECT_EQ(follower_->last_id(),
            run(io_, admin_->execute(make_command("XREVRANGE", kStream, "+", "-", "COUNT", "1")))
                .value.elements[0]
                .elements[0]
                .string);
}

TEST_F(StreamFollowerTest, FromTheStartReadsTheWholeStream) {
  add("a");
  add("b");
  follow("0-0");
  ASSERT_TRUE(received(2));
  EXPECT_EQ(reloads_, 0);
  EXPECT_EQ(entries_, (std::vector<std::string>{"a", "b"}));
}

TEST_F(StreamFollowerTest, ResumesAfterAReconnectWithoutLoss) {
  follow();
  add("first");
  ASSERT_TRUE(received(1));
  const auto generation = follower_->connection().generation();
  // The server drops the follower's connection and, in the same batch, before the follower can
  // be back, three entries arrive.
  Command kill = make_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
  std::vector<Reply> replies;
  asio::co_spawn(
      io_, [&]() -> asio::awaitable<void> { replies.push_back(co_await admin_->execute(kill)); },
      asio::detached);
  for (const char* jti : {"while-away-1", "while-away-2", "while-away-3"}) {
    const Field fields[] = {{"jti", jti}};
    asio::co_spawn(
        io_,
        [&, command = xadd(kStream, 1000, fields)]() -> asio::awaitable<void> {
          replies.push_back(co_await admin_->execute(command));
        },
        asio::detached);
  }
  ASSERT_TRUE(run_until(io_, [&] { return replies.size() == 4; }));
  EXPECT_GE(replies[0].value.integer, 1);  // the follower's connection was killed
  ASSERT_TRUE(received(4));
  EXPECT_GT(follower_->connection().generation(), generation);
  EXPECT_EQ(entries_,
            (std::vector<std::string>{"first", "while-away-1", "while-away-2", "while-away-3"}));
  EXPECT_EQ(reloads_, 1);  // nothing was lost: no reload was needed
  add("after");
  ASSERT_TRUE(received(5));
  EXPECT_EQ(entries_.back(), "after");
}

TEST_F(StreamFollowerTest, ResyncsWhenTheStreamWasTrimmedPastTheLastIdSeen) {
  follow();
  add("seen");
  ASSERT_TRUE(received(1));
  // While the follower is disconnected, many entries come and the stream is trimmed to 5: the
  // entry seen last and those right after it are gone.
  std::vector<Command> batch;
  batch.push_back(make_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"));
  for (int i = 0; i < 20; ++i)
    batch.push_back(make_command("XADD", kStream, "*", "jti", "burst-" + std::to_string(i)));
  batch.push_back(make_command("XTRIM", kStream, "MAXLEN", "5"));
  std::size_t done = 0;
  for (auto& command : batch) {
    asio::co_spawn(
        io_,
        [&, command]() -> asio::awaitable<void> {
          EXPECT_TRUE((co_await admin_->execute(command)).ok());
          ++done;
        },
        asio::detached);
  }
  ASSERT_TRUE(run_until(io_, [&] { return done == batch.size(); }));
  ASSERT_TRUE(run_until(io_, [&] { return reloads_ == 2; }));
  EXPECT_EQ(follower_->resyncs(), 2u);
  ASSERT_TRUE(run_until(io_, [&] { return follower_->following(); }));
  add("after-resync");
  ASSERT_TRUE(received(1));
  EXPECT_EQ(entries_, (std::vector<std::string>{"after-resync"}));
}

TEST_F(StreamFollowerTest, ResyncsWhenTheServerLostItsData) {
  follow();
  add("one");
  ASSERT_TRUE(received(1));
  server_.kill();  // no persistence: the stream is gone with the process
  server_.start();
  ASSERT_TRUE(run_until(io_, [&] { return reloads_ == 2 && follower_->following(); }));
  ASSERT_TRUE(run_until(io_, [&] { return admin_->ready(); }));
  add("two");
  ASSERT_TRUE(received(1));
  EXPECT_EQ(entries_, (std::vector<std::string>{"two"}));
}

TEST_F(StreamFollowerTest, XaddTrimsToAboutTheMaximumLength) {
  for (int i = 0; i < 500; ++i) {
    const Field fields[] = {{"jti", std::to_string(i)}};
    ASSERT_TRUE(run(io_, admin_->execute(xadd(kStream, 100, fields))).ok());
  }
  const auto length = run(io_, admin_->execute(make_command("XLEN", kStream))).value.integer;
  EXPECT_GE(length, 100);
  EXPECT_LT(length, 500);
}

}  // namespace
}  // namespace portcullis::redis
