#pragma once
// Active health checks: for every upstream with a health_check path, each endpoint is asked
// `GET <path>` every interval on a fresh connection; 2xx and 3xx mean healthy, anything else
// (or no answer in time) takes the endpoint out of rotation until a check passes again.

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <vector>

#include "portcullis/upstream/runtime.hpp"

namespace portcullis::upstream {

// The upstreams of the runtime in force, kept alive by the returned pointer.
using CurrentUpstreams = std::function<std::shared_ptr<const std::vector<UpstreamRuntime>>()>;

// Runs the checks on `io` until `draining`; `current` is asked again every round, so reloads add
// and remove checks.
boost::asio::awaitable<void> run_health_checks(boost::asio::io_context& io,
                                               const std::atomic<bool>& draining,
                                               CurrentUpstreams current);

}  // namespace portcullis::upstream
