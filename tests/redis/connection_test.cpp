#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <vector>

#include "portcullis/redis/commands.hpp"
#include "portcullis/redis/connection.hpp"
#include "redis/redis_server.hpp"

namespace portcullis::redis {
namespace {

using namespace test;

RedisOptions options_for(const RedisServer& server) {
  RedisOptions options;
  options.host = "127.0.0.1";
  options.port = server.port();
  options.command_timeout = 2s;
  options.connect_timeout = 2s;
  return options;
}

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override { server_.start(); }
  void TearDown() override {
    for (auto& connection : connections_)
      connection->stop();
    run_until(
        io_, [] { return false; }, 20ms);  // lets the stopped coroutines end
  }
  std::shared_ptr<Connection> connect(RedisOptions options, bool wait = true) {
    auto connection = Connection::create(io_.get_executor(), std::move(options));
    connection->start();
    connections_.push_back(connection);
    if (wait) {
      EXPECT_TRUE(run_until(io_, [&] { return connection->ready(); }));
    }
    return connection;
  }
  Reply execute(Connection& connection, Command command) {
    return run(io_, connection.execute(std::move(command)));
  }

  asio::io_context io_;
  RedisServer server_;
  std::vector<std::shared_ptr<Connection>> connections_;
};

TEST_F(ConnectionTest, CommandsAndTheirReplyTypes) {
  auto redis = connect(options_for(server_));
  EXPECT_EQ(redis->generation(), 1u);
  auto reply = execute(*redis, make_command("SET", redis->key("a"), std::string("v\0x", 3)));
  ASSERT_EQ(reply.status, Status::ok);
  EXPECT_EQ(reply.value.type, Value::Type::status);
  EXPECT_EQ(reply.value.string, "OK");

  reply = execute(*redis, make_command("GET", "portcullis:a"));
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply.value.type, Value::Type::string);
  EXPECT_EQ(reply.value.string, std::string("v\0x", 3));  // binary-safe both ways

  reply = execute(*redis, make_command("GET", "portcullis:none"));
  ASSERT_TRUE(reply.ok());
  EXPECT_TRUE(reply.value.is_nil());

  reply = execute(*redis, make_command("INCRBY", "n", "41"));
  EXPECT_EQ(reply.value.type, Value::Type::integer);
  EXPECT_EQ(reply.value.integer, 41);

  execute(*redis, make_command("RPUSH", "list", "x", "y", "z"));
  reply = execute(*redis, make_command("LRANGE", "list", "0", "-1"));
  ASSERT_TRUE(reply.value.is_array());
  ASSERT_EQ(reply.value.elements.size(), 3u);
  EXPECT_EQ(reply.value.elements[2].string, "z");

  reply = execute(*redis, make_command("NOSUCHCOMMAND"));
  EXPECT_EQ(reply.status, Status::ok);
  EXPECT_FALSE(reply.ok());
  EXPECT_TRUE(reply.is_error("ERR"));
  // An error reply leaves the connection usable.
  EXPECT_TRUE(execute(*redis, make_command("PING")).ok());
  EXPECT_TRUE(redis->ready());
}

TEST_F(ConnectionTest, ThousandPipelinedCommandsAnswerInOrder) {
  auto options = options_for(server_);
  options.max_in_flight = 1000;
  auto redis = connect(options);
  constexpr int kCount = 1000;
  std::vector<std::int64_t> got(kCount, -1);
  int finished = 0;
  for (int i = 0; i < kCount; ++i) {
    asio::co_spawn(
        io_,
        [&, i]() -> asio::awaitable<void> {
          // Each INCR is issued in order, so the i-th gets i + 1 exactly when replies are
          // matched to their commands in order.
          const auto reply = co_await redis->execute(make_command("INCR", "counter"));
          got[i] = reply.ok() ? reply.value.integer : -2;
          ++finished;
        },
        asio::detached);
  }
  // All are queued before the writer runs: they are pending together.
  run_until(
      io_, [&] { return redis->pending() == kCount; }, 1s);
  EXPECT_EQ(redis->pending(), static_cast<std::size_t>(kCount));
  ASSERT_TRUE(run_until(io_, [&] { return finished == kCount; }));
  for (int i = 0; i < kCount; ++i)
    ASSERT_EQ(got[i], i + 1) << i;
  // The 1000 commands left in few writes: the server counts far fewer reads than commands.
  const auto stats = execute(*redis, make_command("INFO", "stats"));
  ASSERT_TRUE(stats.ok());
  const auto at = stats.value.string.find("total_reads_processed:");
  ASSERT_NE(at, std::string::npos);
  const auto reads = std::stoll(stats.value.string.substr(at + 22));
  EXPECT_LT(reads, 200) << "commands were not batched";
}

