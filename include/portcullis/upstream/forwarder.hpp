#pragma once
// The upstream module forwards a request the connection loop has admitted: endpoint choice
// (round robin over healthy endpoints, panic mode when none is), connect or a pooled connection,
// retries, sending the head and streaming the body, reading the response head and relaying the
// response back with the response filters applied, and the passive health verdicts on the way.
// The connection loop builds a Forwarder per request and passes in explicitly what it needs of
// the client side (ClientSide) and of the upstream side (UpstreamSide); nothing here knows the
// connection itself.

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
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
#include "portcullis/upstream/pool.hpp"
#include "portcullis/upstream/runtime.hpp"

namespace portcullis::upstream {

namespace asio = boost::asio;
using io::error_code;

constexpr std::size_t kIoBufferBytes = 32 * 1024;  // body streaming and upstream response heads
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// The request in progress: its RequestCtx (what the phases see), the body reading state the
// connection loop hands over, and the working state of the exchange with the upstream. The
// connection pools these per thread, so an idle keep-alive connection holds none of them.
struct Exchange : filters::RequestCtx {
  // ---- filled by the connection loop ----
  std::size_t head_bytes = 0;    // the request head's size in the input
  std::uint64_t body_limit = 0;  // the route's body limit (validate.max_body_bytes or server's)
  std::string body;              // a body read whole for validation
  bool body_buffered = false;
  std::size_t body_consumed = 0;  // input bytes that body took (after the head)
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
  asio::awaitable<error_code> write(std::span<const std::string_view> pieces) const;
};

// Answers the client with a local reply (the standard error body unless `body` is given) and
// records its status and reason; returns whether it was written. The connection's close is the
// caller's: `close` only says what the reply's Connection header announces.
asio::awaitable<bool> send_local(ClientSide client, int status, core::Reason reason, bool close,
                                 std::span<const filters::ExtraHeader> extra = {},
                                 std::string_view body = {});

// The upstream half: where the request goes, and this worker's connections there.
struct UpstreamSide {
  asio::io_context& io;  // the worker's: new connections are made on it
  WorkerPools& pools;
  const UpstreamRuntime& upstream;
  std::size_t upstream_index;                     // in the runtime: its round-robin position
  const std::vector<std::string>& claim_headers;  // forward_claims headers: gateway-owned
  std::unique_ptr<io::Stream>& connection;  // the one in use; the connection's watchdog cancels it
};

// How a forwarded request ended, for the connection loop.
enum class Outcome : std::uint8_t {
  keep_alive,  // answered; the connection carries on with the next request
  close,       // answered as far as could be (or the client went away): close the connection
  respond,     // not forwarded: ex.reply holds the local reply the connection must send
};

class Forwarder {
 public:
  Forwarder(ClientSide client, UpstreamSide upstream) : client_(client), up_(upstream) {}

  asio::awaitable<Outcome> forward();

 private:
  // Outcome of one attempt, before the response reaches the client.
  struct Failure {
    int status = 0;
    core::Reason reason = core::Reason::none;
  };

  const EndpointRuntime* pick_endpoint(const EndpointRuntime* avoid, bool& panic);
  asio::awaitable<std::unique_ptr<io::Stream>> connect(const EndpointRuntime& endpoint,
                                                       Failure& failure);
  asio::awaitable<bool> send_request(bool dechunked, Failure& failure, bool& client_broken);
  asio::awaitable<std::size_t> read_request_body(std::size_t want, bool& client_broken);
  asio::awaitable<bool> stream_request_body(std::uint64_t remaining, Failure& failure,
                                            bool& client_broken);
  asio::awaitable<bool> stream_chunked_request(std::string_view buffered, std::size_t& consumed,
                                               Failure& failure, bool& client_broken);
  asio::awaitable<bool> read_response_head(Failure& failure);
  asio::awaitable<bool> relay_response(const EndpointRuntime& endpoint);
  asio::awaitable<bool> relay_response_body(std::uint64_t remaining);
  asio::awaitable<bool> relay_reframed_body(std::string_view body, bool chunk_to_client,
                                            bool& upstream_reusable);
  asio::awaitable<error_code> write_client(std::span<const std::string_view> pieces) {
    return client_.write(pieces);
  }
  asio::awaitable<error_code> write_upstream(std::span<const std::string_view> pieces);
  asio::awaitable<bool> send_local(int status, core::Reason reason, bool close,
                                   std::span<const filters::ExtraHeader> extra = {}) {
    return upstream::send_local(client_, status, reason, close, extra);
  }
  void ensure_io_buffer() {
    if (!client_.io_buffer) client_.io_buffer = client_.buffers.take(kIoBufferBytes);
  }
  char* buffer() { return client_.io_buffer.get(); }

  // The upstream connection broke while the request was being sent.
  static constexpr Failure kUpstreamWriteFailed{502, core::Reason::upstream_reset};

  ClientSide client_;
  UpstreamSide up_;
  Exchange& ex_ = client_.ex;
};

}  // namespace portcullis::upstream
