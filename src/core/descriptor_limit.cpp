#include "portcullis/core/descriptor_limit.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <fstream>

namespace portcullis::core {

namespace {

// The kernel's ceiling for descriptors (fs.nr_open); `fallback` when it cannot be read.
rlim_t descriptor_ceiling(rlim_t fallback) {
  std::ifstream nr_open("/proc/sys/fs/nr_open");
  std::uint64_t ceiling = 0;
  return nr_open >> ceiling && ceiling > 0 ? static_cast<rlim_t>(ceiling) : fallback;
}

}  // namespace

DescriptorLimit raise_descriptor_limit(std::uint64_t wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return {};
  // The kernel refuses an unlimited soft limit for descriptors; nr_open is its ceiling.
  const rlim_t ceiling = descriptor_ceiling(limit.rlim_cur);
  if (limit.rlim_max != RLIM_INFINITY && wanted > limit.rlim_max) {
    // Only a privileged process may raise its hard limit; otherwise this fails and changes nothing.
    const rlim_t target = std::min(static_cast<rlim_t>(wanted), ceiling);
    rlimit raised{target, std::max(target, limit.rlim_max)};
    if (target > limit.rlim_max && setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  const rlim_t target = limit.rlim_max == RLIM_INFINITY ? ceiling : limit.rlim_max;
  if (target > limit.rlim_cur) {
    rlimit raised = limit;
    raised.rlim_cur = target;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return {static_cast<std::uint64_t>(limit.rlim_cur), static_cast<std::uint64_t>(limit.rlim_max)};
}

std::uint64_t descriptors_needed(std::uint64_t max_connections, std::uint64_t workers,
                                 std::uint64_t listeners) {
  // Per worker: one listening socket per listener (SO_REUSEPORT), its epoll and wake-up
  // descriptors, and its Redis connection.
  return 2 * max_connections + workers * (listeners + 4) + kDescriptorMargin;
}

std::string descriptor_limit_warning(std::uint64_t max_connections, std::uint64_t needed,
                                     DescriptorLimit limit) {
  if (limit.soft >= needed) return {};
  std::string text = "the file descriptor limit (RLIMIT_NOFILE) is ";
  text += std::to_string(limit.soft);
  if (limit.hard > limit.soft) text += " (hard limit " + std::to_string(limit.hard) + ")";
  text += ", below the " + std::to_string(needed) + " that server.limits.max_connections " +
          std::to_string(max_connections) +
          " may need: connections beyond it fail at accept; raise it (LimitNOFILE= in the "
          "systemd unit, ulimit -n in a shell) or lower max_connections";
  return text;
}

}  // namespace portcullis::core
