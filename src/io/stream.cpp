#include "portcullis/io/stream.hpp"

#include "portcullis/io/draining_receive.hpp"

#include <openssl/err.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace portcullis::io {
namespace {

constexpr std::size_t kCoalesceLimit = 16 * 1024;

// A BIO type of ours over the stream (BIO data = the Stream); `configure` adds its callbacks.
template <typename Configure>
BIO_METHOD* make_bio_method(const char* name, Configure configure) {
  BIO_METHOD* method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, name);
  BIO_meth_set_create(method, [](BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  });
  configure(method);
  return method;
}

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

// OpenSSL reads through this BIO: first what an asynchronous receive staged, then, while the
// socket is believed to hold more, straight from the socket. It never waits: "retry" sends the
// stream to await_input(), which lets the reactor receive (or signal) the next bytes.
BIO_METHOD* Stream::input_method() {
  static BIO_METHOD* const method = make_bio_method("portcullis input", [](BIO_METHOD* m) {
    BIO_meth_set_read(m, [](BIO* bio, char* out, int length) {
      return static_cast<Stream*>(BIO_get_data(bio))->read_input(bio, out, length);
    });
    BIO_meth_set_ctrl(m, [](BIO* bio, int command, long, void*) -> long {
      if (command == BIO_CTRL_FLUSH) return 1;
      // Asked after a read returned 0: a real end of stream, which OpenSSL reports as an
      // unexpected EOF unless close_notify came first.
      if (command == BIO_CTRL_EOF) return static_cast<Stream*>(BIO_get_data(bio))->input_ended_;
      return 0;
    });
  });
  return method;
}

int Stream::read_input(BIO* bio, char* out, int length) {
  BIO_clear_retry_flags(bio);
  if (length <= 0) return 0;
  const auto wanted = static_cast<std::size_t>(length);
  if (staged_begin_ < staged_end_) {
    const std::size_t count = std::min(wanted, staged_end_ - staged_begin_);
    std::memcpy(out, staged_.get() + staged_begin_, count);
    staged_begin_ += count;
    return static_cast<int>(count);
  }
  if (input_ended_) return 0;
  if (!more_input_) {
    BIO_set_retry_read(bio);
    return -1;
  }
  const ssize_t count = ::read(socket_.native_handle(), out, wanted);
  if (count > 0) {
    more_input_ = static_cast<std::size_t>(count) == wanted;
    return static_cast<int>(count);
  }
  if (count == 0) {
    input_ended_ = true;
    return 0;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    more_input_ = false;
    BIO_set_retry_read(bio);
  }
  return -1;
}

// OpenSSL writes through this BIO: straight to the socket, or into held_ while output is held.
BIO_METHOD* Stream::output_method() {
  static BIO_METHOD* const method = make_bio_method("portcullis output", [](BIO_METHOD* m) {
    BIO_meth_set_write(m, [](BIO* bio, const char* data, int length) {
      return static_cast<Stream*>(BIO_get_data(bio))->write_output(bio, data, length);
    });
    BIO_meth_set_ctrl(m, [](BIO*, int command, long, void*) -> long {
      return command == BIO_CTRL_FLUSH ? 1 : 0;  // every write is sent or deliberately held
    });
  });
  return method;
}

int Stream::write_output(BIO* bio, const char* data, int length) {
  BIO_clear_retry_flags(bio);
  if (length <= 0) return 0;
  const auto size = static_cast<std::size_t>(length);
  if (holding_ && held_.size() + size <= kHeldOutputLimit) {
    held_.append(data, size);
    return length;
  }
  holding_ = false;  // too much to hold: what is held goes first, then this
  error_code ec;
  std::size_t sent = 0;
  if (send_held(0, ec)) {
    const std::string_view piece(data, size);
    sent = send_now(std::span(&piece, 1), ec);
  }
  if (ec) return -1;
  if (sent == 0) {
    BIO_set_retry_write(bio);  // the socket is full
    return -1;
  }
  return static_cast<int>(sent);
}

bool Stream::send_held(int flags, error_code& ec) {
  while (held_sent_ < held_.size()) {
    const std::string_view rest(held_.data() + held_sent_, held_.size() - held_sent_);
    const std::size_t sent = send_now(std::span(&rest, 1), ec, flags);
    if (sent == 0) return false;  // the socket is full, or `ec` says what failed
    held_sent_ += sent;
  }
  std::string().swap(held_);  // its memory goes too
  held_sent_ = 0;
  return true;
}

