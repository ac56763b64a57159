// Fuzz target for the policy loader: any bytes as YAML text, loaded as <folder>/policy.yaml where
// the folder holds one small JSON schema (schemas/s.json) and one token file (admin.token) for
// the policy to name. A PolicyError is the expected answer to a bad file: it must carry at least
// one diagnostic, each naming the file with a non-negative place and a message. Any other
// exception, a crash, or an allocation past the fuzzer's limits is a finding.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "fuzz/fuzz_check.hpp"
#include "portcullis/config/loader.hpp"

namespace {

namespace fs = std::filesystem;

const fs::path& folder() {
  static const fs::path dir = [] {
    const fs::path d = fs::temp_directory_path() / "portcullis-policy-fuzz";
    std::error_code ec;
    fs::create_directories(d / "schemas", ec);
    std::ofstream(d / "schemas" / "s.json")
        << R"({"type":"object","properties":{"user":{"type":"string","maxLength":64}}})";
    std::ofstream(d / "admin.token") << "0123456789abcdef0123456789abcdef\n";
    fs::permissions(d / "admin.token", fs::perms::owner_read | fs::perms::owner_write, ec);
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const fs::path file = folder() / "policy.yaml";
  try {
    (void)portcullis::config::load_policy_text(text, file);
  } catch (const portcullis::config::PolicyError& error) {
    FUZZ_CHECK(!error.diagnostics().empty());
    for (const auto& d : error.diagnostics()) {
      FUZZ_CHECK(d.file == file.string());
      FUZZ_CHECK(d.line >= 0 && d.column >= 0);
      FUZZ_CHECK(!d.message.empty());
    }
  }
  return 0;
}
