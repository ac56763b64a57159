// Fuzz target for path normalisation: the input (prefixed with '/' when it does not start with
// one, cut at the query) is normalised; an accepted path must obey the documented rules and be a
// fixed point of normalisation.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/http_checks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  input = input.substr(0, input.find('?'));
  std::string path;
  if (!input.starts_with('/')) path = "/";
  path.append(input);
  portcullis::fuzz::check_path(path);
  return 0;
}