void Stream::attach_tls(SSL* ssl) {
  ssl_ = ssl;
  BIO* input = BIO_new(input_method());
  BIO* output = BIO_new(output_method());
  if (!input || !output) {
    BIO_free(input);
    BIO_free(output);
    return;  // no BIOs: the handshake fails and the connection closes
  }
  BIO_set_data(input, this);
  BIO_set_data(output, this);
  SSL_set_bio(ssl_, input, output);
}

asio::awaitable<error_code> Stream::await_input() {
  error_code ec;
  if (!staged_) {
    // Readiness, then the BIO reads the socket directly.
    co_await socket_.async_wait(tcp::socket::wait_read,
                                asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) more_input_ = true;
    co_return ec;
  }
  staged_begin_ = staged_end_ = 0;
  const std::size_t count =
      co_await socket_.async_read_some(DrainingReceiveBuffer(staged_.get(), kStagedInputBytes),
                                       asio::redirect_error(asio::use_awaitable, ec));
  if (ec == asio::error::eof) {
    // OpenSSL sees the end itself, so that it can tell a close_notify from a cut-off stream.
    input_ended_ = true;
    co_return error_code{};
  }
  if (ec) co_return ec;
  staged_end_ = count;
  // A short read drained the socket; only a full one may have left bytes behind.
  more_input_ = count == kStagedInputBytes;
  co_return error_code{};
}

void Stream::release_buffers() {
  if (staged_ && staged_begin_ >= staged_end_) {
    staged_.reset();
    staged_begin_ = staged_end_ = 0;
  }
  if (ssl_) {
    SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
    (void)SSL_free_buffers(ssl_);  // keeps a buffer that still holds unread input
  }
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
      // A TLS 1.3 server has sent everything the client needs to finish; what it writes from
      // now on (the session ticket) can wait for the first response and leave with it.
      if (SSL_is_server(ssl_) && SSL_version(ssl_) == TLS1_3_VERSION &&
          SSL_get_state(ssl_) == TLS_ST_EARLY_DATA)
        hold_output();
      if (auto ec = co_await await_input()) co_return ec;
    } else if (ssl_error == SSL_ERROR_WANT_WRITE) {
      if (auto ec = co_await wait(tcp::socket::wait_write)) co_return ec;
    } else {
      co_return tls_error(ssl_error, result);
    }
  }
}

// Not a coroutine itself: plain TCP hands back the socket's own awaitable, which saves a
// coroutine frame per read (the error handler assigns `ec` either way).
asio::awaitable<std::size_t> Stream::read_some(std::span<char> buffer, error_code& ec) {
  if (!ssl_) {
    return socket_.async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                   asio::redirect_error(asio::use_awaitable, ec));
  }
  return read_some_tls(buffer, ec);
}

