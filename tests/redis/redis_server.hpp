#pragma once
// Test support for the redis module: a real redis-server on a free loopback port, started and
// stopped by the test, and helpers that run coroutines on an io_context with a bound.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "portcullis/core/clock.hpp"

namespace portcullis::redis::test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

inline core::Clock::MonotonicTime now() {
  return core::system_clock().monotonic();
}

// A loopback port nobody listens on right now.
inline std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    throw std::runtime_error("no free port");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

// True when a plain connection to `port` gets an answer to PING (+PONG or an error such as
// NOAUTH: the server is up either way; LOADING is not up).
inline bool answers_ping(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval timeout{0, 200'000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  bool up = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const char ping[] = "PING\r\n";
    char reply[64] = {};
    if (::send(fd, ping, sizeof ping - 1, MSG_NOSIGNAL) > 0 &&
        ::recv(fd, reply, sizeof reply - 1, 0) > 0) {
      const std::string text(reply);
      up = (text[0] == '+' || text[0] == '-') && text.find("LOADING") == std::string::npos;
    }
  }
  ::close(fd);
  return up;
}

// Runs a command line and returns its exit status.
inline int run_command(const std::string& command) {
  return std::system(command.c_str());
}

class RedisServer {
 public:
  // `extra` is appended to the command line (e.g. TLS settings). The plain port always listens:
  // readiness is checked there.
  explicit RedisServer(std::vector<std::string> extra = {})
      : port_(free_port()), extra_(std::move(extra)) {
    char pattern[] = "/tmp/portcullis-redis-XXXXXX";
    if (!::mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
  }
  ~RedisServer() {
    kill();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::uint16_t port() const { return port_; }
  const std::string& dir() const { return dir_; }
  void set_extra(std::vector<std::string> extra) { extra_ = std::move(extra); }

  // Starts redis-server (on the same port every time) and waits until it answers.
  void start() {
    std::vector<std::string> args = {"/usr/bin/redis-server",
                                     "--port",
                                     std::to_string(port_),
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--daemonize",
                                     "no",
                                     "--dir",
                                     dir_,
                                     "--logfile",
                                     dir_ + "/redis.log"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& arg : args)
        argv.push_back(arg.data());
      argv.push_back(nullptr);
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    const auto deadline = now() + 10s;
    while (!answers_ping(port_)) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("redis-server exited at start; see " + dir_ + "/redis.log");
      }
      if (now() > deadline) throw std::runtime_error("redis-server did not answer in 10 s");
      ::usleep(10'000);  // a bounded poll for the child's readiness
    }
  }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void pause() { ::kill(pid_, SIGSTOP); }
  void resume() { ::kill(pid_, SIGCONT); }

 private:
  std::uint16_t port_;
  std::vector<std::string> extra_;
  std::string dir_;
  pid_t pid_ = -1;
};

// Runs the io_context until `done()` or `limit`; true when done.
inline bool run_until(asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = 10s) {
  const auto deadline = now() + limit;
  while (!done()) {
    if (now() > deadline) return false;
    io.restart();
    io.run_one_for(5ms);
  }
  return true;
}

// Runs `task` on `io` to completion (at most `limit`) and returns its result.
template <typename T>
T run(asio::io_context& io, asio::awaitable<T> task, std::chrono::milliseconds limit = 10s) {
  std::optional<T> result;
  std::exception_ptr error;
  bool finished = false;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    error = e;
    result.emplace(std::move(value));
    finished = true;
  });
  if (!run_until(
          io, [&] { return finished; }, limit))
    throw std::runtime_error("a coroutine did not finish in time");
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

}  // namespace portcullis::redis::test
