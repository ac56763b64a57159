#pragma once
// File descriptors: at start the process raises its soft RLIMIT_NOFILE to the hard limit, and
// warns when even that is below what server.limits.max_connections may need, so a gateway started
// from a shell with the usual 1024 says so instead of failing accepts under load.

#include <cstdint>
#include <string>

namespace portcullis::core {

struct DescriptorLimit {
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
};

// Raises the soft RLIMIT_NOFILE to the hard limit (to fs.nr_open when the hard limit is
// unlimited) and returns the limits in force afterwards; unchanged when the kernel refuses.
DescriptorLimit raise_descriptor_limit();

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
