#pragma once
// One byte stream type for every connection the gateway holds, client or upstream: a TCP socket,
// optionally with TLS. TLS is OpenSSL reading and writing the non-blocking socket itself (no
// intermediate BIO buffers), so an idle TLS connection costs only what OpenSSL keeps, and with
// SSL_MODE_RELEASE_BUFFERS that is no record buffer at all. Every operation returns its error as
// a value; a cancelled socket (deadline reached) returns operation_aborted.

#include <openssl/ssl.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <span>
#include <string_view>
#include <system_error>

#include "portcullis/core/ip.hpp"

namespace portcullis::net {

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

  // Waits until the peer sent something (or closed), without committing a buffer. Returns
  // immediately when TLS already holds decrypted bytes. While it waits, OpenSSL's record
  // buffers are given back, so an idle TLS connection holds none.
  asio::awaitable<error_code> wait_readable();

  // Writes all of `data`.
  asio::awaitable<error_code> write_all(std::string_view data);

  // Writes the pieces in order; small pieces are coalesced into one TLS record / one syscall.
  asio::awaitable<error_code> write_all(std::span<const std::string_view> pieces);

  // True when the peer has closed or sent unexpected bytes: a pooled connection in that state
  // must not be reused. Never blocks.
  bool peer_closed_or_dirty();

  // Cancels pending operations (used by deadlines).
  void cancel();

  // Sends close_notify when TLS (best effort, never waits) and closes the socket.
  void close();

 private:
  asio::awaitable<error_code> wait(tcp::socket::wait_type type);
  error_code tls_error(int ssl_error, int result);

  tcp::socket socket_;
  SSL* ssl_ = nullptr;
};

// The peer address of a connected socket (IPv4-mapped IPv6 peers are reported as IPv4).
core::IpAddress peer_address(const tcp::socket& socket);

}  // namespace portcullis::net
