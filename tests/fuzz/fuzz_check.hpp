#pragma once
// Shared by the fuzz targets: FUZZ_CHECK aborts with the failed invariant (libFuzzer then saves
// the input as a crash), in every build type.

#include <cstdio>
#include <cstdlib>
#include <string_view>

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

namespace portcullis::fuzz {

// True when `part` lies within `whole` (an empty view is anywhere).
inline bool inside(std::string_view part, std::string_view whole) {
  if (part.empty()) return true;
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

}  // namespace portcullis::fuzz
