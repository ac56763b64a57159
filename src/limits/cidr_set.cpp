#include "portcullis/limits/cidr_set.hpp"

#include <algorithm>

namespace portcullis::limits {
namespace {

struct U128 {
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  friend auto operator<=>(const U128&, const U128&) = default;
};

U128 from_address(const core::IpAddress& address) {
  U128 value;
  for (int i = 0; i < 8; ++i)
    value.high = (value.high << 8) | address.bytes[i];
  for (int i = 8; i < 16; ++i)
    value.low = (value.low << 8) | address.bytes[i];
  return value;
}

// The host mask of a prefix length (bits below the prefix set).
U128 host_mask(int prefix_length) {
  const int host_bits = 128 - std::clamp(prefix_length, 0, 128);
  U128 mask;
  if (host_bits >= 64) {
    mask.low = ~std::uint64_t{0};
    mask.high = host_bits == 128 ? ~std::uint64_t{0} : (std::uint64_t{1} << (host_bits - 64)) - 1;
  } else {
    mask.low = host_bits == 0 ? 0 : (std::uint64_t{1} << host_bits) - 1;
  }
  return mask;
}

U128 plus_one(U128 v) {
  if (++v.low == 0) ++v.high;
  return v;
}
U128 minus_one(U128 v) {
  if (v.low-- == 0) --v.high;
  return v;
}

struct Range {
  U128 first;
  U128 last;
};

// The v4-mapped block ::ffff:0:0/96.
constexpr U128 kMappedFirst{0, 0x0000'ffff'0000'0000ULL};
constexpr U128 kMappedLast{0, 0x0000'ffff'ffff'ffffULL};

void add_block(const core::Cidr& cidr, std::vector<Range>& out) {
  const U128 mask = host_mask(cidr.prefix_length);
  U128 first = from_address(cidr.network);
  first.high &= ~mask.high;
  first.low &= ~mask.low;
  const U128 last{first.high | mask.high, first.low | mask.low};
  // CIDR blocks nest or are disjoint, so an IPv6 block either holds the whole v4-mapped block or
  // none of it; an IPv6 rule (one not written inside it) leaves it out.
  const bool covers_mapped = first <= kMappedFirst && kMappedLast <= last;
  if (!cidr.network.is_v4() && covers_mapped) {
    if (first < kMappedFirst) out.push_back({first, minus_one(kMappedFirst)});
    if (kMappedLast < last) out.push_back({plus_one(kMappedLast), last});
    return;
  }
  out.push_back({first, last});
}

}  // namespace

CidrSet::CidrSet(std::span<const core::Cidr> blocks) {
  std::vector<Range> ranges;
  ranges.reserve(blocks.size() + 1);
  for (const auto& block : blocks)
    add_block(block, ranges);
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.first < b.first; });
  std::vector<Range> merged;
  for (const Range& range : ranges) {
    if (!merged.empty()) {
      Range& back = merged.back();
      const bool touches = back.last == U128{~0ULL, ~0ULL} || range.first <= plus_one(back.last);
      if (touches) {
        back.last = std::max(back.last, range.last);
        continue;
      }
    }
    merged.push_back(range);
  }
  bounds_.reserve(merged.size());
  for (const Range& range : merged) {
    bounds_.push_back({range.first.high, range.first.low, range.last.high, range.last.low});
  }
}

bool CidrSet::contains(const core::IpAddress& address) const {
  const U128 value = from_address(address);
  // Branch-free (comparisons become flags and conditional moves, not jumps a random address
  // would mispredict): first, the range with the greatest first address <= value.
  const auto below = [&](std::uint64_t high, std::uint64_t low) {  // value < (high, low)
    return (value.high < high) | ((value.high == high) & (value.low < low));
  };
  std::size_t count = bounds_.size();
  if (count == 0) return false;
  const Bounds* base = bounds_.data();
  if (below(base->first_high, base->first_low)) return false;
  while (count > 1) {
    const std::size_t half = count / 2;
    base = below(base[half].first_high, base[half].first_low) ? base : base + half;
    count -= half;
  }
  return !(U128{base->last_high, base->last_low} < value);
}

}  // namespace portcullis::limits
