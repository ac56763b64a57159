// Fuzz target for the chunked decoder: the input is a chunked body, decoded whole and in pieces of
// 1, 3 and 7 bytes (all must agree), and a completed payload re-framed and decoded again.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/http_checks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  portcullis::fuzz::check_chunked(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
