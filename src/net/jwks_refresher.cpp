// Keeps remote JWKS fresh: every jwks_refresh, and early (at most once per interval) when a
// token named a kid the current set lacks. Runs on one worker; a fetch never blocks a request,
// and a failed fetch keeps the last good key set.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "portcullis/core/errors.hpp"
#include "worker.hpp"

namespace portcullis::net {
namespace {

constexpr auto kFetchTimeout = std::chrono::seconds(10);

asio::awaitable<void> refresh(Worker& worker, std::shared_ptr<RemoteJwks> remote,
                              std::string ca_file) {
  const auto load = co_await fetch_jwks(worker.io, remote->url, ca_file, kFetchTimeout);
  remote->schedule.record_attempt(worker.services.clock->wall());
  if (!remote->keys->offer(load)) {
    const auto pinned = worker.pin();
    std::string errors;
    for (const auto& error : load.errors) {
      if (!errors.empty()) errors += "; ";
      errors += error;
    }
    std::string line = R"("event":"jwks_fetch","result":"failed","url":")";
    core::append_json_escaped(line, remote->url);
    line += R"(","error":")";
    core::append_json_escaped(line, errors);
    line += '"';
    pinned->runtime->logs->security_event(line);
  }
  remote->fetching = false;
}

}  // namespace

asio::awaitable<void> run_jwks_refresh(Worker& worker) {
  asio::steady_timer tick(worker.io);
  while (!worker.draining.load(std::memory_order_relaxed)) {
    const auto pinned = worker.pin();
    const auto now = worker.services.clock->wall();
    const auto& policy = *pinned->runtime->policy;
    for (std::size_t i = 0; i < pinned->runtime->jwt_providers.size(); ++i) {
      const auto& remote = pinned->runtime->jwt_providers[i].remote;
      if (!remote || remote->fetching) continue;
      const bool wanted = remote->refetch_wanted.exchange(false);
      if (!wanted && !remote->schedule.refresh_due(now)) continue;
      remote->fetching = true;
      asio::co_spawn(worker.io, refresh(worker, remote, policy.jwt_providers[i].jwks_ca_file),
                     asio::detached);
    }
    tick.expires_after(std::chrono::milliseconds(200));
    error_code ec;
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace portcullis::net
