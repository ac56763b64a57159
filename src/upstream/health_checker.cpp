// Active health checks (see health_checker.hpp): each probe runs on a fresh connection bounded by
// one timer.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <unordered_map>

#include "portcullis/http/response_parser.hpp"
#include "portcullis/io/stream.hpp"
#include "portcullis/upstream/health_checker.hpp"

namespace portcullis::upstream {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using io::error_code;

asio::awaitable<bool> probe(asio::io_context& io, const UpstreamRuntime& upstream,
                            const EndpointRuntime& endpoint) {
  const config::Upstream& settings = *upstream.settings;
  auto stream = std::make_shared<io::Stream>(io::tcp::socket(io));
  // One timer bounds the whole probe; on expiry it cancels whatever is pending.
  auto timer = std::make_shared<asio::steady_timer>(io);
  timer->expires_after(
      settings.connect_timeout +
      std::min<config::Duration>(settings.response_timeout, settings.health_check.interval));
  timer->async_wait([stream](const error_code& ec) {
    if (!ec) stream->cancel();
  });
  struct CancelTimer {
    std::shared_ptr<asio::steady_timer> timer;
    ~CancelTimer() { timer->cancel(); }
  } cancel_timer{timer};

  error_code ec;
  co_await stream->socket().async_connect(endpoint.resolved,
                                          asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return false;
  stream->configure_socket();
  if (upstream.tls) {
    SSL* ssl = upstream.tls->new_ssl(endpoint.address.host);
    if (!ssl) co_return false;
    stream->attach_tls(ssl);
    if (co_await stream->handshake()) co_return false;
  }
  const std::string request = "GET " + settings.health_check.path +
                              " HTTP/1.1\r\nHost: " + endpoint.address.host +
                              "\r\nUser-Agent: portcullis-health\r\n"
                              "Connection: close\r\n\r\n";
  if (co_await stream->write_all(std::string_view(request))) co_return false;
  char buffer[4096];
  std::size_t size = 0;
  http::ResponseParser parser(sizeof buffer);
  http::ResponseHead head;
  for (;;) {
    const auto n = co_await stream->read_some(std::span(buffer + size, sizeof buffer - size), ec);
    if (ec) co_return false;
    size += n;
    const auto parsed = parser.parse(std::string_view(buffer, size), false, head);
    if (parsed.state == http::ParseState::error) co_return false;
    if (parsed.state == http::ParseState::complete) {
      stream->close();
      co_return head.status >= 200 && head.status < 400;
    }
    if (size == sizeof buffer) co_return false;
  }
}

asio::awaitable<void> check_once(asio::io_context& io,
                                 std::shared_ptr<const std::vector<UpstreamRuntime>> upstreams,
                                 std::size_t upstream_index, std::size_t endpoint_index,
                                 std::shared_ptr<bool> in_flight) {
  const UpstreamRuntime& upstream = (*upstreams)[upstream_index];
  const EndpointRuntime& endpoint = upstream.endpoints[endpoint_index];
  const bool healthy = co_await probe(io, upstream, endpoint);
  endpoint.health->set_active_verdict(healthy);
  *in_flight = false;
}

}  // namespace

asio::awaitable<void> run_health_checks(asio::io_context& io, const std::atomic<bool>& draining,
                                        CurrentUpstreams current) {
  struct Schedule {
    Clock::time_point next;
    std::shared_ptr<bool> in_flight = std::make_shared<bool>(false);
  };
  std::unordered_map<std::size_t, Schedule> schedule;  // by endpoint id
  asio::steady_timer tick(io);
  while (!draining.load(std::memory_order_relaxed)) {
    const auto pinned = current();
    const auto now = Clock::now();
    const auto& upstreams = *pinned;
    for (std::size_t u = 0; u < upstreams.size(); ++u) {
      const auto& settings = *upstreams[u].settings;
      for (std::size_t e = 0; e < upstreams[u].endpoints.size(); ++e) {
        const auto& endpoint = upstreams[u].endpoints[e];
        if (settings.health_check.path.empty()) {
          endpoint.health->set_active_verdict(true);
          continue;
        }
        auto& entry = schedule[endpoint.id];
        if (*entry.in_flight || now < entry.next) continue;
        entry.next = now + settings.health_check.interval;
        *entry.in_flight = true;
        asio::co_spawn(io, check_once(io, pinned, u, e, entry.in_flight), asio::detached);
      }
    }
    tick.expires_after(std::chrono::milliseconds(100));
    error_code ec;
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace portcullis::upstream
