// Forwarding one request: endpoint choice, connect (or a pooled connection), retries, sending
// the head and streaming the request body; relay.cpp reads and relays the response.

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "portcullis/filters/forward_headers.hpp"
#include "portcullis/upstream/forwarder.hpp"

namespace portcullis::upstream {
namespace {

using core::Reason;
using http::BodyFraming;

bool is_idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE";
}

}  // namespace

// The next healthy endpoint other than `avoid`, round robin. When every one is held down, one
// is tried anyway (panic mode, `panic` set): better a request that may fail than refusing
// everybody because of a judgement that may be stale.
const EndpointRuntime* Forwarder::pick_endpoint(const EndpointRuntime* avoid, bool& panic) {
  const UpstreamRuntime& upstream = up_.upstream;
  const std::size_t count = upstream.endpoints.size();
  const std::size_t start = up_.pools.next_round_robin(up_.upstream_index);
  const auto now = io::coarse_now();
  const EndpointRuntime* fallback = nullptr;
  for (std::size_t i = 0; i < count; ++i) {
    const EndpointRuntime& endpoint = upstream.endpoints[(start + i) % count];
    if (&endpoint == avoid) continue;
    if (endpoint.health->is_healthy(now)) {
      panic = false;
      return &endpoint;
    }
    if (!fallback) fallback = &endpoint;
  }
  panic = fallback != nullptr;
  return fallback;
}

asio::awaitable<std::unique_ptr<io::Stream>> Forwarder::connect(const EndpointRuntime& endpoint,
                                                                Failure& failure) {
  const UpstreamRuntime& upstream = up_.upstream;
  const config::Upstream& settings = *upstream.settings;
  up_.connection = std::make_unique<io::Stream>(io::tcp::socket(up_.io));
  client_.deadline.set(io::Phase::upstream_connect, settings.connect_timeout);
  error_code ec;
  co_await up_.connection->socket().async_connect(endpoint.resolved,
                                                  asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) {
    up_.connection->configure_socket();
    if (upstream.tls) {
      SSL* ssl = upstream.tls->new_ssl(endpoint.address.host);
      if (!ssl) {
        ec = asio::error::no_memory;
      } else {
        up_.connection->attach_tls(ssl);
        ec = co_await up_.connection->handshake();
      }
    }
  }
  if (ec) {
    const bool timed_out = client_.deadline.expired == io::Phase::upstream_connect;
    failure = timed_out ? Failure{504, Reason::upstream_timeout}
                        : Failure{502, Reason::upstream_connect_failed};
    up_.connection->close();
    up_.connection.reset();
    co_return nullptr;
  }
  co_return std::move(up_.connection);
}

