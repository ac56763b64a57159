#pragma once
// The admin listener: metrics, liveness and readiness, and the admin API (revocations and bans)
// behind the bearer token of server.admin.token_file. Every API request is answered with a small
// JSON body; every write is acknowledged only once the state backend says it is durable, and
// goes to the security log with a hash of the token that made it. The connection loop reads the
// request head and hands the rest over; each admin connection carries one request.

#include <boost/asio/awaitable.hpp>
#include <optional>

#include "portcullis/auth/token_hash.hpp"
#include "portcullis/core/clock.hpp"
#include "portcullis/core/ip.hpp"
#include "portcullis/obs/logs.hpp"
#include "portcullis/obs/metrics.hpp"
#include "portcullis/state/backend.hpp"
#include "portcullis/upstream/client_side.hpp"

namespace portcullis::admin {

// What the admin endpoints need beside the client side, from the runtime in force.
struct ListenerContext {
  const std::optional<auth::TokenDigest>& token;  // of server.admin.token_file; none = API off
  state::Backend* state;                          // none = no state backend
  obs::Logs& logs;
  obs::Metrics& metrics;
  const core::Clock& clock;
  core::IpAddress peer;  // for the security log
};

// Answers the request whose head is in client.ex (head_bytes set), then returns; the connection
// closes after it.
boost::asio::awaitable<void> serve(upstream::ClientSide client, const ListenerContext& context);

}  // namespace portcullis::admin
