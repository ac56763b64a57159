#pragma once
// Reading a secret named by the policy (admin.token_file, state.redis.password_file): the file's
// text without surrounding white space (a trailing newline is not part of the secret). The
// loader has already checked the file readable and not blank.

#include <string>

namespace portcullis::config {

// The secret, or an empty string when the file cannot be read or holds only white space. The
// bytes read beyond the secret are wiped before they are freed.
std::string read_secret_file(const std::string& path);

}  // namespace portcullis::config
