#include "portcullis/net/stream.hpp"

#include <openssl/err.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace portcullis::net {
namespace {

constexpr std::size_t kCoalesceLimit = 16 * 1024;

}  // namespace

Stream::Stream(tcp::socket socket) : socket_(std::move(socket)) {
  if (socket_.is_open()) configure_socket();
}

void Stream::configure_socket() {
  error_code ignored;
  socket_.non_blocking(true, ignored);
  socket_.set_option(tcp::no_delay(true), ignored);
}

Stream::~Stream() {
  if (ssl_) SSL_free(ssl_);
}

void Stream::attach_tls(SSL* ssl) {
  ssl_ = ssl;
  SSL_set_fd(ssl_, socket_.native_handle());
}

asio::awaitable<error_code> Stream::wait(tcp::socket::wait_type type) {
  error_code ec;
  co_await socket_.async_wait(type, asio::redirect_error(asio::use_awaitable, ec));
  co_return ec;
}

error_code Stream::tls_error(int ssl_error, int result) {
  if (ssl_error == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
  if (ssl_error == SSL_ERROR_SYSCALL) {
    ERR_clear_error();
    if (result == 0 || errno == 0) return asio::error::eof;  // closed without close_notify
    return error_code(errno, boost::system::system_category());
  }
  ERR_clear_error();
  return asio::error::connection_reset;  // protocol failure: treat as a broken connection
}

asio::awaitable<error_code> Stream::handshake() {
  for (;;) {
    ERR_clear_error();
    const int result = SSL_do_handshake(ssl_);
    if (result == 1) co_return error_code{};
    const int ssl_error = SSL_get_error(ssl_, result);
    if (ssl_error == SSL_ERROR_WANT_READ) {
      if (auto ec = co_await wait(tcp::socket::wait_read)) co_return ec;
    } else if (ssl_error == SSL_ERROR_WANT_WRITE) {
      if (auto ec = co_await wait(tcp::socket::wait_write)) co_return ec;
    } else {
      co_return tls_error(ssl_error, result);
    }
  }
}

asio::awaitable<std::size_t> Stream::read_some(std::span<char> buffer, error_code& ec) {
  ec = {};
  if (!ssl_) {
    co_return co_await socket_.async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                               asio::redirect_error(asio::use_awaitable, ec));
  }
  // The error queue is kept empty (every failure path clears it), so SSL_get_error can be
  // trusted without clearing before each call: that costs a thread-local lookup per record.
  for (;;) {
    const int result = SSL_read(ssl_, buffer.data(), static_cast<int>(buffer.size()));
    if (result > 0) {
      // SSL_read returns one record at a time; records already read ahead are decrypted too,
      // so a streamed body goes on in fewer, larger writes.
      auto total = static_cast<std::size_t>(result);
      while (total < buffer.size() && (SSL_pending(ssl_) > 0 || SSL_has_pending(ssl_))) {
        const int more =
            SSL_read(ssl_, buffer.data() + total, static_cast<int>(buffer.size() - total));
        if (more <= 0) {
          const int ssl_error = SSL_get_error(ssl_, more);
          if (ssl_error != SSL_ERROR_WANT_READ && ssl_error != SSL_ERROR_WANT_WRITE)
            ERR_clear_error();  // the next read reports it
          break;
        }
        total += static_cast<std::size_t>(more);
      }
      co_return total;
    }
    const int ssl_error = SSL_get_error(ssl_, result);
    if (ssl_error == SSL_ERROR_WANT_READ) {
      if ((ec = co_await wait(tcp::socket::wait_read))) co_return 0;
    } else if (ssl_error == SSL_ERROR_WANT_WRITE) {
      if ((ec = co_await wait(tcp::socket::wait_write))) co_return 0;
    } else {
      ec = tls_error(ssl_error, result);
      co_return 0;
    }
  }
}

asio::awaitable<error_code> Stream::wait_readable() {
  if (ssl_) {
    if (SSL_pending(ssl_) > 0 || SSL_has_pending(ssl_)) co_return error_code{};
    // RELEASE_BUFFERS frees a record buffer only after a read drains it; the handshake and the
    // last response leave them allocated (about 17 KiB each) until then.
    (void)SSL_free_buffers(ssl_);
  }
  error_code ec;
  co_await socket_.async_wait(tcp::socket::wait_read,
                              asio::redirect_error(asio::use_awaitable, ec));
  co_return ec;
}