TEST_F(ConnectionTest, OverTheInFlightBoundFailsAtOnce) {
  auto options = options_for(server_);
  options.max_in_flight = 4;
  auto redis = connect(options);
  std::vector<Status> statuses;
  for (int i = 0; i < 6; ++i) {
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          statuses.push_back((co_await redis->execute(make_command("PING"))).status);
        },
        asio::detached);
  }
  ASSERT_TRUE(run_until(io_, [&] { return statuses.size() == 6; }));
  // The two over the bound failed before anything was written, so they finished first.
  EXPECT_EQ(statuses[0], Status::overloaded);
  EXPECT_EQ(statuses[1], Status::overloaded);
  for (int i = 2; i < 6; ++i)
    EXPECT_EQ(statuses[i], Status::ok);
  EXPECT_EQ(redis->pending(), 0u);
  EXPECT_TRUE(execute(*redis, make_command("PING")).ok());
}

TEST_F(ConnectionTest, AHungServerTimesOutWithinTheDeadlineAndTheConnectionRecovers) {
  auto options = options_for(server_);
  options.command_timeout = 200ms;
  options.connect_timeout = 300ms;
  options.backoff_max = 200ms;
  auto redis = connect(options);
  ASSERT_TRUE(execute(*redis, make_command("PING")).ok());

  server_.pause();  // SIGSTOP: the socket stays open, nothing answers
  const auto started = now();
  const auto reply = execute(*redis, make_command("GET", "x"));
  const auto elapsed = now() - started;
  EXPECT_EQ(reply.status, Status::timeout);
  EXPECT_GE(elapsed, 190ms);
  EXPECT_LE(elapsed, 200ms + 300ms) << "the caller waited past command_timeout";
  EXPECT_FALSE(redis->ready());
  // While it cannot reconnect, commands fail at once instead of waiting.
  const auto quick = now();
  EXPECT_EQ(execute(*redis, make_command("PING")).status, Status::disconnected);
  EXPECT_LT(now() - quick, 50ms);

  server_.resume();
  ASSERT_TRUE(run_until(
      io_, [&] { return redis->ready(); }, 5s));
  EXPECT_GE(redis->generation(), 2u);
  EXPECT_TRUE(execute(*redis, make_command("PING")).ok());
}

TEST_F(ConnectionTest, ReconnectsAfterTheServerIsKilledAndRestarted) {
  auto options = options_for(server_);
  options.backoff_max = 100ms;
  auto redis = Connection::create(io_.get_executor(), options);
  connections_.push_back(redis);
  std::vector<std::pair<bool, std::string>> changes;
  redis->on_state_change([&](bool ready, std::string_view reason) {
    changes.emplace_back(ready, std::string(reason));
  });
  redis->start();
  ASSERT_TRUE(run_until(io_, [&] { return redis->ready(); }));
  ASSERT_TRUE(execute(*redis, make_command("SET", "k", "1")).ok());

  server_.kill();
  // The reader sees the close at once; no command is needed to notice.
  ASSERT_TRUE(run_until(
      io_, [&] { return !redis->ready(); }, 2s));
  EXPECT_EQ(execute(*redis, make_command("PING")).status, Status::disconnected);
  EXPECT_FALSE(redis->last_error().empty());

  // Retries while the server is away are not reported one by one.
  run_until(
      io_, [] { return false; }, 300ms);
  server_.start();
  ASSERT_TRUE(run_until(
      io_, [&] { return redis->ready(); }, 5s));
  EXPECT_EQ(redis->generation(), 2u);
  EXPECT_TRUE(execute(*redis, make_command("PING")).ok());
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_TRUE(changes[0].first);
  EXPECT_FALSE(changes[1].first);
  EXPECT_EQ(changes[1].second, "closed by the server");
  EXPECT_TRUE(changes[2].first);
}