asio::awaitable<Outcome> Forwarder::forward() {
  const config::Policy& policy = client_.policy;
  const config::Upstream& settings = *up_.upstream.settings;
  const std::size_t head_bytes = ex_.head_bytes;
  const bool idempotent = is_idempotent(ex_.head.method);
  const bool has_body = ex_.head.framing != BodyFraming::none;

  // A chunked body already buffered whole is checked before anything goes upstream, and sent
  // with a Content-Length: malformed framing never reaches the upstream, and legacy upstreams
  // that mishandle chunked bodies receive a plain one.
  BodyFraming upstream_framing = ex_.head.framing;
  std::uint64_t upstream_length = ex_.head.content_length;
  ex_.dechunked.clear();
  if (ex_.body_buffered) {
    // Read and validated whole: sent as it was checked, with a Content-Length.
    upstream_framing = ex_.body.empty() ? BodyFraming::none : BodyFraming::content_length;
    upstream_length = ex_.body.size();
    if (!ex_.body.empty()) ex_.dechunked.emplace_back(ex_.body);
    ex_.dechunked_consumed = ex_.body_consumed;
  } else if (ex_.head.framing == BodyFraming::chunked) {
    http::ChunkedDecoder probe;
    std::string_view input = client_.input.substr(head_bytes);
    std::uint64_t payload = 0;
    for (;;) {
      const auto step = probe.step(input);
      input.remove_prefix(step.consumed);
      if (step.error != Reason::none || payload + step.data.size() > ex_.body_limit) {
        if (step.error != Reason::none) {
          ex_.reply.set(400, step.error);
        } else {
          ex_.reply.set(413, Reason::body_too_large);
        }
        ex_.reply.close = true;
        co_return Outcome::respond;
      }
      payload += step.data.size();
      if (!step.data.empty()) ex_.dechunked.push_back(step.data);
      if (step.done) {
        upstream_framing = payload ? BodyFraming::content_length : BodyFraming::none;
        upstream_length = payload;
        ex_.dechunked_consumed = client_.input.size() - head_bytes - input.size();
        break;
      }
      if (input.empty()) {
        ex_.dechunked.clear();  // not all here yet: stream it
        break;
      }
    }
  }

  ex_.out.clear();
  const filters::UpstreamRequest request{
      ex_.head,         ex_.path,         ex_.peer,        ex_.peer_is_trusted_proxy,
      ex_.request_id,   upstream_framing, upstream_length, up_.claim_headers,
      ex_.claim_headers};
  filters::build_upstream_request(policy, request, ex_.out);
  const bool dechunked = ex_.body_buffered || (ex_.head.framing == BodyFraming::chunked &&
                                               upstream_framing != BodyFraming::chunked);

  std::size_t attempts_left = 1 + (idempotent ? settings.retries : 0);
  bool stale_retry_left = true;
  bool sent_continue = false;
  const EndpointRuntime* failed_endpoint = nullptr;
  Failure failure{503, Reason::no_healthy_upstream};
  bool panic = false;
  for (;;) {
    const EndpointRuntime* endpoint = pick_endpoint(failed_endpoint, panic);
    if (!endpoint) break;  // `failure` holds the last attempt's outcome, or 503
    ex_.record.upstream = endpoint->address.text;
    // A stale pooled connection is retried below for idempotent requests without a body, so
    // those may skip the liveness probe.
    up_.connection = up_.pools.pool(endpoint->id).take(io::coarse_now(), idempotent && !has_body);
    ex_.upstream_reused = static_cast<bool>(up_.connection);
    if (!up_.connection) {
      up_.connection = co_await connect(*endpoint, failure);
      if (!up_.connection) {
        endpoint->health->mark_failure(io::coarse_now(), settings.health_check.interval,
                                       settings.health_check.max_failures);
        // Every endpoint was already held down and this one failed again: no healthy endpoint.
        if (panic) failure = {503, Reason::no_healthy_upstream};
        failed_endpoint = endpoint;
        if (--attempts_left > 0) continue;
        break;
      }
    }
    if (ex_.head.expect_continue && has_body && !sent_continue && !ex_.body_buffered &&
        client_.input.size() == head_bytes) {
      sent_continue = true;
      const std::string_view piece = kContinue;
      if (co_await write_client(std::span(&piece, 1))) co_return Outcome::close;
    }
    bool client_broken = false;
    if (!co_await send_request(dechunked, failure, client_broken)) {
      if (up_.connection) up_.connection->close();
      up_.connection.reset();
      if (client_broken) co_return Outcome::close;
      // Repeating the request is safe only when it is idempotent and nothing of it was lost
      // (no body was consumed from the client).
      const bool repeatable = idempotent && !has_body && failure.reason == Reason::upstream_reset;
      if (ex_.upstream_reused && repeatable && stale_retry_left) {
        // A pooled connection the upstream had already closed: not the endpoint's fault. Its
        // siblings are likely stale too (an upstream restart closes them all): start afresh.
        stale_retry_left = false;
        up_.pools.pool(endpoint->id).clear();
        continue;
      }
      if (failure.reason == Reason::upstream_reset) {
        endpoint->health->mark_failure(io::coarse_now(), settings.health_check.interval,
                                       settings.health_check.max_failures);
      }
      if (failure.reason == Reason::upstream_reset || failure.reason == Reason::upstream_timeout)
        failed_endpoint = endpoint;
      if (repeatable && --attempts_left > 0) continue;
      co_await send_local(failure.status, failure.reason, true);
      co_return Outcome::close;
    }
    endpoint->health->mark_success();
    co_return co_await relay_response(*endpoint) ? Outcome::keep_alive : Outcome::close;
  }
  // No upstream connection could be had; the request body (if any) was never read.
  ex_.reply.set(failure.status, failure.reason);
  co_return Outcome::respond;
}

