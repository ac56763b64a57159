#pragma once
// IP rules: `deny` and `allow` CIDR lists answered per connection at accept, before TLS, so the
// lookup must stay cheap with thousands of rules. Also serves any other "is this address in
// these blocks" question (trusted proxies).
//
// Representation: every CIDR is a range [first, last] of the 128-bit address space (IPv4 as
// ::ffff:a.b.c.d, core/ip.hpp); the ranges are sorted and overlapping or adjacent ones merged, so
// a lookup is one binary search over disjoint ranges: ~log2(n) comparisons of two 64-bit words
// in one flat array, whatever the mix of prefix lengths. A binary trie would chase up to 128
// pointers, and hash sets per prefix length need one probe per distinct length; both use more
// memory. Built once, immutable afterwards (a reload builds a new set), so readers on every
// worker share it without locks.
//
// Families: IPv4 rules match IPv4 clients, whether they arrive as IPv4 or as v4-mapped IPv6
// (::ffff:a.b.c.d), which are the same address here. An IPv6 rule does not reach into the
// v4-mapped block unless it is written inside it: `::/0` means "every IPv6 client", as in
// nginx and HAProxy, and denies no IPv4 client.

#include <cstdint>
#include <span>
#include <vector>

#include "portcullis/core/ip.hpp"

namespace portcullis::limits {

class CidrSet {
 public:
  CidrSet() = default;
  explicit CidrSet(std::span<const core::Cidr> blocks);

  bool contains(const core::IpAddress& address) const;
  bool empty() const { return bounds_.empty(); }
  std::size_t range_count() const { return bounds_.size(); }  // after merging
  std::size_t memory_bytes() const { return bounds_.size() * sizeof(Bounds); }

 private:
  // One merged range [first, last], each address as its high and low 64-bit halves; 32 bytes,
  // so a probe reads one cache line.
  struct Bounds {
    std::uint64_t first_high, first_low, last_high, last_low;
  };
  std::vector<Bounds> bounds_;  // sorted, disjoint, not adjacent
};

class IpRules {
 public:
  IpRules() = default;  // allows everyone
  IpRules(std::span<const core::Cidr> deny, std::span<const core::Cidr> allow)
      : deny_(deny), allow_(allow), allow_listed_(!allow.empty()) {}

  // Deny wins; a non-empty allow list admits only the addresses it covers.
  bool allowed(const core::IpAddress& address) const {
    if (deny_.contains(address)) return false;
    return !allow_listed_ || allow_.contains(address);
  }
  const CidrSet& deny() const { return deny_; }
  const CidrSet& allow() const { return allow_; }

 private:
  CidrSet deny_;
  CidrSet allow_;
  bool allow_listed_ = false;
};

}  // namespace portcullis::limits
