// Request bodies read whole for validation (streaming one to the upstream is the forwarder's).

#include "connection.hpp"

namespace portcullis::net {

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
  std::string_view input(in_.get() + head_bytes, in_size_ - head_bytes);
  bool from_in = true;
  const auto read_more = [&]() -> asio::awaitable<int> {
    ensure_io_buffer();
    set_deadline(Phase::body, limits.body_timeout);
    error_code ec;
    const auto n = co_await client_.read_some(std::span(io_.get(), kIoBufferBytes), ec);
    if (ec) {
      reason = Reason::body_timeout;
      co_return deadline_.expired == Phase::body ? 408 : -1;
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

}  // namespace portcullis::net
