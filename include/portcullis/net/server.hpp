#pragma once
// The serving process: one worker thread per core, each with its own io_context, its own
// SO_REUSEPORT acceptor per listener, its own upstream pools and request-id generator. Nothing on
// the request path takes a process-wide lock; workers see a new Runtime after a reload at their
// next request.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "portcullis/net/runtime.hpp"

namespace portcullis::net {

class Server {
 public:
  // `emit_event` receives one JSON object per operational event ("listening", "ready",
  // "reload", "drain"); main prints them on stderr.
  Server(std::shared_ptr<const Runtime> runtime, Services& services,
         std::function<void(const std::string&)> emit_event);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every listener (throws std::runtime_error naming the listener on failure) and starts
  // the workers.
  void start();

  // Makes `runtime` current; requests already in flight keep the one they started with.
  void reload(std::shared_ptr<const Runtime> runtime);

  // Stops accepting, closes idle connections, lets in-flight requests finish for up to
  // `timeout`, then stops every worker. Blocks until done.
  void drain_and_stop(std::chrono::milliseconds timeout);

  std::shared_ptr<const Runtime> current() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace portcullis::net
