#include "portcullis/config/secret_file.hpp"

#include <openssl/crypto.h>

#include <fstream>
#include <iterator>

namespace portcullis::config {

std::string read_secret_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  constexpr const char* kSpace = " \t\r\n";
  const auto first = text.find_first_not_of(kSpace);
  std::string secret;
  if (first != std::string::npos)
    secret = text.substr(first, text.find_last_not_of(kSpace) - first + 1);
  OPENSSL_cleanse(text.data(), text.size());
  return secret;
}

}  // namespace portcullis::config
