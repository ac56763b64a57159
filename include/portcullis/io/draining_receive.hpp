#pragma once
// A receive buffer for sockets read request by request (a client's TLS records): pass
// `DrainingReceiveBuffer` instead of `asio::buffer(...)` to `async_read_some`.
//
// Why: Asio's epoll reactor tries every read at once ("speculatively") unless the previous read
// on the socket reported the socket exhausted, and its stream receive reports that only at end
// of stream. On a keep-alive connection the next request is rarely there yet when the response
// has just left, so every request cost a receive that fails with EAGAIN before the reactor waits
// for the epoll edge (0.8 failed receives per request under load, 16% of the gateway's system
// calls). Here a short read counts as exhausted too: on Linux a TCP receive returns less than
// asked only when it emptied the socket's queue, and any byte that arrives later raises a new
// edge (epoll wakes an edge-triggered waiter on every arrival), which re-enables the immediate
// try. The next read then waits for that edge without a system call.
//
// The receive operation is Asio's own (allocation, handler work, completion, cancellation); only
// its "perform" step is specialised, for this buffer type alone. It depends on Asio internals, so
// it applies to the Asio version it was written against (Boost 1.81's Asio 1.26) on the epoll
// reactor; elsewhere this buffer behaves exactly like asio::mutable_buffer.

#include <boost/asio/buffer.hpp>
#include <boost/asio/version.hpp>

namespace portcullis::io {

struct DrainingReceiveBuffer : boost::asio::mutable_buffer {
  DrainingReceiveBuffer(void* data, std::size_t size) : boost::asio::mutable_buffer(data, size) {}
};

}  // namespace portcullis::io

#if BOOST_ASIO_VERSION == 102600 && defined(BOOST_ASIO_HAS_EPOLL) && \
    !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#define PORTCULLIS_DRAINING_RECEIVE 1

#include <boost/asio/socket_base.hpp>
// After socket_base: this Asio header is not self-contained.
#include <boost/asio/detail/reactive_socket_recv_op.hpp>

namespace boost::asio::detail {

template <>
class reactive_socket_recv_op_base<portcullis::io::DrainingReceiveBuffer> : public reactor_op {
 public:
  reactive_socket_recv_op_base(const boost::system::error_code& success_ec, socket_type socket,
                               socket_ops::state_type state,
                               const portcullis::io::DrainingReceiveBuffer& buffer,
                               socket_base::message_flags flags, func_type complete_func)
      : reactor_op(success_ec, &reactive_socket_recv_op_base::do_perform, complete_func),
        socket_(socket),
        state_(state),
        buffer_(buffer),
        flags_(flags) {}

  static status do_perform(reactor_op* base) {
    auto* op = static_cast<reactive_socket_recv_op_base*>(base);
    const bool is_stream = (op->state_ & socket_ops::stream_oriented) != 0;
    if (!socket_ops::non_blocking_recv1(op->socket_, op->buffer_.data(), op->buffer_.size(),
                                        op->flags_, is_stream, op->ec_, op->bytes_transferred_))
      return not_done;  // EAGAIN: the reactor waits for the edge
    // A short read (an error or the end of stream included) drained the socket.
    return is_stream && op->bytes_transferred_ < op->buffer_.size() ? done_and_exhausted : done;
  }

 private:
  socket_type socket_;
  socket_ops::state_type state_;
  portcullis::io::DrainingReceiveBuffer buffer_;
  socket_base::message_flags flags_;
};

}  // namespace boost::asio::detail

#endif
