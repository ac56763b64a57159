// Request bodies: read whole for validation, or streamed to the upstream within their limit.

#include "connection.hpp"

namespace portcullis::net {

// Starts the whole body's deadline: twice body_timeout, plus a second per
// kBodyMinBytesPerSecond of what the body announces.
void ClientConnection::start_body_deadline(const config::Limits& limits,
                                           std::uint64_t announced_bytes) {
  const std::uint64_t bytes = std::min(announced_bytes, config::kMaxBodyBytes);
  const auto allowance = std::chrono::seconds(bytes / kBodyMinBytesPerSecond);
  ex_->body_deadline = coarse_now() + 2 * limits.body_timeout + allowance;
}

// Arms the deadline of the next body read: body_timeout (a stall), or less when the whole body's
// deadline comes first. False, with the body phase marked expired, once that has passed.
bool ClientConnection::set_body_read_deadline(const config::Limits& limits) {
  const auto now = coarse_now();
  if (now >= ex_->body_deadline) {
    phase_ = Phase::body;
    expired_ = Phase::body;
    return false;
  }
  const auto left = std::chrono::duration_cast<config::Duration>(ex_->body_deadline - now);
  set_deadline(Phase::body, std::min(limits.body_timeout, left));
  return true;
}

asio::awaitable<int> ClientConnection::read_body(std::size_t head_bytes, std::uint64_t limit,
                                                 Reason& reason) {
  const auto& limits = pinned_->runtime->policy->server.limits;
  const auto& head = ex_->head;
  ex_->body.clear();
  ex_->body_consumed = 0;
  if (head.expect_continue && in_size_ == head_bytes) {
    const std::string_view piece = kContinue;
    if (co_await write_client(std::span(&piece, 1))) co_return -1;
  }
  start_body_deadline(limits,
                      head.framing == BodyFraming::content_length ? head.content_length : limit);
  std::string_view input(in_.get() + head_bytes, in_size_ - head_bytes);
  bool from_in = true;
  const auto read_more = [&]() -> asio::awaitable<int> {
    ensure_io_buffer();
    if (!set_body_read_deadline(limits)) {
      reason = Reason::body_timeout;
      co_return 408;
    }
    error_code ec;
    const auto n = co_await client_.read_some(std::span(io_.get(), kIoBufferBytes), ec);
    if (ec) {
      reason = Reason::body_timeout;
      co_return expired_ == Phase::body ? 408 : -1;
    }
    input = std::string_view(io_.get(), n);
    from_in = false;
    co_return 0;
  };
  if (head.framing == BodyFraming::content_length) {
    // Memory grows with what arrives, not with what the head announces.
    ex_->body.reserve(
        static_cast<std::size_t>(std::min<std::uint64_t>(head.content_length, kBodyReserveBytes)));
    std::uint64_t remaining = head.content_length;
    while (remaining > 0) {
      if (input.empty()) {
        if (const int status = co_await read_more()) co_return status;
      }
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, input.size()));
      ex_->body.append(input.substr(0, take));
      if (from_in) ex_->body_consumed += take;
      input.remove_prefix(take);
      remaining -= take;
    }
    if (!from_in) ex_->pipelined_tail.assign(input);
    co_return 0;
  }
  http::ChunkedDecoder decoder;
  for (;;) {
    const auto step = decoder.step(input);
    input.remove_prefix(step.consumed);
    if (from_in) ex_->body_consumed += step.consumed;
    if (step.error != Reason::none) {
      reason = step.error;
      co_return 400;
    }
    if (ex_->body.size() + step.data.size() > limit) {
      reason = Reason::body_too_large;
      co_return 413;
    }
    ex_->body.append(step.data);
    if (step.done) {
      if (!from_in) ex_->pipelined_tail.assign(input);
      co_return 0;
    }
    if (input.empty()) {
      if (const int status = co_await read_more()) co_return status;
    }
  }
}

// The next piece of a request body (at most `want` bytes, into io_) under the body deadlines.
// 0 when the client failed, went silent or ran out of time (then answered 408, and the caller
// drops the upstream connection with the partial body); `client_broken` is then set.
asio::awaitable<std::size_t> ClientConnection::read_request_body(const Runtime& runtime,
                                                                 std::size_t want,
                                                                 bool& client_broken) {
  if (!set_body_read_deadline(runtime.policy->server.limits)) {
    client_broken = true;
    co_await send_local(408, Reason::body_timeout, true);
    co_return 0;
  }
  error_code ec;
  const auto n = co_await client_.read_some(std::span(io_.get(), want), ec);
  if (!ec) co_return n;
  client_broken = true;
  if (expired_ == Phase::body) co_await send_local(408, Reason::body_timeout, true);
  co_return 0;
}

// The rest of a Content-Length body, from the client to the upstream through io_.
asio::awaitable<bool> ClientConnection::stream_request_body(const Runtime& runtime,
                                                            const config::Upstream& settings,
                                                            std::uint64_t remaining,
                                                            Failure& failure, bool& client_broken) {
  start_body_deadline(runtime.policy->server.limits, ex_->head.content_length);
  while (remaining > 0) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kIoBufferBytes));
    const std::size_t n = co_await read_request_body(runtime, want, client_broken);
    if (n == 0) co_return false;
    const std::string_view piece(io_.get(), n);
    if (co_await write_upstream(std::span(&piece, 1), settings)) {
      failure = kUpstreamWriteFailed;
      co_return false;
    }
    remaining -= n;
  }
  co_return true;
}

// A chunked body the client is still sending: decoded, checked against the limits and
// re-chunked towards the upstream as it arrives. `buffered` is what arrived with the head; what
// of it the body used is added to `consumed`.
asio::awaitable<bool> ClientConnection::stream_chunked_request(
    const Runtime& runtime, const config::Upstream& settings, std::string_view buffered,
    std::size_t& consumed, Failure& failure, bool& client_broken) {
  start_body_deadline(runtime.policy->server.limits, ex_->body_limit);
  ex_->chunked.reset();
  std::string_view input = buffered;
  bool from_in = true;
  for (;;) {
    const auto step = ex_->chunked.step(input);
    input.remove_prefix(step.consumed);
    if (from_in) consumed += step.consumed;
    if (step.error != Reason::none) {
      client_broken = true;
      co_await send_local(400, step.error, true);
      co_return false;
    }
    if (ex_->chunked.payload_bytes() > ex_->body_limit) {
      client_broken = true;
      co_await send_local(413, Reason::body_too_large, true);
      co_return false;
    }
    if (!step.data.empty()) {
      char size_line[24];
      const auto size_length = http::format_chunk_size(step.data.size(), size_line);
      const std::string_view pieces[] = {std::string_view(size_line, size_length), step.data,
                                         "\r\n"};
      if (co_await write_upstream(pieces, settings)) {
        failure = kUpstreamWriteFailed;
        co_return false;
      }
    }
    if (step.done) {
      if (!from_in) ex_->pipelined_tail.assign(input);  // the next request's first bytes
      const std::string_view last = "0\r\n\r\n";
      if (co_await write_upstream(std::span(&last, 1), settings)) {
        failure = kUpstreamWriteFailed;
        co_return false;
      }
      break;
    }
    if (input.empty()) {
      const std::size_t n = co_await read_request_body(runtime, kIoBufferBytes, client_broken);
      if (n == 0) co_return false;
      input = std::string_view(io_.get(), n);
      from_in = false;
    }
  }
  co_return true;
}

}  // namespace portcullis::net
