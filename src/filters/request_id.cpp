#include "portcullis/filters/request_id.hpp"

#include <openssl/rand.h>

#include <chrono>
#include <random>

namespace portcullis::filters {
namespace {

constexpr std::uint64_t rotl(std::uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

// splitmix64: spreads a weak fallback seed over the whole state.
std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

RequestIdGenerator::RequestIdGenerator() {
  if (RAND_bytes(reinterpret_cast<unsigned char*>(state_), sizeof state_) != 1) {
    // The CSPRNG should never fail; if it does, ids must still be unique, not secret.
    std::random_device device;
    std::uint64_t seed =
        (static_cast<std::uint64_t>(device()) << 32) ^ device() ^
        static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    for (auto& word : state_)
      word = splitmix64(seed);
  }
  // xoshiro's one forbidden state.
  if ((state_[0] | state_[1] | state_[2] | state_[3]) == 0) state_[0] = 0x9e3779b97f4a7c15ULL;
}

void RequestIdGenerator::next(std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.resize(32);
  char* cursor = out.data();
  for (int word = 0; word < 2; ++word) {
    // xoshiro256**
    std::uint64_t value = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);

    for (int i = 15; i >= 0; --i) {
      cursor[i] = kHex[value & 0xf];
      value >>= 4;
    }
    cursor += 16;
  }
}

bool is_acceptable_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (const char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace portcullis::filters
