// Request bodies read whole, for validation or for the admin API (streaming one to the upstream
// is the forwarder's).

#include "portcullis/upstream/client_side.hpp"

namespace portcullis::upstream {
namespace {

using core::Reason;
using http::BodyFraming;

}  // namespace

void start_body_deadline(const ClientSide& client, std::uint64_t announced_bytes) {
  const std::uint64_t bytes = std::min(announced_bytes, config::kMaxBodyBytes);
  const auto allowance = std::chrono::seconds(bytes / kBodyMinBytesPerSecond);
  client.ex.body_deadline =
      io::coarse_now() + 2 * client.policy.server.limits.body_timeout + allowance;
}

bool set_body_read_deadline(const ClientSide& client) {
  const auto now = io::coarse_now();
  if (now >= client.ex.body_deadline) {
    client.deadline.phase = io::Phase::body;
    client.deadline.expired = io::Phase::body;
    return false;
  }
  const auto left = std::chrono::duration_cast<config::Duration>(client.ex.body_deadline - now);
  client.deadline.set(io::Phase::body, std::min(client.policy.server.limits.body_timeout, left));
  return true;
}

asio::awaitable<int> read_body(ClientSide client, std::uint64_t limit, Reason& reason) {
  Exchange& ex = client.ex;
  const std::size_t head_bytes = ex.head_bytes;
  const auto& head = ex.head;
  ex.body.clear();
  ex.body_consumed = 0;
  if (head.expect_continue && client.input.size() == head_bytes) {
    const std::string_view piece = kContinue;
    if (co_await client.write(std::span(&piece, 1))) co_return -1;
  }
  start_body_deadline(client,
                      head.framing == BodyFraming::content_length ? head.content_length : limit);
  std::string_view input = client.input.substr(head_bytes);
  bool from_in = true;
  const auto read_more = [&]() -> asio::awaitable<int> {
    char* buffer = client.ensure_io_buffer();
    if (!set_body_read_deadline(client)) {
      reason = Reason::body_timeout;
      co_return 408;
    }
    error_code ec;
    const auto n = co_await client.stream.read_some(std::span(buffer, kIoBufferBytes), ec);
    if (ec) {
      reason = Reason::body_timeout;
      co_return client.deadline.expired == io::Phase::body ? 408 : -1;
    }
    input = std::string_view(buffer, n);
    from_in = false;
    co_return 0;
  };
  if (head.framing == BodyFraming::content_length) {
    // Memory grows with what arrives, not with what the head announces.
    ex.body.reserve(
        static_cast<std::size_t>(std::min<std::uint64_t>(head.content_length, kBodyReserveBytes)));
    std::uint64_t remaining = head.content_length;
    while (remaining > 0) {
      if (input.empty()) {
        if (const int status = co_await read_more()) co_return status;
      }
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, input.size()));
      ex.body.append(input.substr(0, take));
      if (from_in) ex.body_consumed += take;
      input.remove_prefix(take);
      remaining -= take;
    }
    if (!from_in) ex.pipelined_tail.assign(input);
    co_return 0;
  }
  http::ChunkedDecoder decoder;
  for (;;) {
    const auto step = decoder.step(input);
    input.remove_prefix(step.consumed);
    if (from_in) ex.body_consumed += step.consumed;
    if (step.error != Reason::none) {
      reason = step.error;
      co_return 400;
    }
    if (ex.body.size() + step.data.size() > limit) {
      reason = Reason::body_too_large;
      co_return 413;
    }
    ex.body.append(step.data);
    if (step.done) {
      if (!from_in) ex.pipelined_tail.assign(input);
      co_return 0;
    }
    if (input.empty()) {
      if (const int status = co_await read_more()) co_return status;
    }
  }
}

}  // namespace portcullis::upstream
