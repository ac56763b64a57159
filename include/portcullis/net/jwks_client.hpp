#pragma once
// Remote JWKS: fetched over https with the certificate and name verified (system trust store, or
// the provider's jwks_ca_file), refreshed every jwks_refresh by one worker, refetched early at
// most once per interval when a token names an unknown kid. A failed fetch keeps the last good
// key set. Key sets are registered by URL so they survive policy reloads.

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "portcullis/auth/jwks.hpp"
#include "portcullis/auth/key_refresh.hpp"

namespace portcullis::net {

struct RemoteJwks {
  RemoteJwks(std::string url, std::chrono::seconds refresh)
      : url(std::move(url)), schedule(refresh) {}

  const std::string url;
  std::shared_ptr<auth::KeySetHolder> keys = std::make_shared<auth::KeySetHolder>();
  auth::RefreshSchedule schedule;
  std::atomic<bool> refetch_wanted{false};  // a token named a kid the set does not have
  std::atomic<bool> fetching{false};
};

class JwksRegistry {
 public:
  // The entry for `url`, created on first use.
  std::shared_ptr<RemoteJwks> get(const std::string& url, std::chrono::seconds refresh);
  std::vector<std::shared_ptr<RemoteJwks>> all() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<RemoteJwks>> entries_;
};

// Fetches and parses a JWKS document. `ca_file` empty = the system trust store.
boost::asio::awaitable<auth::KeySetLoad> fetch_jwks(boost::asio::io_context& io,
                                                    const std::string& url,
                                                    const std::string& ca_file,
                                                    std::chrono::milliseconds timeout);

// The same, blocking (used once at startup and reload for a URL never fetched before).
auth::KeySetLoad fetch_jwks_now(const std::string& url, const std::string& ca_file,
                                std::chrono::milliseconds timeout);

}  // namespace portcullis::net