asio::awaitable<std::size_t> Stream::read_some_tls(std::span<char> buffer, error_code& ec) {
  ec = {};
  // The error queue is kept empty (every failure path clears it), so SSL_get_error can be
  // trusted without clearing before each call: that costs a thread-local lookup per record.
  for (;;) {
    const int result = SSL_read(ssl_, buffer.data(), static_cast<int>(buffer.size()));
    if (result > 0) {
      // SSL_read returns one record at a time; records already read ahead are decrypted too,
      // so a streamed body goes on in fewer, larger writes.
      auto total = static_cast<std::size_t>(result);
      while (total < buffer.size() && has_buffered_input()) {
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
      if (output_pending() && (ec = co_await flush_output())) co_return 0;  // the peer may wait
      if ((ec = co_await await_input())) co_return 0;
    } else if (ssl_error == SSL_ERROR_WANT_WRITE) {
      if ((ec = co_await wait(tcp::socket::wait_write))) co_return 0;
    } else {
      ec = tls_error(ssl_error, result);
      co_return 0;
    }
  }
}

// Not a coroutine itself on the common path (nothing buffered, nothing to flush): it hands back
// await_input()'s awaitable, which saves a coroutine frame per request.
asio::awaitable<error_code> Stream::wait_readable(bool stage) {
  if (!ssl_) return wait(tcp::socket::wait_read);
  if (has_buffered_input() || output_pending()) return flush_then_wait_readable(stage);
  prepare_input_wait(stage);
  return await_input();
}

asio::awaitable<error_code> Stream::flush_then_wait_readable(bool stage) {
  if (has_buffered_input()) co_return error_code{};
  if (auto ec = co_await flush_output()) co_return ec;  // the peer may be waiting for it
  prepare_input_wait(stage);
  co_return co_await await_input();
}

void Stream::prepare_input_wait(bool stage) {
  if (!stage) {
    // RELEASE_BUFFERS frees a record buffer only after a read drains it; the handshake leaves
    // them allocated (about 17 KiB each) until then.
    (void)SSL_free_buffers(ssl_);
    return;
  }
  // A busy connection keeps OpenSSL's two record buffers between requests: freeing and
  // allocating them again for every request costs more than parsing the request. They go in
  // release_buffers(), when the connection parks.
  SSL_clear_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
  // Receiving (rather than waiting for readiness) needs no epoll re-arm and brings the bytes
  // along with the wake-up.
  if (!staged_) staged_ = std::make_unique_for_overwrite<char[]>(kStagedInputBytes);
}

bool Stream::has_buffered_input() const {
  return staged_begin_ < staged_end_ || SSL_pending(ssl_) > 0 || SSL_has_pending(ssl_);
}

asio::awaitable<error_code> Stream::write_all(std::string_view data) {
  if (!ssl_) co_return co_await write_all(std::span(&data, 1));
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
      if (auto ec = co_await await_input()) co_return ec;
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
    if (pieces.size() <= kMaxPlainPieces) {
      error_code ec;
      std::size_t sent = send_now(pieces, ec);
      if (ec) co_return ec;
      // What the socket did not take waits until it can.
      std::array<asio::const_buffer, kMaxPlainPieces> rest;
      std::size_t rest_count = 0;
      for (const auto piece : pieces) {
        if (sent >= piece.size()) {
          sent -= piece.size();
          continue;
        }
        rest[rest_count++] = asio::buffer(piece.data() + sent, piece.size() - sent);
        sent = 0;
      }
      if (rest_count == 0) co_return error_code{};
      co_await asio::async_write(socket_, std::span(rest.data(), rest_count),
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

// Used for TLS records (write_output, send_held) and plain TCP alike. The socket nearly always
// takes a request or response whole: sending it here, rather than through an asynchronous write,
// spares a trip through the reactor's queue.
std::size_t Stream::send_now(std::span<const std::string_view> pieces, error_code& ec, int flags) {
  std::array<iovec, kMaxPlainPieces> vectors;
  std::size_t count = 0;
  for (const auto piece : pieces) {
    if (count == vectors.size()) break;  // a partial send: the caller sends the rest
    if (!piece.empty()) vectors[count++] = iovec{const_cast<char*>(piece.data()), piece.size()};
  }
  msghdr message{};
  message.msg_iov = vectors.data();
  message.msg_iovlen = count;
  for (;;) {
    const ssize_t sent = ::sendmsg(socket_.native_handle(), &message, MSG_NOSIGNAL | flags);
    if (sent >= 0) return static_cast<std::size_t>(sent);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      ec = error_code(errno, boost::system::system_category());
    return 0;
  }
}

bool Stream::peer_closed_or_dirty() {
  if (!socket_.is_open()) return true;
  if (staged_begin_ < staged_end_) return true;  // unexpected bytes already received
  char byte;
  const auto result = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (result == 0) return true;                       // orderly close
  if (result > 0) return true;                        // unexpected bytes (or a TLS alert)
  return !(errno == EAGAIN || errno == EWOULDBLOCK);  // reset or another error
}

void Stream::hold_output() {
  if (ssl_) holding_ = true;
}

void Stream::release_output() {
  holding_ = false;
  error_code ignored;
  if (!held_.empty())
    (void)send_held(0, ignored);  // a remainder goes before the next write or wait
}

asio::awaitable<error_code> Stream::flush_output() {
  holding_ = false;
  for (;;) {
    error_code ec;
    if (send_held(0, ec) || ec) co_return ec;
    if ((ec = co_await wait(tcp::socket::wait_write))) co_return ec;
  }
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
  holding_ = false;
  if (!held_.empty() && socket_.is_open()) {
    // What is held (close_notify included) leaves in one send; MSG_MORE keeps it queued until
    // shutdown() adds the FIN, so the three share a segment. Sent before the descriptor closes:
    // closing with unread input resets the connection and drops the queue. Held output is
    // bounded well below a socket's send buffer, so the send takes it whole.
    error_code ignored;
    (void)send_held(MSG_MORE, ignored);
    ::shutdown(socket_.native_handle(), SHUT_WR);
  }
  error_code ignored;
  socket_.close(ignored);
}

core::IpAddress peer_address(const tcp::endpoint& remote) {
  core::IpAddress peer;
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

}  // namespace portcullis::io
