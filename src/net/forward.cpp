// The upstream exchange: endpoint choice, connect, retries, sending the request and relaying
// the response back with the response filters applied.

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "connection.hpp"

namespace portcullis::net {

// ---- forwarding -------------------------------------------------------------------------------

// The next healthy endpoint other than `avoid`, round robin. When every one is held down, one
// is tried anyway (panic mode, `panic` set): better a request that may fail than refusing
// everybody because of a judgement that may be stale.
const EndpointRuntime* ClientConnection::pick_endpoint(const UpstreamRuntime& upstream,
                                                       std::size_t index,
                                                       const EndpointRuntime* avoid, bool& panic) {
  const std::size_t count = upstream.endpoints.size();
  const std::size_t start = worker_.next_round_robin(index);
  const auto now = coarse_now();
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

asio::awaitable<std::unique_ptr<Stream>> ClientConnection::connect(const UpstreamRuntime& upstream,
                                                                   const EndpointRuntime& endpoint,
                                                                   Failure& failure) {
  const config::Upstream& settings = *upstream.settings;
  upstream_ = std::make_unique<Stream>(tcp::socket(worker_.io));
  set_deadline(Phase::upstream_connect, settings.connect_timeout);
  error_code ec;
  co_await upstream_->socket().async_connect(endpoint.resolved,
                                             asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) {
    upstream_->configure_socket();
    if (upstream.tls) {
      SSL* ssl = upstream.tls->new_ssl(endpoint.address.host);
      if (!ssl) {
        ec = asio::error::no_memory;
      } else {
        upstream_->attach_tls(ssl);
        ec = co_await upstream_->handshake();
      }
    }
  }
  if (ec) {
    const bool timed_out = expired_ == Phase::upstream_connect;
    failure = timed_out ? Failure{504, Reason::upstream_timeout}
                        : Failure{502, Reason::upstream_connect_failed};
    upstream_->close();
    upstream_.reset();
    co_return nullptr;
  }
  co_return std::move(upstream_);
}

asio::awaitable<bool> ClientConnection::forward(const Runtime& runtime, const config::Route& route,
                                                std::size_t head_bytes) {
  const config::Policy& policy = *runtime.policy;
  const UpstreamRuntime& upstream = runtime.upstreams[route.upstream_index];
  const config::Upstream& settings = *upstream.settings;
  const bool idempotent = is_idempotent(ex_->head.method);
  const bool has_body = ex_->head.framing != BodyFraming::none;

  // A chunked body already buffered whole is checked before anything goes upstream, and sent
  // with a Content-Length: malformed framing never reaches the upstream, and legacy upstreams
  // that mishandle chunked bodies receive a plain one.
  BodyFraming upstream_framing = ex_->head.framing;
  std::uint64_t upstream_length = ex_->head.content_length;
  ex_->dechunked.clear();
  if (ex_->body_buffered) {
    // Read and validated whole: sent as it was checked, with a Content-Length.
    upstream_framing = ex_->body.empty() ? BodyFraming::none : BodyFraming::content_length;
    upstream_length = ex_->body.size();
    if (!ex_->body.empty()) ex_->dechunked.emplace_back(ex_->body);
    ex_->dechunked_consumed = ex_->body_consumed;
  } else if (ex_->head.framing == BodyFraming::chunked) {
    http::ChunkedDecoder probe;
    std::string_view input(in_.get() + head_bytes, in_size_ - head_bytes);
    std::uint64_t payload = 0;
    for (;;) {
      const auto step = probe.step(input);
      input.remove_prefix(step.consumed);
      if (step.error != Reason::none || payload + step.data.size() > ex_->body_limit) {
        if (step.error != Reason::none) {
          ex_->reply.set(400, step.error);
        } else {
          ex_->reply.set(413, Reason::body_too_large);
        }
        ex_->reply.close = true;
        co_return co_await answer_locally();
      }
      payload += step.data.size();
      if (!step.data.empty()) ex_->dechunked.push_back(step.data);
      if (step.done) {
        upstream_framing = payload ? BodyFraming::content_length : BodyFraming::none;
        upstream_length = payload;
        ex_->dechunked_consumed = in_size_ - head_bytes - input.size();
        break;
      }
      if (input.empty()) {
        ex_->dechunked.clear();  // not all here yet: stream it
        break;
      }
    }
  }

  ex_->out.clear();
  const filters::UpstreamRequest request{
      ex_->head,         ex_->path,        peer_,           ex_->peer_is_trusted_proxy,
      ex_->request_id,   upstream_framing, upstream_length, runtime.claim_headers,
      ex_->claim_headers};
  filters::build_upstream_request(policy, request, ex_->out);
  const bool dechunked = ex_->body_buffered || (ex_->head.framing == BodyFraming::chunked &&
                                                upstream_framing != BodyFraming::chunked);

  std::size_t attempts_left = 1 + (idempotent ? settings.retries : 0);
  bool stale_retry_left = true;
  bool sent_continue = false;
  const EndpointRuntime* failed_endpoint = nullptr;
  Failure failure{503, Reason::no_healthy_upstream};
  bool panic = false;
  for (;;) {
    const EndpointRuntime* endpoint =
        pick_endpoint(upstream, route.upstream_index, failed_endpoint, panic);
    if (!endpoint) break;  // `failure` holds the last attempt's outcome, or 503
    ex_->record.upstream = endpoint->address.text;
    // A stale pooled connection is retried below for idempotent requests without a body, so
    // those may skip the liveness probe.
    upstream_ = worker_.pool(endpoint->id).take(coarse_now(), idempotent && !has_body);
    ex_->upstream_reused = static_cast<bool>(upstream_);
    if (!upstream_) {
      upstream_ = co_await connect(upstream, *endpoint, failure);
      if (!upstream_) {
        endpoint->health->mark_failure(coarse_now(), settings.health_check.interval,
                                       settings.health_check.max_failures);
        // Every endpoint was already held down and this one failed again: no healthy endpoint.
        if (panic) failure = {503, Reason::no_healthy_upstream};
        failed_endpoint = endpoint;
        if (--attempts_left > 0) continue;
        break;
      }
    }
    if (ex_->head.expect_continue && has_body && !sent_continue && !ex_->body_buffered &&
        in_size_ == head_bytes) {
      sent_continue = true;
      const std::string_view piece = kContinue;
      if (co_await write_client(std::span(&piece, 1))) co_return false;
    }
    bool client_broken = false;
    if (!co_await send_request(runtime, settings, head_bytes, dechunked, failure, client_broken)) {
      if (upstream_) upstream_->close();
      upstream_.reset();
      if (client_broken) co_return false;
      // Repeating the request is safe only when it is idempotent and nothing of it was lost
      // (no body was consumed from the client).
      const bool repeatable = idempotent && !has_body && failure.reason == Reason::upstream_reset;
      if (ex_->upstream_reused && repeatable && stale_retry_left) {
        // A pooled connection the upstream had already closed: not the endpoint's fault. Its
        // siblings are likely stale too (an upstream restart closes them all): start afresh.
        stale_retry_left = false;
        worker_.pool(endpoint->id).clear();
        continue;
      }
      if (failure.reason == Reason::upstream_reset) {
        endpoint->health->mark_failure(coarse_now(), settings.health_check.interval,
                                       settings.health_check.max_failures);
      }
      if (failure.reason == Reason::upstream_reset || failure.reason == Reason::upstream_timeout)
        failed_endpoint = endpoint;
      if (repeatable && --attempts_left > 0) continue;
      co_await send_local(failure.status, failure.reason, true);
      co_return false;
    }
    endpoint->health->mark_success();
    co_return co_await relay_response(runtime, settings, *endpoint);
  }
  // No upstream connection could be had; the request body (if any) was never read.
  ex_->reply.set(failure.status, failure.reason);
  co_return co_await answer_locally();
}

// Sends the head and streams the body, then reads the upstream's response head into io_.
// Returns false with `failure` set when the upstream failed, or `client_broken` when the client
// did (a local reply has then been sent if one could be).
asio::awaitable<bool> ClientConnection::send_request(const Runtime& runtime,
                                                     const config::Upstream& settings,
                                                     std::size_t head_bytes, bool dechunked,
                                                     Failure& failure, bool& client_broken) {
  ensure_io_buffer();
  const std::string_view buffered(in_.get() + head_bytes, in_size_ - head_bytes);
  std::size_t consumed = head_bytes;

  if (dechunked) {
    // The whole (validated) body was buffered: head and payload in one write.
    ex_->pieces.assign(1, std::string_view(ex_->out));
    ex_->pieces.insert(ex_->pieces.end(), ex_->dechunked.begin(), ex_->dechunked.end());
    if (co_await write_upstream(ex_->pieces, settings)) {
      failure = kUpstreamWriteFailed;
      co_return false;
    }
    consumed += ex_->dechunked_consumed;
  } else if (ex_->head.framing == BodyFraming::content_length) {
    const auto first =
        buffered.substr(0, std::min<std::uint64_t>(buffered.size(), ex_->head.content_length));
    const std::string_view pieces[] = {ex_->out, first};
    if (co_await write_upstream(pieces, settings)) {
      failure = kUpstreamWriteFailed;
      co_return false;
    }
    consumed += first.size();
    const std::uint64_t remaining = ex_->head.content_length - first.size();
    if (remaining > 0 &&
        !co_await stream_request_body(runtime, settings, remaining, failure, client_broken))
      co_return false;
  } else if (ex_->head.framing == BodyFraming::chunked) {
    const std::string_view head_piece = ex_->out;
    if (co_await write_upstream(std::span(&head_piece, 1), settings)) {
      failure = kUpstreamWriteFailed;
      co_return false;
    }
    if (!co_await stream_chunked_request(runtime, settings, buffered, consumed, failure,
                                         client_broken))
      co_return false;
  } else {
    const std::string_view head_piece = ex_->out;
    if (co_await write_upstream(std::span(&head_piece, 1), settings)) {
      failure = kUpstreamWriteFailed;
      co_return false;
    }
  }
  // The request is fully read; its bytes leave the input when the exchange ends.
  ex_->consume_after = consumed;
  std::uint64_t body_bytes = 0;
  if (dechunked) {
    for (const auto piece : ex_->dechunked)
      body_bytes += piece.size();
  } else if (ex_->head.framing == BodyFraming::content_length) {
    body_bytes = ex_->head.content_length;
  } else if (ex_->head.framing == BodyFraming::chunked) {
    body_bytes = ex_->chunked.payload_bytes();
  }
  ex_->record.bytes_in = head_bytes + body_bytes;
  ex_->record.upstream_sent = Clock::now();
  co_return co_await read_response_head(settings, failure);
}

// Reads the upstream's response head into io_ (interim 1xx responses are skipped).
asio::awaitable<bool> ClientConnection::read_response_head(const config::Upstream& settings,
                                                           Failure& failure) {
  ex_->response_parser.reset();
  ex_->response.clear();
  io_size_ = 0;
  set_deadline(Phase::upstream_io, settings.response_timeout);
  const bool head_request = ex_->head.method == "HEAD";
  for (;;) {
    const auto parsed = ex_->response_parser.parse(std::string_view(io_.get(), io_size_),
                                                   head_request, ex_->response);
    if (parsed.state == http::ParseState::error) {
      failure = {502, Reason::upstream_bad_response};
      co_return false;
    }
    if (parsed.state == http::ParseState::complete) {
      if (ex_->response.status >= 100 && ex_->response.status < 200) {
        if (ex_->response.status ==
            101) {  // Upgrade is never forwarded, so 101 is a protocol error
          failure = {502, Reason::upstream_bad_response};
          co_return false;
        }
        std::memmove(io_.get(), io_.get() + parsed.head_bytes, io_size_ - parsed.head_bytes);
        io_size_ -= parsed.head_bytes;
        ex_->response_parser.reset();
        ex_->response.clear();
        continue;
      }
      ex_->response_head_bytes = parsed.head_bytes;
      ex_->record.upstream_seconds =
          std::chrono::duration<double>(Clock::now() - ex_->record.upstream_sent).count();
      co_return true;
    }
    if (io_size_ == kIoBufferBytes) {
      failure = {502, Reason::upstream_bad_response};
      co_return false;
    }
    error_code ec;
    const auto n = co_await upstream_->read_some(
        std::span(io_.get() + io_size_, kIoBufferBytes - io_size_), ec);
    if (ec) {
      failure = expired_ == Phase::upstream_io ? Failure{504, Reason::upstream_timeout}
                                               : Failure{502, Reason::upstream_reset};
      co_return false;
    }
    io_size_ += n;
  }
}

// Sends the response head and streams the upstream's body to the client; returns whether the
// client connection stays open for another request.
asio::awaitable<bool> ClientConnection::relay_response(const Runtime& runtime,
                                                       const config::Upstream& settings,
                                                       const EndpointRuntime& endpoint) {
  const config::Policy& policy = *runtime.policy;
  const bool head_request = ex_->head.method == "HEAD";
  const bool client_http10 = ex_->head.version_minor == 0;
  bool close = !ex_->head.keep_alive || worker_.draining.load(std::memory_order_relaxed);

  if (ex_->response.status >= 500 && policy.errors.mask_upstream_5xx) {
    // The upstream's error page may leak internals: answer with our own body instead.
    upstream_->close();
    upstream_.reset();
    const auto retry_after = find_header(ex_->response.headers, "Retry-After");
    const filters::ExtraHeader extra{"Retry-After", retry_after};
    co_await send_local(ex_->response.status, Reason::upstream_5xx_masked, close,
                        std::span(&extra, retry_after.empty() ? 0 : 1));
    co_return !close;
  }

  BodyFraming framing = BodyFraming::none;
  std::uint64_t content_length = 0;
  switch (ex_->response.framing) {
    case BodyFraming::content_length:
      framing = BodyFraming::content_length;
      content_length = ex_->response.content_length;
      break;
    case BodyFraming::chunked:
    case BodyFraming::until_close:
      if (client_http10) {
        framing = BodyFraming::until_close;  // HTTP/1.0 has no chunked: end by closing
        close = true;
      } else {
        framing = BodyFraming::chunked;
      }
      break;
    case BodyFraming::none:
      if (head_request) {
        const auto length = find_header(ex_->response.headers, "Content-Length");
        std::uint64_t value = 0;
        if (!length.empty() &&
            std::all_of(length.begin(), length.end(),
                        [](char c) { return c >= '0' && c <= '9'; }) &&
            length.size() < 19) {
          for (const char c : length)
            value = value * 10 + static_cast<std::uint64_t>(c - '0');
          framing = BodyFraming::content_length;
          content_length = value;
        }
      }
      break;
  }
  ex_->record.status = ex_->response.status;
  ex_->out.clear();
  filters::build_client_response({policy, ex_->request_id, head_request, close}, ex_->response,
                                 framing, content_length, ex_->out);

  std::string_view body(io_.get() + ex_->response_head_bytes, io_size_ - ex_->response_head_bytes);
  bool upstream_reusable = ex_->response.keep_alive;
  const bool chunk_to_client = framing == BodyFraming::chunked;

  if (head_request || ex_->response.framing == BodyFraming::none) {
    const std::string_view piece = ex_->out;
    if (co_await write_client(std::span(&piece, 1))) co_return false;
    upstream_reusable = upstream_reusable && body.empty();
  } else if (ex_->response.framing == BodyFraming::content_length) {
    const auto first = body.substr(0, std::min<std::uint64_t>(body.size(), content_length));
    upstream_reusable = upstream_reusable && first.size() == body.size();
    const std::string_view pieces[] = {ex_->out, first};
    if (co_await write_client(pieces)) co_return false;
    const std::uint64_t remaining = content_length - first.size();
    if (remaining > 0 && !co_await relay_response_body(settings, remaining)) co_return false;
  } else if (!co_await relay_reframed_body(settings, body, chunk_to_client, upstream_reusable)) {
    co_return false;
  }

  if (upstream_reusable && upstream_) {
    worker_.pool(endpoint.id)
        .give_back(std::move(upstream_), settings.max_idle_per_endpoint, coarse_now());
  } else if (upstream_) {
    upstream_->close();
    upstream_.reset();
  }
  co_return !close;
}

// The rest of a Content-Length response body, from the upstream to the client through io_.
// False when either side failed: the client then sees a truncated body and a closed connection.
asio::awaitable<bool> ClientConnection::relay_response_body(const config::Upstream& settings,
                                                            std::uint64_t remaining) {
  while (remaining > 0) {
    set_deadline(Phase::upstream_io, settings.response_timeout);
    error_code ec;
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kIoBufferBytes));
    const auto n = co_await upstream_->read_some(std::span(io_.get(), want), ec);
    if (ec) co_return false;
    const std::string_view piece(io_.get(), n);
    if (co_await write_client(std::span(&piece, 1))) co_return false;
    remaining -= n;
  }
  co_return true;
}