asio::awaitable<error_code> Stream::write_all(std::string_view data) {
  if (!ssl_) {
    error_code ec;
    co_await asio::async_write(socket_, asio::buffer(data.data(), data.size()),
                               asio::redirect_error(asio::use_awaitable, ec));
    co_return ec;
  }
  while (!data.empty()) {
    const int chunk = static_cast<int>(std::min<std::size_t>(data.size(), 1 << 30));
    const int result = SSL_write(ssl_, data.data(), chunk);
    if (result > 0) {
      data.remove_prefix(static_cast<std::size_t>(result));
      continue;
    }
    const int ssl_error = SSL_get_error(ssl_, result);
    if (ssl_error == SSL_ERROR_WANT_WRITE) {
      if (auto ec = co_await wait(tcp::socket::wait_write)) co_return ec;
    } else if (ssl_error == SSL_ERROR_WANT_READ) {
      if (auto ec = co_await wait(tcp::socket::wait_read)) co_return ec;
    } else {
      co_return tls_error(ssl_error, result);
    }
  }
  co_return error_code{};
}

asio::awaitable<error_code> Stream::write_all(std::span<const std::string_view> pieces) {
  std::size_t total = 0;
  for (const auto piece : pieces)
    total += piece.size();
  if (total == 0) co_return error_code{};
  if (!ssl_) {
    std::array<asio::const_buffer, 8> buffers;
    if (pieces.size() <= buffers.size()) {
      for (std::size_t i = 0; i < pieces.size(); ++i)
        buffers[i] = asio::buffer(pieces[i].data(), pieces[i].size());
      error_code ec;
      co_await asio::async_write(socket_, std::span(buffers.data(), pieces.size()),
                                 asio::redirect_error(asio::use_awaitable, ec));
      co_return ec;
    }
  } else if (pieces.size() == 1) {
    co_return co_await write_all(pieces.front());
  } else if (total <= kCoalesceLimit) {
    // One TLS record instead of one per piece: fewer bytes on the wire and fewer syscalls. The
    // pieces are gathered in a per-thread scratch buffer and written at once; that nearly always
    // completes without waiting. Only when it must wait does the rest move into this frame,
    // because another coroutine of the thread may use the scratch buffer meanwhile.
    thread_local std::array<char, kCoalesceLimit> scratch;
    std::size_t offset = 0;
    for (const auto piece : pieces) {
      if (piece.empty()) continue;  // an empty view may hold a null pointer
      std::memcpy(scratch.data() + offset, piece.data(), piece.size());
      offset += piece.size();
    }
    const int result = SSL_write(ssl_, scratch.data(), static_cast<int>(offset));
    if (result == static_cast<int>(offset)) co_return error_code{};
    const std::size_t written = result > 0 ? static_cast<std::size_t>(result) : 0;
    if (result <= 0) {
      const int ssl_error = SSL_get_error(ssl_, result);
      if (ssl_error != SSL_ERROR_WANT_WRITE && ssl_error != SSL_ERROR_WANT_READ)
        co_return tls_error(ssl_error, result);
    }
    const std::string rest(scratch.data() + written, offset - written);
    co_return co_await write_all(std::string_view(rest));
  }
  for (const auto piece : pieces) {
    if (auto ec = co_await write_all(piece)) co_return ec;
  }
  co_return error_code{};
}

bool Stream::peer_closed_or_dirty() {
  if (!socket_.is_open()) return true;
  char byte;
  const auto result = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (result == 0) return true;                       // orderly close
  if (result > 0) return true;                        // unexpected bytes (or a TLS alert)
  return !(errno == EAGAIN || errno == EWOULDBLOCK);  // reset or another error
}

void Stream::cancel() {
  error_code ignored;
  socket_.cancel(ignored);
}

void Stream::close() {
  if (ssl_ && SSL_is_init_finished(ssl_)) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // queues close_notify; the socket is non-blocking, so never waits
    ERR_clear_error();
  }
  error_code ignored;
  socket_.close(ignored);
}

core::IpAddress peer_address(const tcp::socket& socket) {
  error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  core::IpAddress peer;
  if (ec) return peer;
  const auto address = remote.address();
  if (address.is_v4()) return core::IpAddress::from_v4(address.to_v4().to_uint());
  const auto v6 = address.to_v6();
  if (v6.is_v4_mapped()) {
    return core::IpAddress::from_v4(asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_uint());
  }
  const auto bytes = v6.to_bytes();
  std::memcpy(peer.bytes.data(), bytes.data(), bytes.size());
  return peer;
}

}  // namespace portcullis::net
