#pragma once
// The client half of a request, as the connection loop hands it to the forwarder and to the admin
// listener: the client stream and the connection's deadline, the request exchange (RequestCtx,
// body reading state, the upstream exchange's working state), what has been read so far and the
// io buffer. The functions here are the only ones that answer a client or read a request body,
// for every listener.

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "portcullis/config/policy.hpp"
#include "portcullis/core/reason.hpp"
#include "portcullis/filters/request_ctx.hpp"
#include "portcullis/filters/request_id.hpp"
#include "portcullis/filters/response_headers.hpp"
#include "portcullis/http/chunked.hpp"
#include "portcullis/http/response_parser.hpp"
#include "portcullis/io/buffer_pool.hpp"
#include "portcullis/io/deadline.hpp"
#include "portcullis/io/stream.hpp"

namespace portcullis::upstream {

namespace asio = boost::asio;
using io::error_code;

constexpr std::size_t kIoBufferBytes = 32 * 1024;  // body streaming and upstream response heads
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// At most this much of a body is reserved ahead of its arrival, and a pooled exchange keeps at
// most this much body capacity between requests.
constexpr std::size_t kBodyReserveBytes = 64 * 1024;
// A whole request body must arrive within twice body_timeout plus one second per this many
// bytes it announces (a chunked body: the route's body limit). body_timeout alone bounds only
// the pauses, so a body trickled just faster than that would otherwise hold its connection (and
// an upstream connection) for as long as its length lasts.
constexpr std::uint64_t kBodyMinBytesPerSecond = 16 * 1024;

// The request in progress: its RequestCtx (what the phases see), the body reading state the
// connection loop hands over, and the working state of the exchange with the upstream. The
// connection pools these per thread, so an idle keep-alive connection holds none of them.
struct Exchange : filters::RequestCtx {
  // ---- filled by the connection loop ----
  std::size_t head_bytes = 0;    // the request head's size in the input
  std::uint64_t body_limit = 0;  // the route's body limit (validate.max_body_bytes or server's)
  std::string body;              // a body read whole for validation
  bool body_buffered = false;
  std::size_t body_consumed = 0;        // input bytes that body took (after the head)
  io::Clock::time_point body_deadline;  // the whole body's deadline, once its reading started
  // ---- filled by both ----
  std::size_t consume_after = 0;  // input bytes the current request used; dropped at its end
  std::string pipelined_tail;     // bytes of the next request read while reading this one's body
  std::string out;                // the head (or local reply) being written
  // ---- the upstream exchange ----
  http::ResponseParser response_parser{kIoBufferBytes};
  http::ResponseHead response;
  http::ChunkedDecoder chunked;
  bool upstream_reused = false;
  std::size_t response_head_bytes = 0;
  std::vector<std::string_view> dechunked;  // a whole buffered chunked body, decoded
  std::size_t dechunked_consumed = 0;       // its encoded size in the input
  std::vector<std::string_view> pieces;
};

// The client half of a request, borrowed from its connection for one call.
struct ClientSide {
  io::Stream& stream;
  io::Deadline& deadline;  // the connection's one deadline: its watchdog cancels both streams
  const config::Policy& policy;
  Exchange& ex;
  filters::RequestIdGenerator& request_ids;
  const std::atomic<bool>& draining;
  std::string_view input;  // what the connection has read: the head (ex.head_bytes), then more
  // The buffer for body streaming and the response (kIoBufferBytes), taken when first needed.
  io::BufferPool& buffers;
  std::unique_ptr<char[]>& io_buffer;
  std::size_t& io_size;

  // Writes to the client under the client-write deadline, counting the bytes for the access
  // log. Not a coroutine: hands back the stream's awaitable, which saves a frame per write.
  // `pieces` must outlive the co_await (the caller awaits at once).
  asio::awaitable<error_code> write(std::span<const std::string_view> pieces) const {
    deadline.set(io::Phase::client_write, policy.server.limits.body_timeout);
    for (const auto piece : pieces)
      ex.record.bytes_out += piece.size();
    return stream.write_all(pieces);
  }

  // The io buffer, taken from `buffers` on first use (given back when the connection idles).
  char* ensure_io_buffer() const {
    if (!io_buffer) io_buffer = buffers.take(kIoBufferBytes);
    return io_buffer.get();
  }
};

// Answers the client with a local reply (the standard error body unless `body` is given) and
// records its status and reason; returns whether it was written. The connection's close is the
// caller's: `close` only says what the reply's Connection header announces.
asio::awaitable<bool> send_local(ClientSide client, int status, core::Reason reason, bool close,
                                 std::span<const filters::ExtraHeader> extra = {},
                                 std::string_view body = {});

// Starts the whole body's deadline (see kBodyMinBytesPerSecond) for a body announcing
// `announced_bytes`.
void start_body_deadline(const ClientSide& client, std::uint64_t announced_bytes);

// Arms the deadline of the next body read: body_timeout (a stall), or less when the whole body's
// deadline comes first. False, with the body phase marked expired, once that has passed.
bool set_body_read_deadline(const ClientSide& client);

// Reads the request body whole into client.ex.body (a chunked one decoded, within `limit`; a
// Content-Length one already checked against its limit), sending 100 Continue first when the
// client waits for it. Returns 0 when read, -1 when the client went away, or the status to
// answer (400, 408, 413) with `reason` set. Bytes of the next request read with it go to
// ex.pipelined_tail.
asio::awaitable<int> read_body(ClientSide client, std::uint64_t limit, core::Reason& reason);

}  // namespace portcullis::upstream
