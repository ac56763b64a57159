#pragma once
// Files a policy names, opened and checked at load so that --check catches what would otherwise
// fail when a listener starts or a request arrives: PEM certificates and keys (parsed, matching,
// acceptable to OpenSSL's security level), CA bundles, token and secret files, key files, JSON
// schemas, log files and the folders new files go into. Each check reports at the key that
// named the file.

#include <filesystem>
#include <optional>
#include <string>

#include "portcullis/config/policy.hpp"
#include "yaml_reader.hpp"

namespace portcullis::config::files {

// The whole file (at most 16 MiB), or nothing with `error` set to a sentence naming the path.
std::optional<std::string> read(const std::filesystem::path& path, std::string& error);

// The certificate chain parses, the key parses without a passphrase and matches the leaf, and
// OpenSSL's security level accepts the leaf.
void check_certificate_pair(Reader& reader, const CertificateFiles& files, const Entry& cert,
                            const Entry& key);
// A PEM bundle holding at least one certificate, each of them valid.
void check_ca_bundle(Reader& reader, const std::string& path, const Entry& at);
// A secret kept in a file (bearer token, password): readable and not blank.
void check_secret_file(Reader& reader, const std::string& path, const Entry& at);
// A file the gateway reads later (JWKS, HMAC secret): readable and not empty.
void check_nonempty_file(Reader& reader, const std::string& path, const Entry& at);
// A file the gateway reads later (JSON schema): readable.
void check_readable_file(Reader& reader, const std::string& path, const Entry& at);
// A file the gateway creates or appends to: not a folder, and its folder exists.
void check_writable_target(Reader& reader, const std::string& path, const Entry& at);
// True when OpenSSL knows at least one cipher of a TLS 1.2 cipher list.
bool cipher_list_known(const std::string& ciphers);

}  // namespace portcullis::config::files
