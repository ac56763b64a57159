#pragma once
// The upstream module forwards a request the connection loop has admitted: endpoint choice
// (round robin over healthy endpoints, panic mode when none is), connect or a pooled connection,
// retries, sending the head and streaming the body, reading the response head and relaying the
// response back with the response filters applied, and the passive health verdicts on the way.
// The connection loop builds a Forwarder per request and passes in explicitly what it needs of
// the client side (ClientSide) and of the upstream side (UpstreamSide); nothing here knows the
// connection itself.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "portcullis/upstream/client_side.hpp"
#include "portcullis/upstream/pool.hpp"
#include "portcullis/upstream/runtime.hpp"

namespace portcullis::upstream {

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
  void ensure_io_buffer() { client_.ensure_io_buffer(); }
  char* buffer() { return client_.io_buffer.get(); }

  // The upstream connection broke while the request was being sent.
  static constexpr Failure kUpstreamWriteFailed{502, core::Reason::upstream_reset};

  ClientSide client_;
  UpstreamSide up_;
  Exchange& ex_ = client_.ex;
};

}  // namespace portcullis::upstream
