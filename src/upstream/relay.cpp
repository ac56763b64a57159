// The response side of forwarding: reading the upstream's response head, then relaying the
// response to the client with the response filters applied, re-framed when the two sides differ.

#include <algorithm>
#include <cstring>

#include "portcullis/http/headers.hpp"
#include "portcullis/upstream/forwarder.hpp"

namespace portcullis::upstream {
namespace {

using core::Reason;
using http::BodyFraming;

}  // namespace

// Reads the upstream's response head into the io buffer (interim 1xx responses are skipped).
asio::awaitable<bool> Forwarder::read_response_head(Failure& failure) {
  const config::Upstream& settings = *up_.upstream.settings;
  ex_.response_parser.reset();
  ex_.response.clear();
  client_.io_size = 0;
  client_.deadline.set(io::Phase::upstream_io, settings.response_timeout);
  const bool head_request = ex_.head.method == "HEAD";
  for (;;) {
    const auto parsed = ex_.response_parser.parse(std::string_view(buffer(), client_.io_size),
                                                  head_request, ex_.response);
    if (parsed.state == http::ParseState::error) {
      failure = {502, Reason::upstream_bad_response};
      co_return false;
    }
    if (parsed.state == http::ParseState::complete) {
      if (ex_.response.status >= 100 && ex_.response.status < 200) {
        if (ex_.response.status == 101) {  // Upgrade is never forwarded, so 101 is a protocol error
          failure = {502, Reason::upstream_bad_response};
          co_return false;
        }
        std::memmove(buffer(), buffer() + parsed.head_bytes, client_.io_size - parsed.head_bytes);
        client_.io_size -= parsed.head_bytes;
        ex_.response_parser.reset();
        ex_.response.clear();
        continue;
      }
      ex_.response_head_bytes = parsed.head_bytes;
      ex_.record.upstream_seconds =
          std::chrono::duration<double>(io::Clock::now() - ex_.record.upstream_sent).count();
      co_return true;
    }
    if (client_.io_size == kIoBufferBytes) {
      failure = {502, Reason::upstream_bad_response};
      co_return false;
    }
    error_code ec;
    const auto n = co_await up_.connection->read_some(
        std::span(buffer() + client_.io_size, kIoBufferBytes - client_.io_size), ec);
    if (ec) {
      failure = client_.deadline.expired == io::Phase::upstream_io
                    ? Failure{504, Reason::upstream_timeout}
                    : Failure{502, Reason::upstream_reset};
      co_return false;
    }
    client_.io_size += n;
  }
}

// Sends the response head and streams the upstream's body to the client; returns whether the
// client connection stays open for another request.
asio::awaitable<bool> Forwarder::relay_response(const EndpointRuntime& endpoint) {
  const config::Policy& policy = client_.policy;
  const config::Upstream& settings = *up_.upstream.settings;
  const bool head_request = ex_.head.method == "HEAD";
  const bool client_http10 = ex_.head.version_minor == 0;
  bool close = !ex_.head.keep_alive || client_.draining.load(std::memory_order_relaxed);

  if (ex_.response.status >= 500 && policy.errors.mask_upstream_5xx) {
    // The upstream's error page may leak internals: answer with our own body instead.
    up_.connection->close();
    up_.connection.reset();
    const auto retry_after = http::find_header(ex_.response.headers, "Retry-After").value_or("");
    const filters::ExtraHeader extra{"Retry-After", retry_after};
    co_await send_local(ex_.response.status, Reason::upstream_5xx_masked, close,
                        std::span(&extra, retry_after.empty() ? 0 : 1));
    co_return !close;
  }

  BodyFraming framing = BodyFraming::none;
  std::uint64_t content_length = 0;
  switch (ex_.response.framing) {
    case BodyFraming::content_length:
      framing = BodyFraming::content_length;
      content_length = ex_.response.content_length;
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
        const auto length = http::find_header(ex_.response.headers, "Content-Length").value_or("");
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
  ex_.record.status = ex_.response.status;
  ex_.out.clear();
  filters::build_client_response({policy, ex_.request_id, head_request, close}, ex_.response,
                                 framing, content_length, ex_.out);

  std::string_view body(buffer() + ex_.response_head_bytes,
                        client_.io_size - ex_.response_head_bytes);
  bool upstream_reusable = ex_.response.keep_alive;
  const bool chunk_to_client = framing == BodyFraming::chunked;

  if (head_request || ex_.response.framing == BodyFraming::none) {
    const std::string_view piece = ex_.out;
    if (co_await write_client(std::span(&piece, 1))) co_return false;
    upstream_reusable = upstream_reusable && body.empty();
  } else if (ex_.response.framing == BodyFraming::content_length) {
    const auto first = body.substr(0, std::min<std::uint64_t>(body.size(), content_length));
    upstream_reusable = upstream_reusable && first.size() == body.size();
    const std::string_view pieces[] = {ex_.out, first};
    if (co_await write_client(pieces)) co_return false;
    const std::uint64_t remaining = content_length - first.size();
    if (remaining > 0 && !co_await relay_response_body(remaining)) co_return false;
  } else if (!co_await relay_reframed_body(body, chunk_to_client, upstream_reusable)) {
    co_return false;
  }

  if (upstream_reusable && up_.connection) {
    up_.pools.pool(endpoint.id)
        .give_back(std::move(up_.connection), settings.max_idle_per_endpoint, io::coarse_now());
  } else if (up_.connection) {
    up_.connection->close();
    up_.connection.reset();
  }
  co_return !close;
}

// The rest of a Content-Length response body, from the upstream to the client through the io
// buffer. False when either side failed: the client then sees a truncated body and a closed
// connection.
asio::awaitable<bool> Forwarder::relay_response_body(std::uint64_t remaining) {
  const config::Upstream& settings = *up_.upstream.settings;
  while (remaining > 0) {
    client_.deadline.set(io::Phase::upstream_io, settings.response_timeout);
    error_code ec;
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kIoBufferBytes));
    const auto n = co_await up_.connection->read_some(std::span(buffer(), want), ec);
    if (ec) co_return false;
    const std::string_view piece(buffer(), n);
    if (co_await write_client(std::span(&piece, 1))) co_return false;
    remaining -= n;
  }
  co_return true;
}

