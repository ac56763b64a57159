#pragma once
// Loading a policy: YAML text -> validated Policy. Every problem is collected (not just the
// first) and reported as `FILE:LINE:COL: message`; unknown keys, wrong types and out-of-range
// values are errors, so a typo can never silently switch a protection off. Files the policy names
// (certificates, keys, CA bundles, token and password files, JWKS, schemas) are opened and checked
// as part of loading. A policy that loads may still carry warnings: choices an operator should
// know about (for example state kept in this process only), printed by --check and at start.

#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "portcullis/config/policy.hpp"

namespace portcullis::config {

struct Diagnostic {
  std::string file;
  int line = 0;  // 1-based; 0 when the problem has no place in a file (file unreadable)
  int column = 0;
  std::string message;

  std::string to_string() const;  // "FILE:LINE:COL: message"
};

class PolicyError : public std::runtime_error {
 public:
  explicit PolicyError(std::vector<Diagnostic> diagnostics);
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

// Loads and validates the policy at `file`. Relative paths inside it resolve against the file's
// folder. Throws PolicyError with every diagnostic found. When the policy loads and `warnings` is
// given, it receives the warnings (line 0 when nothing in the file is their place).
Policy load_policy(const std::filesystem::path& file, std::vector<Diagnostic>* warnings = nullptr);

// Same, from text already in memory; `file` names it in diagnostics and anchors relative paths.
// `yaml_budget` caps the bytes the YAML library may allocate to build the text's tree (0: the
// default, 64 MiB plus 16 times the text); over it, the load is refused with a diagnostic.
Policy load_policy_text(const std::string& yaml_text, const std::filesystem::path& file,
                        std::vector<Diagnostic>* warnings = nullptr, std::size_t yaml_budget = 0);

}  // namespace portcullis::config
