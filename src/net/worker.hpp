#pragma once
// Internal to the net layer: one worker thread's state, and the per-connection entry points.

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "portcullis/filters/request_id.hpp"
#include "portcullis/io/buffer_pool.hpp"
#include "portcullis/io/stream.hpp"
#include "portcullis/io/tls_context.hpp"
#include "portcullis/net/runtime.hpp"
#include "portcullis/upstream/pool.hpp"
#include "portcullis/upstream/runtime.hpp"

namespace portcullis::net {

// The byte stream and TLS contexts come from the io module, below net and upstream alike.
namespace asio = boost::asio;
using io::ClientTlsContext;
using io::error_code;
using io::ServerTlsContext;
using io::Stream;
using io::tcp;
using upstream::EndpointRuntime;
using upstream::UpstreamRuntime;

class ClientConnection;

// The current Runtime, swapped on reload. Workers compare generation() per request.
class RuntimeStore {
 public:
  explicit RuntimeStore(std::shared_ptr<const Runtime> initial) : current_(std::move(initial)) {}
  std::shared_ptr<const Runtime> current() const {
    std::lock_guard lock(mutex_);
    return current_;
  }
  void replace(std::shared_ptr<const Runtime> next) {
    {
      std::lock_guard lock(mutex_);
      current_ = std::move(next);
    }
    generation_.fetch_add(1, std::memory_order_release);
  }
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Runtime> current_;
  std::atomic<std::uint64_t> generation_{1};
};

// What a request pins: the Runtime it started with. The holder is per worker, so copying it
// touches a reference count no other thread shares.
struct PinnedRuntime {
  std::shared_ptr<const Runtime> runtime;
};

struct Worker {
  Worker(std::size_t index, Services& services, RuntimeStore& store,
         const std::atomic<bool>& draining)
      : index(index), services(services), store(store), draining(draining), upstreams(index) {}

  std::shared_ptr<const PinnedRuntime> pin() {
    const auto generation = store.generation();
    if (!pinned || generation != pinned_generation) {
      pinned = std::make_shared<PinnedRuntime>(PinnedRuntime{store.current()});
      pinned_generation = generation;
    }
    return pinned;
  }

  std::size_t index;
  Services& services;
  RuntimeStore& store;
  const std::atomic<bool>& draining;
  // One thread runs it and starts every I/O operation on its sockets (other threads only post
  // to it), so the per-socket locks are dropped; the scheduler keeps its lock for those posts.
  boost::asio::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::vector<boost::asio::ip::tcp::acceptor> acceptors;
  std::unordered_set<ClientConnection*> connections;
  std::thread thread;
  std::uint16_t https_port = 0;  // bound port of the first TLS listener, for redirects
  const boost::asio::ip::tcp::acceptor* admin_acceptor = nullptr;  // on the first worker only
  upstream::WorkerPools upstreams;  // keep-alive connections and round robin, this thread's
  io::BufferPool buffers;           // request buffers: taken per request, given back when idle

 private:
  std::shared_ptr<const PinnedRuntime> pinned;
  std::uint64_t pinned_generation = 0;

 public:
  filters::RequestIdGenerator request_ids;
};

enum class ListenerKind { tls, redirect, admin };

// Starts serving one accepted client connection on the worker; it runs until it closes. `slot`
// holds its place under the connection caps for as long as it lives.
void start_connection(Worker& worker, boost::asio::ip::tcp::socket socket,
                      const core::IpAddress& peer, ListenerKind kind, std::size_t listener_index,
                      std::optional<ConnectionLimiter::Slot> slot);

// Closes the connection if it is waiting for a new request (used when draining).
void close_if_idle(ClientConnection* connection);

// Attaches the policy's long-lived services (state backend, limiter, IP rules, route limits) to
// `runtime`, creating them when `serving` and not yet made for equal settings.
void attach_policy_services(Runtime& runtime, Services& services, bool serving,
                            std::vector<std::string>* warnings);

// Periodic state-backend housekeeping (expired records) and its gauges; runs on one worker.
boost::asio::awaitable<void> run_state_maintenance(Worker& worker);

// Refreshes key sets fetched from jwks_url; runs on one worker.
boost::asio::awaitable<void> run_jwks_refresh(Worker& worker);

}  // namespace portcullis::net