// Sends the head and streams the body, then reads the upstream's response head into the io buffer.
// Returns false with `failure` set when the upstream failed, or `client_broken` when the client
// did (a local reply has then been sent if one could be).
asio::awaitable<bool> Forwarder::send_request(bool dechunked, Failure& failure,
                                              bool& client_broken) {
  const std::size_t head_bytes = ex_.head_bytes;
  ensure_io_buffer();
  const std::string_view buffered = client_.input.substr(head_bytes);
  std::size_t consumed = head_bytes;

  if (dechunked) {
    // The whole (validated) body was buffered: head and payload in one write.
    ex_.pieces.assign(1, std::string_view(ex_.out));
    ex_.pieces.insert(ex_.pieces.end(), ex_.dechunked.begin(), ex_.dechunked.end());
    if (co_await write_upstream(ex_.pieces)) {
      failure = kUpstreamWriteFailed;
      co_return false;
    }
    consumed += ex_.dechunked_consumed;
  } else if (ex_.head.framing == BodyFraming::content_length) {
    const auto first =
        buffered.substr(0, std::min<std::uint64_t>(buffered.size(), ex_.head.content_length));
    const std::string_view pieces[] = {ex_.out, first};
    if (co_await write_upstream(pieces)) {
      failure = kUpstreamWriteFailed;
      co_return false;
    }
    consumed += first.size();
    const std::uint64_t remaining = ex_.head.content_length - first.size();
    if (remaining > 0 && !co_await stream_request_body(remaining, failure, client_broken))
      co_return false;
  } else if (ex_.head.framing == BodyFraming::chunked) {
    const std::string_view head_piece = ex_.out;
    if (co_await write_upstream(std::span(&head_piece, 1))) {
      failure = kUpstreamWriteFailed;
      co_return false;
    }
    if (!co_await stream_chunked_request(buffered, consumed, failure, client_broken))
      co_return false;
  } else {
    const std::string_view head_piece = ex_.out;
    if (co_await write_upstream(std::span(&head_piece, 1))) {
      failure = kUpstreamWriteFailed;
      co_return false;
    }
  }
  // The request is fully read; its bytes leave the input when the exchange ends.
  ex_.consume_after = consumed;
  std::uint64_t body_bytes = 0;
  if (dechunked) {
    for (const auto piece : ex_.dechunked)
      body_bytes += piece.size();
  } else if (ex_.head.framing == BodyFraming::content_length) {
    body_bytes = ex_.head.content_length;
  } else if (ex_.head.framing == BodyFraming::chunked) {
    body_bytes = ex_.chunked.payload_bytes();
  }
  ex_.record.bytes_in = head_bytes + body_bytes;
  ex_.record.upstream_sent = io::Clock::now();
  co_return co_await read_response_head(failure);
}

// ---- the request body --------------------------------------------------------------------------

// The next piece of a request body (at most `want` bytes, into the io buffer) under the body
// deadlines. 0 when the client failed, went silent or ran out of time (then answered 408, and the
// caller drops the upstream connection with the partial body); `client_broken` is then set.
asio::awaitable<std::size_t> Forwarder::read_request_body(std::size_t want, bool& client_broken) {
  if (!set_body_read_deadline(client_)) {
    client_broken = true;
    co_await send_local(408, Reason::body_timeout, true);
    co_return 0;
  }
  error_code ec;
  const auto n = co_await client_.stream.read_some(std::span(buffer(), want), ec);
  if (!ec) co_return n;
  client_broken = true;
  if (client_.deadline.expired == io::Phase::body)
    co_await send_local(408, Reason::body_timeout, true);
  co_return 0;
}

// The rest of a Content-Length body, from the client to the upstream through the io buffer.
asio::awaitable<bool> Forwarder::stream_request_body(std::uint64_t remaining, Failure& failure,
                                                     bool& client_broken) {
  start_body_deadline(client_, ex_.head.content_length);
  while (remaining > 0) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kIoBufferBytes));
    const std::size_t n = co_await read_request_body(want, client_broken);
    if (n == 0) co_return false;
    const std::string_view piece(buffer(), n);
    if (co_await write_upstream(std::span(&piece, 1))) {
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
asio::awaitable<bool> Forwarder::stream_chunked_request(std::string_view buffered,
                                                        std::size_t& consumed, Failure& failure,
                                                        bool& client_broken) {
  start_body_deadline(client_, ex_.body_limit);
  ex_.chunked.reset();
  std::string_view input = buffered;
  bool from_in = true;
  for (;;) {
    const auto step = ex_.chunked.step(input);
    input.remove_prefix(step.consumed);
    if (from_in) consumed += step.consumed;
    if (step.error != Reason::none) {
      client_broken = true;
      co_await send_local(400, step.error, true);
      co_return false;
    }
    if (ex_.chunked.payload_bytes() > ex_.body_limit) {
      client_broken = true;
      co_await send_local(413, Reason::body_too_large, true);
      co_return false;
    }
    if (!step.data.empty()) {
      char size_line[24];
      const auto size_length = http::format_chunk_size(step.data.size(), size_line);
      const std::string_view pieces[] = {std::string_view(size_line, size_length), step.data,
                                         "\r\n"};
      if (co_await write_upstream(pieces)) {
        failure = kUpstreamWriteFailed;
        co_return false;
      }
    }
    if (step.done) {
      if (!from_in) ex_.pipelined_tail.assign(input);  // the next request's first bytes
      const std::string_view last = "0\r\n\r\n";
      if (co_await write_upstream(std::span(&last, 1))) {
        failure = kUpstreamWriteFailed;
        co_return false;
      }
      break;
    }
    if (input.empty()) {
      const std::size_t n = co_await read_request_body(kIoBufferBytes, client_broken);
      if (n == 0) co_return false;
      input = std::string_view(buffer(), n);
      from_in = false;
    }
  }
  co_return true;
}

}  // namespace portcullis::upstream
