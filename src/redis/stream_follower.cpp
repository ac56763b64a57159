#include "portcullis/redis/stream_follower.hpp"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace portcullis::redis {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kStart = "0-0";

// The id of the single entry of an XRANGE/XREVRANGE ... COUNT 1 reply; "" when the stream is
// empty or absent, nothing when the reply is malformed.
std::optional<std::string> single_entry_id(const Value& reply) {
  if (!reply.is_array()) return std::nullopt;
  if (reply.elements.empty()) return std::string();
  const auto& entry = reply.elements.front();
  if (!entry.is_array() || entry.elements.empty() || !entry.elements.front().is_text())
    return std::nullopt;
  return entry.elements.front().string;
}

}  // namespace

std::shared_ptr<StreamFollower> StreamFollower::create(asio::any_io_executor executor,
                                                       RedisOptions options, std::string key,
                                                       Handlers handlers,
                                                       std::chrono::milliseconds block,
                                                       std::size_t count) {
  return std::shared_ptr<StreamFollower>(new StreamFollower(
      std::move(executor), std::move(options), std::move(key), std::move(handlers), block, count));
}

StreamFollower::StreamFollower(asio::any_io_executor executor, RedisOptions options,
                               std::string key, Handlers handlers, std::chrono::milliseconds block,
                               std::size_t count)
    : connection_(Connection::create(executor, std::move(options))),
      key_(std::move(key)),
      handlers_(std::move(handlers)),
      block_(block),
      count_(count == 0 ? 1 : count),
      pause_(executor) {}

void StreamFollower::start(std::string from_id) {
  if (started_ || stopped_) return;
  started_ = true;
  need_resync_ = from_id.empty();
  last_id_ = std::move(from_id);
  connection_->start();
  asio::co_spawn(connection_->executor(), run(), asio::detached);
}

void StreamFollower::stop() {
  if (stopped_) return;
  stopped_ = true;
  following_ = false;
  pause_.cancel();
  connection_->stop();
}

namespace {
constexpr auto kBlockedReadSlack = std::chrono::milliseconds(1000);
}  // namespace

asio::awaitable<void> StreamFollower::run() {
  const auto self = shared_from_this();
  std::uint64_t followed_generation = 0;
  const auto pause = [this]() -> asio::awaitable<void> {
    following_ = false;
    pause_.expires_after(connection_->options().backoff_max);
    co_await pause_.async_wait(asio::as_tuple(asio::use_awaitable));
  };
  while (!stopped_) {
    if (!connection_->ready()) {
      following_ = false;
      co_await connection_->wait_ready(connection_->options().backoff_max);
      continue;
    }
    if (connection_->generation() != followed_generation || need_resync_) {
      const auto generation = connection_->generation();
      if (!co_await check_continuity()) {
        if (connection_->ready()) co_await pause();  // a refused command or a failed reload
        continue;
      }
      followed_generation = generation;
    }
    following_ = true;
    Command read = make_command("XREAD", "COUNT", std::to_string(count_), "BLOCK",
                                std::to_string(block_.count()), "STREAMS", key_, last_id_);
    // A blocked read ends on the server's own timer; on a busy host its reply can come a little
    // late. A hung server is still noticed within block + kBlockedReadSlack, and a closed one at
    // once; a short command_timeout must not turn every late wake-up into a reconnect.
    const auto reply = co_await connection_->execute(
        std::move(read),
        block_ + std::max(connection_->options().command_timeout, kBlockedReadSlack));
    if (stopped_) break;
    if (reply.status != Status::ok) continue;  // the connection reconnects; continuity is checked
    if (reply.value.is_error() || !deliver(reply.value)) co_await pause();
  }
  following_ = false;
}

bool StreamFollower::deliver(const Value& reply) {
  if (reply.is_nil()) return true;  // BLOCK ran out: nothing new
  if (!reply.is_array()) return false;
  for (const auto& stream : reply.elements) {
    if (!stream.is_array() || stream.elements.size() != 2 || !stream.elements[1].is_array())
      return false;
    for (const auto& item : stream.elements[1].elements) {
      if (!item.is_array() || item.elements.size() != 2 || !item.elements[0].is_text())
        return false;
      StreamEntry entry;
      entry.id = item.elements[0].string;
      const auto& pairs = item.elements[1];
      if (pairs.is_array()) {
        for (std::size_t i = 0; i + 1 < pairs.elements.size(); i += 2)
          entry.fields.emplace_back(pairs.elements[i].string, pairs.elements[i + 1].string);
      }
      last_id_ = entry.id;
      if (handlers_.on_entry) handlers_.on_entry(entry);
    }
  }
  return true;
}

asio::awaitable<bool> StreamFollower::check_continuity() {
  if (need_resync_) co_return co_await resync();
  if (last_id_ == kStart) co_return true;
  // Trimming removes the oldest entries first: when the oldest one left is not newer than the
  // last one seen, every entry after it is still there. Otherwise some may be gone (a stream
  // trimmed past it, or a server that lost its data), and only a full reload is safe.
  const auto reply =
      co_await connection_->execute(make_command("XRANGE", key_, "-", "+", "COUNT", "1"));
  if (!reply.ok()) co_return false;
  const auto first = single_entry_id(reply.value);
  if (!first) co_return false;
  if (first->empty() || compare_stream_ids(*first, last_id_) > 0) {
    need_resync_ = true;
    co_return co_await resync();
  }
  co_return true;
}

asio::awaitable<bool> StreamFollower::resync() {
  following_ = false;
  // The stream's end before the reload: what is added during it is delivered afterwards.
  const auto reply =
      co_await connection_->execute(make_command("XREVRANGE", key_, "+", "-", "COUNT", "1"));
  if (!reply.ok()) co_return false;
  const auto last = single_entry_id(reply.value);
  if (!last) co_return false;
  last_id_ = last->empty() ? std::string(kStart) : *last;
  ++resyncs_;
  if (handlers_.on_resync && !co_await handlers_.on_resync()) co_return false;
  need_resync_ = false;
  co_return true;
}

}  // namespace portcullis::redis