// A chunked or until-close response: the head (in ex_.out) and the body decoded and re-framed
// towards the client, chunked when `chunk_to_client`, else ended by closing. `body` is what
// arrived with the head. Clears `upstream_reusable` when the upstream connection cannot carry
// another request.
asio::awaitable<bool> Forwarder::relay_reframed_body(std::string_view body, bool chunk_to_client,
                                                     bool& upstream_reusable) {
  const config::Upstream& settings = *up_.upstream.settings;
  const bool upstream_chunked = ex_.response.framing == BodyFraming::chunked;
  ex_.chunked.reset();
  std::string_view input = body;
  bool head_written = false;
  for (;;) {
    std::string_view data;
    bool done = false;
    if (upstream_chunked) {
      const auto step = ex_.chunked.step(input);
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
          head_written ? std::string_view() : std::string_view(ex_.out),
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
      client_.deadline.set(io::Phase::upstream_io, settings.response_timeout);
      error_code ec;
      const auto n = co_await up_.connection->read_some(std::span(buffer(), kIoBufferBytes), ec);
      if (ec) {
        if (!upstream_chunked && ec == asio::error::eof) {
          upstream_reusable = false;
          break;  // until_close: the close is the end of the body
        }
        co_return false;
      }
      input = std::string_view(buffer(), n);
    }
  }
  if (chunk_to_client) {
    const std::string_view last = "0\r\n\r\n";
    if (co_await write_client(std::span(&last, 1))) co_return false;
  }
  co_return true;
}

asio::awaitable<error_code> Forwarder::write_upstream(std::span<const std::string_view> pieces) {
  client_.deadline.set(io::Phase::upstream_io, up_.upstream.settings->response_timeout);
  return up_.connection->write_all(pieces);
}

}  // namespace portcullis::upstream
