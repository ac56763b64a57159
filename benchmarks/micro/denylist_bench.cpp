// The request path's revocation check: Mirror::is_revoked for a token that is not revoked (the
// common case, which must cost no allocation) and for one that is, with 100k revocations and
// 10k subject cut-offs held; also the ban check for a client that is not banned.

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "portcullis/state/mirror.hpp"

namespace {

using portcullis::state::Mirror;
using portcullis::state::Revocation;
using portcullis::state::SubjectCutoff;

constexpr std::int64_t kNow = 1'700'000'000;
const std::string kIssuer = "https://idp.bank.example";

std::string jti(std::size_t i) {
  std::string id = "4f1c2a9e-7b3d-4c8e-9a1f-";
  id += std::to_string(100'000'000'000 + i);
  return id;
}

Mirror& populated() {
  static Mirror* mirror = [] {
    auto* m = new Mirror();
    for (std::size_t i = 0; i < 100'000; ++i)
      if (m->apply(Revocation{kIssuer, jti(i), kNow + 3600}, kNow)) std::abort();
    for (std::size_t i = 0; i < 10'000; ++i) {
      std::string subject = "user-";
      subject += std::to_string(i);
      if (m->apply(SubjectCutoff{kIssuer, subject, kNow}, kNow)) std::abort();
    }
    return m;
  }();
  return *mirror;
}

void BM_IsRevokedMiss(benchmark::State& state) {
  const Mirror& mirror = populated();
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < 1024; ++i)
    ids.push_back(jti(1'000'000 + i));  // never revoked
  const std::string subject = "customer-42";
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(mirror.is_revoked(kIssuer, ids[i++ & 1023], subject, kNow - 60, kNow));
  }
}
BENCHMARK(BM_IsRevokedMiss)->ThreadRange(1, 2);

void BM_IsRevokedHit(benchmark::State& state) {
  const Mirror& mirror = populated();
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < 1024; ++i)
    ids.push_back(jti(i * 97));
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(mirror.is_revoked(kIssuer, ids[i++ & 1023], "", kNow - 60, kNow));
  }
}
BENCHMARK(BM_IsRevokedHit);

void BM_BanOfMiss(benchmark::State& state) {
  Mirror mirror;
  for (std::uint32_t i = 0; i < 10'000; ++i)
    if (mirror.apply(portcullis::state::Ban{portcullis::core::IpAddress::from_v4(0x0a000000 + i),
                                            kNow + 600, "manual"},
                     kNow))
      std::abort();
  const auto client = *portcullis::core::IpAddress::parse("2001:db8::1234");
  for (auto _ : state)
    benchmark::DoNotOptimize(mirror.ban_of(client, kNow));
}
BENCHMARK(BM_BanOfMiss);

}  // namespace
