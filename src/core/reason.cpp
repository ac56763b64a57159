#include "portcullis/core/reason.hpp"

#include <array>

namespace portcullis::core {

std::string_view to_string(Reason reason) {
  static constexpr std::array<std::string_view, kReasonCount> kNames = {
#define PORTCULLIS_REASON_NAME(name) #name,
      PORTCULLIS_REASONS(PORTCULLIS_REASON_NAME)
#undef PORTCULLIS_REASON_NAME
  };
  const auto index = static_cast<std::size_t>(reason);
  return index < kNames.size() ? kNames[index] : std::string_view{"unknown"};
}

}  // namespace portcullis::core
