#pragma once
// Follows a Redis stream (the fleet's change log: revocations, bans) on a connection of its own:
// XREAD BLOCK from the last id seen, each entry handed to on_entry in order. Nothing published
// while disconnected is lost: a reconnect resumes from the last id. When the entries after that
// id are gone (the stream was trimmed past it, or the server lost its data), on_resync is awaited
// so that the owner reloads everything, and following goes on from the stream's end as it was
// before the reload (entries that arrive meanwhile are delivered after it: applying an entry
// must be idempotent).
//
//   auto follower = redis::StreamFollower::create(executor, options, "portcullis:changes",
//                                                 {.on_entry = apply, .on_resync = reload});
//   follower->start();  // starts with a resync: the owner loads, then follows
//   ...
//   follower->stop();

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "portcullis/redis/commands.hpp"
#include "portcullis/redis/connection.hpp"

namespace portcullis::redis {

struct StreamEntry {
  std::string id;
  std::vector<Field> fields;
};

class StreamFollower : public std::enable_shared_from_this<StreamFollower> {
 public:
  struct Handlers {
    std::function<void(const StreamEntry&)> on_entry;
    // Reloads the owner's whole state; false when that failed (retried after a backoff).
    std::function<boost::asio::awaitable<bool>()> on_resync;
  };

  // `key` is the stream's full key. Each XREAD blocks at most `block` and returns at most
  // `count` entries. `options.command_timeout` bounds the wait beyond `block`.
  static std::shared_ptr<StreamFollower> create(
      boost::asio::any_io_executor executor, RedisOptions options, std::string key,
      Handlers handlers, std::chrono::milliseconds block = std::chrono::milliseconds(1000),
      std::size_t count = 512);

  // Starts following after `from_id`; with an empty id it starts with a resync (the usual start:
  // load everything, then follow). "0-0" reads the whole stream as it is.
  void start(std::string from_id = {});
  void stop();

  const std::string& last_id() const { return last_id_; }
  std::uint64_t resyncs() const { return resyncs_; }
  // Connected, caught up with any resync, and reading.
  bool following() const { return following_; }
  Connection& connection() { return *connection_; }

 private:
  StreamFollower(boost::asio::any_io_executor executor, RedisOptions options, std::string key,
                 Handlers handlers, std::chrono::milliseconds block, std::size_t count);
  boost::asio::awaitable<void> run();
  // After a (re)connect: true when following may go on from last_id_.
  boost::asio::awaitable<bool> check_continuity();
  boost::asio::awaitable<bool> resync();
  // Hands the entries of an XREAD reply to on_entry; false when the reply is malformed.
  bool deliver(const Value& reply);

  std::shared_ptr<Connection> connection_;
  std::string key_;
  Handlers handlers_;
  std::chrono::milliseconds block_;
  std::size_t count_;
  boost::asio::steady_timer pause_;
  std::string last_id_;
  bool need_resync_ = true;
  bool following_ = false;
  bool started_ = false;
  bool stopped_ = false;
  std::uint64_t resyncs_ = 0;
};

}  // namespace portcullis::redis
