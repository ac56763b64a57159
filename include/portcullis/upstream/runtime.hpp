#pragma once
// An upstream compiled for serving: its policy settings, its endpoints resolved once at load time
// with their shared health and their pool ids, and its TLS client context. Part of a net Runtime
// (immutable; a reload builds new ones), read by the forwarder and the health checker.

#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <memory>
#include <vector>

#include "portcullis/config/policy.hpp"
#include "portcullis/io/tls_context.hpp"
#include "portcullis/upstream/endpoint_health.hpp"

namespace portcullis::upstream {

struct EndpointRuntime {
  config::HostPort address;
  boost::asio::ip::tcp::endpoint resolved;
  std::size_t id = 0;                // index of this endpoint's pool in every worker
  EndpointHealth* health = nullptr;  // shared by all workers
};

struct UpstreamRuntime {
  const config::Upstream* settings = nullptr;
  std::vector<EndpointRuntime> endpoints;
  std::unique_ptr<io::ClientTlsContext> tls;  // when settings->tls.enabled
};

}  // namespace portcullis::upstream