TEST_F(ConnectionTest, IdleConnectionsArePinged) {
  auto options = options_for(server_);
  options.health_interval = 50ms;
  auto redis = connect(options);
  auto admin = connect(options_for(server_));
  const auto pings = [&] {
    const auto stats = execute(*admin, make_command("INFO", "commandstats"));
    const auto at = stats.value.string.find("cmdstat_ping:calls=");
    return at == std::string::npos ? 0LL : std::stoll(stats.value.string.substr(at + 19));
  };
  const auto before = pings();
  ASSERT_TRUE(run_until(
      io_, [&] { return pings() >= before + 3; }, 5s));
  EXPECT_TRUE(redis->ready());
}

TEST_F(ConnectionTest, SelectsTheConfiguredDatabase) {
  auto options = options_for(server_);
  options.database = 3;
  auto on_three = connect(options);
  auto on_zero = connect(options_for(server_));
  ASSERT_TRUE(execute(*on_three, make_command("SET", "where", "three")).ok());
  EXPECT_TRUE(execute(*on_zero, make_command("GET", "where")).value.is_nil());
  ASSERT_TRUE(execute(*on_zero, make_command("SELECT", "3")).ok());
  EXPECT_EQ(execute(*on_zero, make_command("GET", "where")).value.string, "three");
}

TEST_F(ConnectionTest, AReplyOverTheSizeLimitIsAProtocolErrorAndTheConnectionRecovers) {
  auto options = options_for(server_);
  options.max_reply_bytes = 4096;
  auto redis = connect(options);
  ASSERT_TRUE(execute(*redis, make_command("SET", "big", std::string(64 * 1024, 'x'))).ok());
  EXPECT_EQ(execute(*redis, make_command("GET", "big")).status, Status::protocol);
  ASSERT_TRUE(run_until(
      io_, [&] { return redis->ready(); }, 5s));
  EXPECT_TRUE(execute(*redis, make_command("STRLEN", "big")).ok());
}

TEST_F(ConnectionTest, ReadsWhetherTheServerWritesAnAppendOnlyFile) {
  auto redis = connect(options_for(server_));
  const auto persistence = [&] {
    const auto reply = execute(*redis, make_command("INFO", "persistence"));
    return reply.ok() ? parse_aof_enabled(reply.value.string) : std::nullopt;
  };
  EXPECT_EQ(persistence(), std::optional<bool>(false));
  ASSERT_TRUE(execute(*redis, make_command("CONFIG", "SET", "appendonly", "yes")).ok());
  EXPECT_EQ(persistence(), std::optional<bool>(true));
  EXPECT_EQ(parse_aof_enabled("# Persistence\r\nloading:0\r\naof_enabled:1\r\n"), true);
  EXPECT_EQ(parse_aof_enabled("aof_enabled:0"), false);
  EXPECT_EQ(parse_aof_enabled("loading:0\r\n"), std::nullopt);
}

TEST_F(ConnectionTest, ResolvesAHostNameWithoutBlocking) {
  auto options = options_for(server_);
  options.host = "localhost";  // may resolve to ::1 first, where nothing listens
  auto redis = connect(options);
  EXPECT_TRUE(redis->ready()) << redis->last_error();
  EXPECT_TRUE(execute(*redis, make_command("PING")).ok());
}

TEST_F(ConnectionTest, StopFailsPendingCommandsAndFreesTheConnection) {
  auto redis = connect(options_for(server_));
  std::vector<Status> statuses;
  for (int i = 0; i < 3; ++i) {
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          // Blocks the server side for a while: the replies cannot come before stop().
          statuses.push_back(
              (co_await redis->execute(make_command("BLPOP", "nothing", "1"))).status);
        },
        asio::detached);
  }
  ASSERT_TRUE(run_until(io_, [&] { return redis->pending() == 3; }));
  redis->stop();
  ASSERT_TRUE(run_until(
      io_, [&] { return statuses.size() == 3; }, 500ms));
  for (const auto status : statuses)
    EXPECT_EQ(status, Status::disconnected);
  EXPECT_FALSE(redis->ready());
  std::weak_ptr<Connection> weak = redis;
  redis.reset();
  connections_.clear();
  EXPECT_TRUE(run_until(
      io_, [&] { return weak.expired(); }, 2s));
}

TEST(StreamIds, CompareNumerically) {
  EXPECT_LT(compare_stream_ids("9-0", "10-0"), 0);
  EXPECT_LT(compare_stream_ids("10-2", "10-10"), 0);
  EXPECT_EQ(compare_stream_ids("10-1", "10-1"), 0);
  EXPECT_GT(compare_stream_ids("11-0", "10-99"), 0);
}

}  // namespace
}  // namespace portcullis::redis
