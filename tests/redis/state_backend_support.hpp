#pragma once
// Test support for the redis state backend: backends on a real redis-server, writes awaited with
// a bound, and bounded polls for what another thread makes true.

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "portcullis/redis/connection.hpp"
#include "portcullis/redis/state_backend.hpp"
#include "redis/redis_server.hpp"

namespace portcullis::redis::test {

inline constexpr const char* kPrefix = "pc:test:";
inline constexpr auto kCommandTimeout = std::chrono::milliseconds(100);

inline std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             core::system_clock().wall().time_since_epoch())
      .count();
}

// Polls `done` until it holds or `limit` passes; the pause between polls is short and bounded.
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = now() + limit;
  while (!done()) {
    if (now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

// The outcome of one write, waited for at most `limit`; a write that never completes fails the
// test.
inline std::error_code await_write(const std::function<void(state::Backend::Done)>& write,
                                   std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  auto promise = std::make_shared<std::promise<std::error_code>>();
  auto future = promise->get_future();
  write([promise](std::error_code error) { promise->set_value(error); });
  if (future.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << "a write did not complete within " << limit.count() << " ms";
    return make_error_code(std::errc::timed_out);
  }
  return future.get();
}

class StateBackendTest : public ::testing::Test {
 protected:
  void SetUp() override { start_server(); }
  void TearDown() override {
    backends_.clear();
    if (admin_) admin_->stop();
    run_until(
        io_, [] { return false; }, std::chrono::milliseconds(20));
  }

  void start_server(std::vector<std::string> extra = {}) {
    server_.set_extra(std::move(extra));
    server_.start();
    if (admin_) admin_->stop();
    admin_ = Connection::create(io_.get_executor(), redis_options());
    admin_->start();
    ASSERT_TRUE(run_until(io_, [&] { return admin_->ready(); }));
  }

  RedisOptions redis_options() const {
    RedisOptions options;
    options.port = server_.port();
    options.key_prefix = kPrefix;
    options.command_timeout = kCommandTimeout;
    options.backoff_max = std::chrono::milliseconds(100);
    options.health_interval = std::chrono::milliseconds(200);
    return options;
  }

  StateBackendOptions backend_options() const {
    StateBackendOptions options;
    options.redis = redis_options();
    options.mirror.retention.max_token_lifetime = std::chrono::hours(1);
    options.mirror.retention.after_exp = std::chrono::seconds(300);
    options.follow_block = std::chrono::milliseconds(200);
    return options;
  }

  // A started backend, available (or not, when `wait` is false).
  RedisStateBackend& backend(StateBackendOptions options, bool wait = true) {
    backends_.push_back(std::make_unique<RedisStateBackend>(options, core::system_clock()));
    auto& backend = *backends_.back();
    backend.start();
    if (wait) {
      EXPECT_TRUE(eventually([&] { return backend.available(); }));
    }
    return backend;
  }
  RedisStateBackend& backend() { return backend(backend_options()); }

  Reply admin(Command command) { return run(io_, admin_->execute(std::move(command), 2s)); }

  asio::io_context io_;
  RedisServer server_;
  std::shared_ptr<Connection> admin_;
  std::vector<std::unique_ptr<RedisStateBackend>> backends_;
};

}  // namespace portcullis::redis::test
