// Fuzz target for the admin API's request bodies: the input is parsed as a revocation and as a
// ban body, and as the address of DELETE /bans/<ip>. Invariants: bodies over kMaxBodyBytes are
// refused; an accepted revocation names exactly one of jti+exp or sub+issued_before with
// printable identifiers and positive times, the cut-off at most a day ahead; an accepted ban has
// a duration from 1 s to 366 days; a refusal has a message that never echoes the body; a parsed
// path address prints back to an address that parses to the same value.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz/fuzz_check.hpp"
#include "portcullis/admin/requests.hpp"

namespace {

using namespace portcullis;

constexpr std::int64_t kNow = 1767225600;

bool plain(std::string_view text, bool may_be_empty) {
  if (text.empty()) return may_be_empty;
  if (text.size() > 256) return false;
  for (const char c : text)
    if (c <= 0x20 || c >= 0x7f) return false;
  return true;
}

void check_error(const admin::BodyError& error, std::string_view body) {
  FUZZ_CHECK(!error.message.empty());
  // Only a body that looks like an object could be echoed (the fixed messages hold no '{').
  if (body.starts_with('{')) FUZZ_CHECK(error.message.find(body) == std::string::npos);
  FUZZ_CHECK(error.message.find('{') == std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);

  const auto revocation = admin::parse_revocation(body, kNow);
  if (const auto* error = std::get_if<admin::BodyError>(&revocation)) {
    check_error(*error, body);
  } else {
    FUZZ_CHECK(body.size() <= admin::kMaxBodyBytes);
    const auto& request = std::get<admin::RevocationRequest>(revocation);
    if (const auto* token = std::get_if<admin::TokenRevocation>(&request)) {
      FUZZ_CHECK(plain(token->jti, false) && plain(token->issuer, true) && token->exp > 0);
    } else {
      const auto& subject = std::get<admin::SubjectRevocation>(request);
      FUZZ_CHECK(plain(subject.subject, false) && plain(subject.issuer, true));
      FUZZ_CHECK(subject.issued_before > 0 && subject.issued_before <= kNow + 24 * 3600);
    }
  }

  const auto ban = admin::parse_ban(body);
  if (const auto* error = std::get_if<admin::BodyError>(&ban)) {
    check_error(*error, body);
  } else {
    FUZZ_CHECK(body.size() <= admin::kMaxBodyBytes);
    const auto& request = std::get<admin::BanRequest>(ban);
    FUZZ_CHECK(request.duration >= std::chrono::seconds(1));
    FUZZ_CHECK(request.duration <= std::chrono::hours(24 * 366));
    FUZZ_CHECK(plain(request.reason, false));
    const auto reparsed = core::IpAddress::parse(request.ip.to_string());
    FUZZ_CHECK(reparsed && *reparsed == request.ip);
  }

  if (const auto ip = admin::ban_path_ip(body)) {
    FUZZ_CHECK(body.starts_with("/bans/"));
    const std::string text = ip->to_string();
    const auto reparsed = admin::ban_path_ip("/bans/" + text);
    FUZZ_CHECK(reparsed && *reparsed == *ip);
  }
  return 0;
}
