#pragma once
// The io module owns the one concrete byte stream type, io::Stream, and the TLS contexts that
// make its SSL objects (tls_context.hpp). It sits below the client side (net), the upstream side
// (upstream) and the Redis and JWKS clients, which all hold their connections as an io::Stream.
//
// One byte stream type for every connection the gateway holds, client or upstream: a TCP socket,
// optionally with TLS. OpenSSL reads and writes the non-blocking socket directly (through small
// BIOs of ours), except for what the reactor received into a small staging buffer on a busy
// keep-alive connection (no readiness re-arm, the request comes with the wake-up) and output
// deliberately held to leave in one send (see hold_output). An idle TLS connection holds no
// record buffer, only what OpenSSL keeps (SSL_MODE_RELEASE_BUFFERS, and release_buffers() once a
// busy one goes idle). Every operation returns its error as a value; a cancelled socket (deadline
// reached) returns operation_aborted.

#include <openssl/ssl.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "portcullis/core/ip.hpp"

namespace portcullis::io {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

class Stream {
 public:
  explicit Stream(tcp::socket socket);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  tcp::socket& socket() { return socket_; }
  SSL* ssl() const { return ssl_; }
  bool is_tls() const { return ssl_ != nullptr; }
  bool is_open() const { return socket_.is_open(); }

  // Non-blocking mode and TCP_NODELAY; call after connecting a socket that was not yet open.
  void configure_socket();

  // Takes ownership of `ssl` and binds it to the socket. Call before handshake().
  void attach_tls(SSL* ssl);

  // Runs the TLS handshake (server or client side, as the SSL was set up).
  asio::awaitable<error_code> handshake();

  // Reads at least one byte (or fails; end of stream is asio::error::eof).
  asio::awaitable<std::size_t> read_some(std::span<char> buffer, error_code& ec);

  // Waits until the peer sent something (or closed). Returns immediately when TLS already holds
  // input. Without `stage`, OpenSSL's record buffers are given back while it waits, so an idle
  // TLS connection holds none. With `stage` (a busy connection expecting its next request
  // soon), TLS keeps its record buffers and receives into a small staging buffer instead of
  // waiting for readiness: no epoll re-arm, no buffers freed and allocated again, and a typical
  // request arrives in one receive. (Boost.Asio 1.81 also tries a receive as each wait starts;
  // right after a response that one finds nothing.) These buffers stay until release_buffers().
  asio::awaitable<error_code> wait_readable(bool stage = false);

  // Gives the staging buffer and OpenSSL's record buffers back (those that hold nothing), e.g.
  // before a long idle wait.
  void release_buffers();

  // Writes all of `data`.
  asio::awaitable<error_code> write_all(std::string_view data);

  // Writes the pieces in order; small pieces are coalesced into one TLS record / one syscall.
  asio::awaitable<error_code> write_all(std::span<const std::string_view> pieces);

  // True when the peer has closed or sent unexpected bytes: a pooled connection in that state
  // must not be reused. Never blocks.
  bool peer_closed_or_dirty();

  // TLS only: holds what OpenSSL writes (up to kHeldOutputLimit) until release_output(), the
  // next wait for the peer's input, or close(), and then sends it at once. A TLS 1.3 server
  // handshake holds its session ticket this way, so that a request sent with the handshake gets
  // ticket and response in one send (and, when the connection then closes, close_notify and FIN
  // in the same segment).
  void hold_output();
  // Stops holding and sends what is held, without waiting; a remainder the socket did not take
  // goes before the next write or wait.
  void release_output();

  // Cancels pending operations (used by deadlines).
  void cancel();

  // Sends close_notify when TLS (best effort, never waits) and closes the socket.
  void close();

 private:
  asio::awaitable<error_code> wait(tcp::socket::wait_type type);
  asio::awaitable<std::size_t> read_some_tls(std::span<char> buffer, error_code& ec);
  // wait_readable() when TLS input is buffered or output must be flushed first.
  asio::awaitable<error_code> flush_then_wait_readable(bool stage);
  // Before a TLS wait for input: OpenSSL's record buffers go, or, with `stage`, they stay and the
  // staging buffer comes.
  void prepare_input_wait(bool stage);
  // Every send of ours: what the socket takes at once of up to kMaxPlainPieces pieces, without
  // waiting; returns how many bytes that was (0 when the socket is full, or on an error, which
  // goes to `ec`). For plain TCP, write_all() waits for the rest.
  std::size_t send_now(std::span<const std::string_view> pieces, error_code& ec, int flags = 0);
  static constexpr std::size_t kMaxPlainPieces = 8;
  error_code tls_error(int ssl_error, int result);

  // TLS output: OpenSSL writes through a BIO (output_method) that sends, or holds into held_.
  static BIO_METHOD* output_method();
  int write_output(BIO* bio, const char* data, int length);
  // Sends held_ from held_sent_: true when all went (held_ is then freed); false when the socket
  // is full or, with `ec` set, on an error.
  bool send_held(int flags, error_code& ec);
  bool output_pending() const { return holding_ || !held_.empty(); }
  asio::awaitable<error_code> flush_output();

  // A session ticket and a typical response; small enough for any socket's send buffer.
  static constexpr std::size_t kHeldOutputLimit = 4096;

  // TLS input: OpenSSL reads through a BIO (input_method) that serves staged_ first.
  static BIO_METHOD* input_method();
  int read_input(BIO* bio, char* out, int length);
  // Called when OpenSSL wants more input: receives into staged_ through the reactor when there
  // is a staging buffer, else waits for readiness and lets the BIO read the socket.
  asio::awaitable<error_code> await_input();
  bool has_buffered_input() const;

  // Sized for a typical request record, so that a keep-alive request arrives with one receive.
  static constexpr std::size_t kStagedInputBytes = 2048;

  tcp::socket socket_;
  SSL* ssl_ = nullptr;
  bool holding_ = false;
  std::string held_;  // held TLS output, sent from held_sent_
  std::size_t held_sent_ = 0;
  bool more_input_ = true;    // the socket may hold unread bytes (not drained by the last read)
  bool input_ended_ = false;  // the peer closed its side: the BIO reports end of stream
  std::unique_ptr<char[]> staged_;  // only on connections that stage input (wait_readable)
  std::size_t staged_begin_ = 0;
  std::size_t staged_end_ = 0;
};

// A peer's address as the gateway keys it (IPv4-mapped IPv6 peers are reported as IPv4).
core::IpAddress peer_address(const tcp::endpoint& remote);

}  // namespace portcullis::io
