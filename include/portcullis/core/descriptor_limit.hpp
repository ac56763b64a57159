#pragma once
// File descriptors: at start and on each reload the process raises RLIMIT_NOFILE as far as it may
// towards what server.limits.max_connections may need, and warns when it stays below, so a
// gateway started from a shell with the usual 1024 says so instead of failing accepts under load.

#include <cstdint>
#include <string>

namespace portcullis::core {

struct DescriptorLimit {
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
};

// Raises RLIMIT_NOFILE towards `wanted`: the soft limit to the hard limit, and with the
// privilege to (CAP_SYS_RESOURCE, e.g. started as root) both up to `wanted` when the hard limit
// is lower (never past fs.nr_open), as nginx's worker_rlimit_nofile does. Returns the limits in
// force afterwards; unchanged when the kernel refuses.
DescriptorLimit raise_descriptor_limit(std::uint64_t wanted = 0);

// Descriptors a process may need at max_connections: two per connection (the client's and an
// upstream connection), plus per worker its listening sockets and event descriptors, plus a
// fixed margin for logs, the admin listener, Redis, health checks and the standard streams.
inline constexpr std::uint64_t kDescriptorMargin = 64;
std::uint64_t descriptors_needed(std::uint64_t max_connections, std::uint64_t workers,
                                 std::uint64_t listeners);

// The warning to give when `limit.soft` is below `needed`; empty when it is not.
std::string descriptor_limit_warning(std::uint64_t max_connections, std::uint64_t needed,
                                     DescriptorLimit limit);

}  // namespace portcullis::core
