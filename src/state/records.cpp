#include "portcullis/state/records.hpp"

namespace portcullis::state {
namespace {

bool valid_time(std::int64_t seconds) {
  return seconds > 0 && seconds <= kMaxUnixSeconds;
}

class StateCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "portcullis.state"; }
  std::string message(int value) const override {
    switch (static_cast<StateError>(value)) {
      case StateError::capacity_exceeded:
        return "state table full";
      case StateError::invalid_record:
        return "invalid state record";
      case StateError::queue_full:
        return "too many state writes pending";
      case StateError::store_failed:
        return "durable state store failed to commit";
      case StateError::stopped:
        return "state backend stopped";
    }
    return "unknown state error";
  }
};

}  // namespace

bool is_valid(const Revocation& revocation) {
  return !revocation.jti.empty() && revocation.jti.size() <= kMaxJtiBytes &&
         revocation.issuer.size() <= kMaxIssuerBytes && valid_time(revocation.exp);
}

bool is_valid(const SubjectCutoff& cutoff) {
  return !cutoff.subject.empty() && cutoff.subject.size() <= kMaxSubjectBytes &&
         cutoff.issuer.size() <= kMaxIssuerBytes && valid_time(cutoff.issued_before);
}

bool is_valid(const Ban& ban) {
  return ban.reason.size() <= kMaxReasonBytes && valid_time(ban.until);
}

std::int64_t Retention::keep_until(const Revocation& revocation) const {
  return revocation.exp + after_exp.count();
}

std::int64_t Retention::keep_until(const SubjectCutoff& cutoff) const {
  return cutoff.issued_before + max_token_lifetime.count() + after_exp.count();
}

const std::error_category& state_category() {
  static const StateCategory category;
  return category;
}

std::error_code make_error_code(StateError error) {
  return {static_cast<int>(error), state_category()};
}

}  // namespace portcullis::state