// A chunked or until-close response: the head (in ex_->out) and the body decoded and re-framed
// towards the client, chunked when `chunk_to_client`, else ended by closing. `body` is what
// arrived with the head. Clears `upstream_reusable` when the upstream connection cannot carry
// another request.
asio::awaitable<bool> ClientConnection::relay_reframed_body(const config::Upstream& settings,
                                                            std::string_view body,
                                                            bool chunk_to_client,
                                                            bool& upstream_reusable) {
  const bool upstream_chunked = ex_->response.framing == BodyFraming::chunked;
  ex_->chunked.reset();
  std::string_view input = body;
  bool head_written = false;
  for (;;) {
    std::string_view data;
    bool done = false;
    if (upstream_chunked) {
      const auto step = ex_->chunked.step(input);
      input.remove_prefix(step.consumed);
      if (step.error != Reason::none) co_return false;
      data = step.data;
      done = step.done;
    } else {
      data = input;
      input = {};
    }
    if (!data.empty() || !head_written) {
      char size_line[24];
      std::size_t size_length = 0;
      if (chunk_to_client && !data.empty())
        size_length = http::format_chunk_size(data.size(), size_line);
      const std::string_view pieces[] = {
          head_written ? std::string_view() : std::string_view(ex_->out),
          std::string_view(size_line, size_length), data,
          chunk_to_client && !data.empty() ? "\r\n" : ""};
      head_written = true;
      if (co_await write_client(pieces)) co_return false;
    }
    if (done) {
      upstream_reusable = upstream_reusable && input.empty();
      break;
    }
    if (input.empty()) {
      set_deadline(Phase::upstream_io, settings.response_timeout);
      error_code ec;
      const auto n = co_await upstream_->read_some(std::span(io_.get(), kIoBufferBytes), ec);
      if (ec) {
        if (!upstream_chunked && ec == asio::error::eof) {
          upstream_reusable = false;
          break;  // until_close: the close is the end of the body
        }
        co_return false;
      }
      input = std::string_view(io_.get(), n);
    }
  }
  if (chunk_to_client) {
    const std::string_view last = "0\r\n\r\n";
    if (co_await write_client(std::span(&last, 1))) co_return false;
  }
  co_return true;
}

}  // namespace portcullis::net
