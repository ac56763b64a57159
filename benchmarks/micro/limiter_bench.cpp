// Rate-limit decision cost in the memory backend (one limit, two limits with a subject key,
// under contention), the pure GCRA arithmetic, CIDR rule lookups with 10,000 blocks, and the
// bytes each tracked key costs.

#include <benchmark/benchmark.h>

#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "portcullis/limits/cidr_set.hpp"
#include "portcullis/limits/denied_until.hpp"
#include "portcullis/limits/local_limiter.hpp"
#include "portcullis/limits/login_failures.hpp"

namespace {

using namespace portcullis;
using namespace portcullis::limits;

constexpr std::int64_t kStart = 3'600'000'000;
constexpr std::uint32_t kClients = 100'000;

std::vector<core::IpAddress> client_addresses() {
  std::vector<core::IpAddress> out;
  std::mt19937 random(1);
  for (std::uint32_t i = 0; i < kClients; ++i)
    out.push_back(core::IpAddress::from_v4(random()));
  return out;
}

LocalLimiter& shared_limiter() {
  static LocalLimiter limiter;  // 64 MiB, 64 shards: the defaults
  return limiter;
}

void BM_GcraArithmetic(benchmark::State& state) {
  const GcraLimit limit = GcraLimit::make(100, std::chrono::seconds(1), 200);
  std::int64_t tat = 0;
  std::int64_t now = kStart;
  for (auto _ : state) {
    const GcraResult result = gcra_decide(limit, now, tat);
    tat = result.new_tat;
    now += 10'000;
    benchmark::DoNotOptimize(result);
  }
}
BENCHMARK(BM_GcraArithmetic);

// One per-IP limit that never trips, cycling over range(0) clients: 1,000 stay in the CPU's
// caches, 100,000 mostly do not.
void BM_DecideOneLimit(benchmark::State& state) {
  static const auto clients = client_addresses();
  LocalLimiter& limiter = shared_limiter();
  const GcraLimit limit = GcraLimit::make(1'000'000, std::chrono::seconds(1), 1'000'000);
  const auto count = static_cast<std::size_t>(state.range(0));
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 7919;
  std::int64_t now = kStart;
  for (auto _ : state) {
    const LimitRequest request{LimitKey::ip(0, clients[i++ % count]), limit};
    benchmark::DoNotOptimize(limiter.decide(std::span(&request, 1), now += 10));
  }
}
BENCHMARK(BM_DecideOneLimit)->Arg(1'000)->Arg(kClients)->Threads(1)->Threads(2);

// A per-IP and a per-user limit, the subject hashed into its key each time as a request would.
void BM_DecideTwoLimits(benchmark::State& state) {
  static const auto clients = client_addresses();
  static const auto subjects = [] {
    std::vector<std::string> out;
    for (std::uint32_t i = 0; i < 10'000; ++i)
      out.push_back("user-" + std::to_string(i) + "@bank");
    return out;
  }();
  LocalLimiter& limiter = shared_limiter();
  const GcraLimit per_ip = GcraLimit::make(1'000'000, std::chrono::seconds(1), 1'000'000);
  const GcraLimit per_user = GcraLimit::make(1'000'000, std::chrono::seconds(1), 1'000'000);
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 7919;
  std::int64_t now = kStart;
  for (auto _ : state) {
    const LimitRequest requests[2] = {
        {LimitKey::ip(1, clients[i % kClients]), per_ip},
        {*LimitKey::subject(2, subjects[i % subjects.size()]), per_user}};
    ++i;
    benchmark::DoNotOptimize(limiter.decide(requests, now += 10));
  }
}
BENCHMARK(BM_DecideTwoLimits)->Threads(1)->Threads(2);

// Keying a subject: two SipHash-2-4 passes over it.
void BM_SubjectKey(benchmark::State& state) {
  const std::string subject = "user-12345@bank";
  for (auto _ : state)
    benchmark::DoNotOptimize(LimitKey::subject(2, subject));
}
BENCHMARK(BM_SubjectKey);

// A client already over its limit, answered from the denied-until cache (the Redis limiter's
// fast path).
void BM_DeniedUntilHit(benchmark::State& state) {
  static const auto clients = client_addresses();
  DeniedUntilCache cache;
  for (std::uint32_t i = 0; i < kClients; ++i) {
    cache.deny(LimitKey::ip(0, clients[i]), kStart + 60'000'000, kStart);
  }
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(cache.check(LimitKey::ip(0, clients[i++ % kClients]), kStart));
  }
}
BENCHMARK(BM_DeniedUntilHit);

void BM_LoginFailure(benchmark::State& state) {
  static const auto clients = client_addresses();
  LoginFailureTracker tracker;
  const LoginPolicy policy{std::chrono::minutes(15), 1'000'000};
  std::size_t i = 0;
  std::int64_t now = kStart;
  for (auto _ : state) {
    benchmark::DoNotOptimize(tracker.record_failure(0, clients[i++ % kClients], policy, now += 10));
  }
}
BENCHMARK(BM_LoginFailure);

// 10,000 blocks: a third IPv4, a third IPv6, a third v4-mapped; half the lookups land in a
// block.
void BM_CidrLookup10k(benchmark::State& state) {
  std::mt19937_64 random(5);
  std::vector<core::Cidr> blocks;
  for (int i = 0; i < 10'000; ++i) {
    core::Cidr block;
    if (i % 3 == 1) {
      for (auto& byte : block.network.bytes)
        byte = static_cast<std::uint8_t>(random());
      block.prefix_length = 32 + static_cast<int>(random() % 97);
    } else {
      block.network = core::IpAddress::from_v4(static_cast<std::uint32_t>(random()));
      block.prefix_length = 112 + static_cast<int>(random() % 17);
    }
    for (int bit = block.prefix_length; bit < 128; ++bit) {
      block.network.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
    }
    blocks.push_back(block);
  }
  const IpRules rules(blocks, {});
  std::vector<core::IpAddress> probes;
  for (int i = 0; i < 4096; ++i) {
    probes.push_back(i % 2 == 0 ? blocks[random() % blocks.size()].network
                                : core::IpAddress::from_v4(static_cast<std::uint32_t>(random())));
  }
  std::size_t i = 0;
  for (auto _ : state)
    benchmark::DoNotOptimize(rules.allowed(probes[i++ & 4095]));
  state.counters["ranges"] = static_cast<double>(rules.deny().range_count());
}
BENCHMARK(BM_CidrLookup10k);

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0;
  std::size_t resident = 0;
  statm >> pages >> resident;
  return resident * 4096;
}

// Tracks 1,000,000 distinct clients in a table with the default 64 MiB bound (room for all of
// them): reserved bytes per key by construction, and resident bytes per key as measured.
void BM_BytesPerTrackedKey(benchmark::State& state) {
  constexpr std::uint32_t kKeys = 1'000'000;
  const GcraLimit limit = GcraLimit::make(10, std::chrono::seconds(1), 20);
  double resident_per_key = 0;
  double reserved_per_key = 0;
  for (auto _ : state) {
    const std::size_t before = resident_bytes();
    LocalLimiter limiter;
    for (std::uint32_t i = 0; i < kKeys; ++i) {
      const LimitRequest request{LimitKey::ip(0, core::IpAddress::from_v4(0x0a000000 + i)), limit};
      limiter.decide(std::span(&request, 1), kStart + i);
    }
    const KeyTableStats stats = limiter.stats();
    resident_per_key = static_cast<double>(resident_bytes() - before) / stats.size;
    reserved_per_key = static_cast<double>(stats.memory_bytes) / stats.capacity;
    state.counters["keys_held"] = static_cast<double>(stats.size);
  }
  state.counters["reserved_bytes_per_key"] = reserved_per_key;
  state.counters["resident_bytes_per_key"] = resident_per_key;
}
BENCHMARK(BM_BytesPerTrackedKey)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
