#include "portcullis/config/loader.hpp"
#include "portcullis/core/text.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <tuple>

#include "portcullis/config/units.hpp"

namespace portcullis::config {
namespace {

namespace fs = std::filesystem;

// Keys of protections this build does not enforce yet. They are refused rather than ignored: a
// policy that asks for JWT auth or rate limits must not load and then run without them. To lift
// one, remove its row, add the key to its section's allowed keys and parse it.
struct NotSupportedYet {
  std::string_view scope;  // "top" = the top level, "route" = an entry of `routes`
  std::string_view key;
};
constexpr NotSupportedYet kNotSupportedYet[] = {
    {"top", "state"},        {"top", "rate_limits"},        {"top", "ip_rules"},
    {"route", "rate_limit"}, {"route", "login_protection"},
};
constexpr std::string_view kRefusedNote =
    "not supported yet by this build (refused so that a protection is never silently off)";

// Headers a policy may not set on every response: they frame the message or belong to one hop,
// so a fixed value would corrupt responses or open a smuggling path.
constexpr std::string_view kUnsettableHeaders[] = {
    "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
    "trailer",        "proxy-connection",  "host"};

constexpr std::size_t kMaxFileBytes = 16 * 1024 * 1024;
constexpr std::size_t kMaxNameLength = 64;

// ---- text helpers ------------------------------------------------------------------------------

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// RFC 9110 token: header names and methods.
bool is_token(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), is_tchar);
}

// RFC 9110 field-value: visible characters, spaces, tabs and obs-text; never CR, LF or NUL.
bool is_field_value(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return (byte < 0x20 && byte != '\t') || byte == 0x7f;
  });
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (auto& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}
bool is_alnum(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Upstream and route names end up in logs and metric labels: keep them plain.
bool is_name(std::string_view text) {
  return !text.empty() && text.size() <= kMaxNameLength &&
         std::all_of(text.begin(), text.end(),
                     [](char c) { return is_alnum(c) || c == '_' || c == '-' || c == '.'; });
}

// A DNS name (RFC 1123 labels). A last label made of digits only is refused, so a mistyped IPv4
// address such as 10.0.0.300 is not taken for a name.
bool is_host_name(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  std::string_view last;
  while (true) {
    const auto dot = text.find('.');
    const auto label = text.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    if (!std::all_of(label.begin(), label.end(), [](char c) { return is_alnum(c) || c == '-'; })) {
      return false;
    }
    last = label;
    if (dot == std::string_view::npos) break;
    text.remove_prefix(dot + 1);
  }
  return !std::all_of(last.begin(), last.end(), is_digit);
}

// Quotes a value for a message; control characters are escaped so a policy cannot write
// terminal escapes into the operator's console.
std::string quote(std::string_view text) {
  constexpr std::size_t kShown = 60;
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < kShown; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out += text[i];
    }
  }
  if (text.size() > kShown) out += "...";
  return out + "'";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return node.Tag() == "?" ? quote(node.Scalar()) : "the quoted string " + quote(node.Scalar());
    default:
      return "nothing";
  }
}

std::string range_text(std::uint64_t min, std::uint64_t max) {
  if (max == std::numeric_limits<std::uint64_t>::max()) {
    return "must be at least " + std::to_string(min);
  }
  if (min == max) return "must be " + std::to_string(min);
  return "must be between " + std::to_string(min) + " and " + std::to_string(max);
}

// A path as the router compares it: normalised (see http/path.hpp), so a route written
// differently would never match anything. Returns an explanation, or empty when fine.
std::string route_path_problem(std::string_view path) {
  if (path.empty() || path.front() != '/') return "must start with '/'";
  for (std::size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '%') {
      if (i + 2 >= path.size() || !is_hex(path[i + 1]) || !is_hex(path[i + 2])) {
        return "has a malformed percent escape";
      }
      const std::string hex = upper(path.substr(i + 1, 2));
      if (hex != path.substr(i + 1, 2)) return "percent escapes must use upper-case hex";
      const int value = std::stoi(hex, nullptr, 16);
      const char decoded = static_cast<char>(value);
      if (is_alnum(decoded) || decoded == '-' || decoded == '.' || decoded == '_' ||
          decoded == '~') {
        return "encodes an unreserved character; requests are matched decoded, write it as is";
      }
      if (hex == "2F" || hex == "5C" || hex == "00" || hex == "25") {
        return "has an escape that requests are refused for (%2F, %5C, %00, %25)";
      }
      i += 2;
      continue;
    }
    if (is_alnum(c) || std::string_view("-._~!$&'()*+,;=:@/").find(c) != std::string_view::npos) {
      continue;
    }
    if (c == '?' || c == '#') return "must not contain a query or fragment";
    return "has a character that must be percent-encoded: " + quote(std::string_view(&c, 1));
  }
  if (path.find("//") != std::string_view::npos) {
    return "has an empty segment ('//'); requests are matched with slashes merged";
  }
  std::string_view rest = path.substr(1);
  while (true) {
    const auto slash = rest.find('/');
    const auto segment = rest.substr(0, slash);
    if (segment == "." || segment == "..") {
      return "has a '.' or '..' segment; requests are matched with those resolved";
    }
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return {};
}

// ---- files and OpenSSL -------------------------------------------------------------------------

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

std::optional<std::string> read_file(const fs::path& path, std::string& error) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec) {
    error = "cannot read " + quote(path.string()) + ": " + ec.message();
    return std::nullopt;
  }
  if (!fs::is_regular_file(status)) {
    error = quote(path.string()) + " is not a regular file";
    return std::nullopt;
  }
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) {
    error = "cannot read " + quote(path.string()) + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::string content;
  char buffer[8192];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) {
    content.append(buffer, got);
    if (content.size() > kMaxFileBytes) {
      error = quote(path.string()) + " is too large";
      return std::nullopt;
    }
  }
  if (std::ferror(file.get())) {
    error = "cannot read " + quote(path.string()) + ": " + std::strerror(errno);
    return std::nullopt;
  }
  return content;
}

// Never prompt on the terminal for a passphrase: a key must be usable unattended.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

BioPtr memory_bio(const std::string& data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

bool is_end_of_pem(unsigned long error) {
  return ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE;
}

// Every certificate of a PEM bundle, in order; empty with `error` set when there is none or one
// is damaged.
std::vector<X509Ptr> read_certificates(const std::string& pem, std::string& error) {
  std::vector<X509Ptr> certs;
  const BioPtr bio = memory_bio(pem);
  ERR_clear_error();
  while (true) {
    X509* cert = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr);
    if (cert == nullptr) {
      const unsigned long reason = ERR_peek_last_error();
      ERR_clear_error();
      if (!certs.empty() && is_end_of_pem(reason)) break;
      error = certs.empty() ? "no PEM certificate found"
                            : "certificate " + std::to_string(certs.size() + 1) +
                                  " of the bundle is not a valid PEM certificate";
      certs.clear();
      return certs;
    }
    certs.emplace_back(cert);
  }
  return certs;
}

std::string openssl_reason() {
  const unsigned long error = ERR_peek_last_error();
  ERR_clear_error();
  const char* reason = ERR_reason_error_string(error);
  return reason ? reason : "unknown reason";
}

struct Entry {
  YAML::Node key;  // undefined for sequence items
  YAML::Node value;
  std::string path;  // "server.limits.max_connections", "routes[2]"
};

// A mapping whose keys were checked: known, unique, plain.
class Section {
 public:
  Section(YAML::Node node, std::string path) : node_(std::move(node)), path_(std::move(path)) {}

  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  const std::vector<std::pair<std::string, Entry>>& entries() const { return entries_; }

  const Entry* find(std::string_view key) const {
    for (const auto& [name, entry] : entries_) {
      if (name == key) return &entry;
    }
    return nullptr;
  }
  std::string child(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  void add(std::string key, Entry entry) {
    entries_.emplace_back(std::move(key), std::move(entry));
  }

 private:
  YAML::Node node_;
  std::string path_;
  std::vector<std::pair<std::string, Entry>> entries_;
};

// A listening address and where it was written (a null mark for the admin default).
struct BoundAddress {
  HostPort address;
  std::string path;
  YAML::Mark mark;
};

class Loader {
 public:
  Loader(std::string display_file, fs::path base_dir)
      : file_(std::move(display_file)), base_dir_(std::move(base_dir)) {}

  Policy load(const std::string& text, std::string source_file);

 private:
  // ---- diagnostics
  void error(const YAML::Mark& mark, std::string message) {
    const bool placed = !mark.is_null() && mark.line >= 0;
    diagnostics_.push_back(
        {file_, placed ? mark.line + 1 : 0, placed ? mark.column + 1 : 0, std::move(message)});
  }
  // Points at the value, or at its key when the value is missing or empty (a null value's mark
  // is wherever the next token starts).
  void error(const Entry& entry, std::string message) { error(mark_of(entry), std::move(message)); }
  static YAML::Mark mark_of(const Entry& entry) {
    if (entry.value.IsDefined() && !entry.value.IsNull() && !entry.value.Mark().is_null()) {
      return entry.value.Mark();
    }
    if (entry.key.IsDefined()) return entry.key.Mark();
    return entry.value.IsDefined() ? entry.value.Mark() : YAML::Mark::null_mark();
  }
  Location location_of(const Entry& entry) const {
    const auto mark = mark_of(entry);
    if (mark.is_null()) return {file_, 0, 0};
    return {file_, mark.line + 1, mark.column + 1};
  }

  // ---- structure
  std::optional<Section> section(const Entry& entry,
                                 std::initializer_list<std::string_view> allowed,
                                 std::string_view scope = {}, bool any_key = false);
  std::vector<Entry> items(const Entry& entry);

  // ---- scalars
  std::optional<std::string> string(const Entry& entry);
  std::optional<bool> boolean(const Entry& entry);
  std::optional<std::uint64_t> whole(const Entry& entry, std::uint64_t min, std::uint64_t max);
  std::optional<std::uint64_t> size(const Entry& entry);
  std::optional<Duration> duration(const Entry& entry, bool allow_zero = false);
  template <typename T>
  std::optional<T> choice(const Entry& entry,
                          std::initializer_list<std::pair<std::string_view, T>> choices);
  std::optional<std::string> file_path(const Entry& entry, bool allow_empty);
  std::optional<HostPort> host_port(const Entry& entry, bool allow_port_zero);
  std::optional<std::string> header_name(const Entry& entry);

  // Applies `read` to `key` of `section` when it is present and stores a valid result.
  template <typename T, typename Read>
  void set(const Section& section, std::string_view key, T& out, Read read) {
    if (const Entry* entry = section.find(key)) {
      if (auto value = read(*entry)) out = static_cast<T>(*value);
    }
  }

  // ---- files
  void check_certificate_pair(const CertificateFiles& files, const Entry& cert, const Entry& key);
  void check_ca_bundle(const std::string& path, const Entry& at);
  void check_token_file(const std::string& path, const Entry& at);
  void check_log_target(const std::string& target, const Entry& at);

  // ---- sections
  void parse_server(const Entry& entry, ServerSettings& server);
  void parse_listeners(const Entry& entry, std::vector<Listener>& listeners);
  std::optional<ListenerTls> parse_listener_tls(const Entry& entry);
  void parse_admin(const Entry& entry, AdminSettings& admin);
  void parse_limits(const Entry& entry, Limits& limits);
  void parse_logging(const Entry& entry, LoggingSettings& logging);
  void parse_upstreams(const Entry& entry, std::vector<Upstream>& upstreams);
  Upstream parse_upstream(const Entry& entry, std::string name);
  void parse_headers(const Entry& entry, HeaderSettings& headers);
  void parse_jwt_providers(const Entry& entry, std::vector<JwtProvider>& providers);
  JwtProvider parse_jwt_provider(const Entry& entry, std::string name);
  std::optional<RouteAuth> parse_route_auth(const Entry& entry, const Policy& policy);
  std::optional<RouteValidation> parse_route_validation(const Entry& entry, const Policy& policy);
  void parse_routes(const Entry& entry, Policy& policy);
  std::optional<Route> parse_route(const Entry& entry, const Policy& policy);
  void check_address_overlaps();

  std::string file_;
  fs::path base_dir_;
  std::vector<Diagnostic> diagnostics_;
  std::vector<BoundAddress> bound_;  // listener addresses in file order, then the admin one
  std::optional<BoundAddress> admin_bound_;
};

std::optional<Section> Loader::section(const Entry& entry,
                                       std::initializer_list<std::string_view> allowed,
                                       std::string_view scope, bool any_key) {
  const std::string where = entry.path.empty() ? "at the top level" : "in " + entry.path;
  if (!entry.value.IsMap()) {
    error(entry, (entry.path.empty() ? std::string("the policy") : entry.path) +
                     ": expected a mapping (key: value), got " + describe(entry.value));
    return std::nullopt;
  }
  Section result(entry.value, entry.path);
  std::vector<std::pair<std::string, int>> seen;  // every key so far and its line, for duplicates
  for (auto it = entry.value.begin(); it != entry.value.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      error(key.Mark(), "keys " + where + " must be plain names, got " + describe(key));
      continue;
    }
    const std::string name = key.Scalar();
    const auto first = std::find_if(seen.begin(), seen.end(),
                                    [&](const auto& other) { return other.first == name; });
    if (first != seen.end()) {
      error(key.Mark(), "duplicate key " + quote(name) + " " + where + " (first at line " +
                            std::to_string(first->second) + ")");
      continue;
    }
    seen.emplace_back(name, key.Mark().line + 1);
    const bool refused = std::any_of(
        std::begin(kNotSupportedYet), std::end(kNotSupportedYet),
        [&](const NotSupportedYet& row) { return row.scope == scope && row.key == name; });
    if (refused) {
      error(key.Mark(), result.child(name) + ": " + std::string(kRefusedNote));
      continue;
    }
    if (!any_key && std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string message = "unknown key " + quote(name) + " " + where;
      std::string_view best;
      std::size_t best_distance = 3;  // suggest only near misses
      for (const auto candidate : allowed) {
        const auto distance = edit_distance(core::ascii_lowercase(name), candidate);
        if (distance < best_distance) {
          best = candidate;
          best_distance = distance;
        }
      }
      if (!best.empty()) message += "; did you mean " + quote(best) + "?";
      error(key.Mark(), std::move(message));
      continue;
    }
    result.add(name, Entry{key, it->second, result.child(name)});
  }
  return result;
}

std::vector<Entry> Loader::items(const Entry& entry) {
  std::vector<Entry> result;
  if (!entry.value.IsSequence()) {
    error(entry, entry.path + ": expected a list, got " + describe(entry.value));
    return result;
  }
  std::size_t index = 0;
  for (auto it = entry.value.begin(); it != entry.value.end(); ++it, ++index) {
    result.push_back({YAML::Node(YAML::NodeType::Undefined), *it,
                      entry.path + "[" + std::to_string(index) + "]"});
  }
  return result;
}

std::optional<std::string> Loader::string(const Entry& entry) {
  if (entry.value.IsScalar()) return entry.value.Scalar();
  std::string message = entry.path + ": expected a string, got " + describe(entry.value);
  if (entry.value.IsNull()) message += " (write \"\" for an empty value)";
  error(entry, std::move(message));
  return std::nullopt;
}

std::optional<bool> Loader::boolean(const Entry& entry) {
  if (entry.value.IsScalar() && entry.value.Tag() == "?") {
    const auto& text = entry.value.Scalar();
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
  }
  error(entry, entry.path + ": expected true or false, got " + describe(entry.value));
  return std::nullopt;
}

std::optional<std::uint64_t> Loader::whole(const Entry& entry, std::uint64_t min,
                                           std::uint64_t max) {
  const auto& value = entry.value;
  if (!value.IsScalar() || value.Tag() != "?") {
    error(entry, entry.path + ": expected a whole number, got " + describe(value));
    return std::nullopt;
  }
  std::string_view text = value.Scalar();
  const bool negative = text.starts_with('-');
  if (negative) text.remove_prefix(1);
  if (text.empty() || !std::all_of(text.begin(), text.end(), is_digit)) {
    error(entry, entry.path + ": expected a whole number, got " + describe(value));
    return std::nullopt;
  }
  std::uint64_t number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (negative || ec != std::errc{} || end != text.data() + text.size() || number < min ||
      number > max) {
    error(entry, entry.path + ": " + range_text(min, max) + ", got " + quote(value.Scalar()));
    return std::nullopt;
  }
  return number;
}

std::optional<std::uint64_t> Loader::size(const Entry& entry) {
  if (entry.value.IsScalar()) {
    const auto parsed = parse_size(entry.value.Scalar());
    if (parsed && *parsed > 0) return parsed;
    if (parsed) {
      error(entry, entry.path + ": must be greater than 0");
      return std::nullopt;
    }
  }
  error(entry,
        entry.path + ": expected a size (4096, 64KiB, 1MiB, 1GiB), got " + describe(entry.value));
  return std::nullopt;
}

std::optional<Duration> Loader::duration(const Entry& entry, bool allow_zero) {
  if (entry.value.IsScalar()) {
    const auto parsed = parse_duration(entry.value.Scalar());
    if (parsed && (parsed->count() > 0 || allow_zero)) return parsed;
    if (parsed) {
      error(entry, entry.path + ": must be greater than 0");
      return std::nullopt;
    }
  }
  error(entry, entry.path + ": expected a duration with a unit (250ms, 10s, 5m, 1h), got " +
                   describe(entry.value));
  return std::nullopt;
}

template <typename T>
std::optional<T> Loader::choice(const Entry& entry,
                                std::initializer_list<std::pair<std::string_view, T>> choices) {
  if (entry.value.IsScalar()) {
    for (const auto& [name, value] : choices) {
      if (entry.value.Scalar() == name) return value;
    }
  }
  std::string names;
  for (const auto& [name, value] : choices) {
    if (!names.empty()) names += " | ";
    names += name;
  }
  error(entry, entry.path + ": expected one of " + names + ", got " + describe(entry.value));
  return std::nullopt;
}

std::optional<std::string> Loader::file_path(const Entry& entry, bool allow_empty) {
  const auto text = string(entry);
  if (!text) return std::nullopt;
  if (text->empty()) {
    if (allow_empty) return std::string();
    error(entry, entry.path + ": must name a file");
    return std::nullopt;
  }
  if (text->find('\0') != std::string::npos) {
    error(entry, entry.path + ": file name contains a NUL byte");
    return std::nullopt;
  }
  fs::path path(*text);
  if (path.is_relative()) path = base_dir_ / path;
  return path.lexically_normal().string();
}

std::optional<HostPort> Loader::host_port(const Entry& entry, bool allow_port_zero) {
  const auto text = string(entry);
  if (!text) return std::nullopt;
  const auto fail = [&](const std::string& why) -> std::optional<HostPort> {
    error(entry, entry.path + ": " + quote(*text) + " " + why);
    return std::nullopt;
  };
  HostPort result;
  result.text = *text;
  std::string_view rest = *text;
  std::string_view port;
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return fail("has no closing ']'");
    result.host = std::string(rest.substr(1, close - 1));
    const auto address = core::IpAddress::parse(result.host);
    if (!address || address->is_v4() || result.host.find(':') == std::string::npos) {
      return fail("is not an IPv6 address in brackets");
    }
    if (close + 1 >= rest.size() || rest[close + 1] != ':') {
      return fail("needs a port: host:port, for example [::1]:8443");
    }
    port = rest.substr(close + 2);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      return fail("needs a port: host:port, for example 0.0.0.0:8443");
    }
    result.host = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
    if (result.host.find(':') != std::string::npos) {
      return fail("is ambiguous: write IPv6 addresses in brackets, as [::1]:8443");
    }
    if (result.host.empty()) return fail("has no host (use 0.0.0.0 or [::] for every address)");
    if (!core::IpAddress::parse(result.host) && !is_host_name(result.host)) {
      return fail("does not start with an IP address or a host name");
    }
  }
  std::uint16_t number = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit) ||
      ec != std::errc{} || end != port.data() + port.size()) {
    return fail(allow_port_zero ? "has a bad port: must be between 0 and 65535"
                                : "has a bad port: must be between 1 and 65535");
  }
  if (number == 0 && !allow_port_zero) return fail("has port 0: must be between 1 and 65535");
  result.port = number;
  return result;
}

std::optional<std::string> Loader::header_name(const Entry& entry) {
  const auto text = string(entry);
  if (!text) return std::nullopt;
  if (!is_token(*text)) {
    error(entry, entry.path + ": " + quote(*text) + " is not a valid header name");
    return std::nullopt;
  }
  return text;
}

// ---- files -------------------------------------------------------------------------------------

void Loader::check_certificate_pair(const CertificateFiles& files, const Entry& cert_entry,
                                    const Entry& key_entry) {
  std::string problem;
  X509Ptr leaf;
  if (const auto pem = read_file(files.cert_file, problem)) {
    auto chain = read_certificates(*pem, problem);
    if (chain.empty()) {
      error(cert_entry, cert_entry.path + ": " + problem + " in " + quote(files.cert_file));
    } else {
      leaf = std::move(chain.front());
    }
  } else {
    error(cert_entry, cert_entry.path + ": " + problem);
  }

  KeyPtr key;
  if (const auto pem = read_file(files.key_file, problem)) {
    const BioPtr bio = memory_bio(*pem);
    ERR_clear_error();
    key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
    ERR_clear_error();
    if (!key) {
      const bool encrypted = pem->find("ENCRYPTED") != std::string::npos;
      error(key_entry, key_entry.path + ": " +
                           (encrypted ? "private key in " + quote(files.key_file) +
                                            " is encrypted; the gateway needs it without a "
                                            "passphrase"
                                      : "no PEM private key found in " + quote(files.key_file)));
    }
  } else {
    error(key_entry, key_entry.path + ": " + problem);
  }
  if (!leaf || !key) return;

  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    ERR_clear_error();
    error(key_entry, key_entry.path + ": private key does not match the certificate in " +
                         quote(files.cert_file));
    return;
  }
  // Fail now, not when the listener starts, on certificates OpenSSL's security level refuses
  // (small keys, weak signature digests).
  const SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  ERR_clear_error();
  if (ctx && SSL_CTX_use_certificate(ctx.get(), leaf.get()) != 1) {
    error(cert_entry, cert_entry.path + ": certificate refused by OpenSSL: " + openssl_reason());
  }
}

void Loader::check_ca_bundle(const std::string& path, const Entry& at) {
  std::string problem;
  const auto pem = read_file(path, problem);
  if (!pem) {
    error(at, at.path + ": " + problem);
    return;
  }
  if (read_certificates(*pem, problem).empty()) {
    error(at, at.path + ": " + problem + " in " + quote(path));
  }
}

void Loader::check_token_file(const std::string& path, const Entry& at) {
  std::string problem;
  const auto token = read_file(path, problem);
  if (!token) {
    error(at, at.path + ": " + problem);
    return;
  }
  const bool blank = std::all_of(token->begin(), token->end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  });
  if (blank) error(at, at.path + ": " + quote(path) + " is empty");
}

void Loader::check_log_target(const std::string& target, const Entry& at) {
  const fs::path path(target);
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    error(at, at.path + ": " + quote(target) + " is a folder, not a file");
    return;
  }
  const auto folder = path.parent_path();
  if (!fs::is_directory(folder, ec)) {
    error(at, at.path + ": folder " + quote(folder.string()) + " does not exist");
  }
}

// ---- sections ----------------------------------------------------------------------------------

void Loader::parse_server(const Entry& entry, ServerSettings& server) {
  const auto section = this->section(
      entry, {"workers", "listen", "admin", "limits", "trusted_proxies", "request_id"});
  if (!section) return;
  set(*section, "workers", server.workers, [&](const Entry& e) { return whole(e, 0, 1024); });
  if (const Entry* listen = section->find("listen")) {
    parse_listeners(*listen, server.listen);
  } else {
    error(entry, "server.listen: at least one listener is required");
  }
  if (const Entry* admin = section->find("admin")) parse_admin(*admin, server.admin);
  if (const Entry* limits = section->find("limits")) parse_limits(*limits, server.limits);
  if (const Entry* proxies = section->find("trusted_proxies")) {
    server.trusted_proxies.clear();
    for (const auto& item : items(*proxies)) {
      const auto text = string(item);
      if (!text) continue;
      std::string why;
      if (const auto cidr = core::Cidr::parse(*text, &why)) {
        server.trusted_proxies.push_back(*cidr);
      } else {
        error(item, item.path + ": " + quote(*text) + " is not a CIDR block: " + why);
      }
    }
  }
  if (const Entry* request_id = section->find("request_id")) {
    if (const auto fields = this->section(*request_id, {"header", "trust_incoming"})) {
      set(*fields, "header", server.request_id.header,
          [&](const Entry& e) { return header_name(e); });
      set(*fields, "trust_incoming", server.request_id.trust_incoming,
          [&](const Entry& e) { return boolean(e); });
    }
  }
}

// Workers bind with SO_REUSEPORT, so two listeners on one address would not fail to bind: they
// would silently share connections. Overlaps are refused here instead.
void Loader::check_address_overlaps() {
  const auto is_wildcard = [](const core::IpAddress& address) {
    return address == (address.is_v4() ? core::IpAddress::from_v4(0) : core::IpAddress{});
  };
  for (std::size_t i = 0; i < bound_.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      const auto& later = bound_[i];
      const auto& earlier = bound_[j];
      if (later.address.port == 0 || later.address.port != earlier.address.port) continue;
      const auto a = core::IpAddress::parse(later.address.host);
      const auto b = core::IpAddress::parse(earlier.address.host);
      bool overlap = false;
      if (a && b) {
        overlap = a->is_v4() == b->is_v4() && (*a == *b || is_wildcard(*a) || is_wildcard(*b));
      } else {
        overlap = core::ascii_lowercase(later.address.host) ==
                  core::ascii_lowercase(earlier.address.host);
      }
      if (!overlap) continue;
      const bool later_written = !later.mark.is_null();
      const auto& at = later_written ? later : earlier;
      const auto& other = later_written ? earlier : later;
      std::string other_text = other.path + " (" + quote(other.address.text);
      if (!other.mark.is_null()) other_text += ", line " + std::to_string(other.mark.line + 1);
      other_text += other.mark.is_null() ? ", the default)" : ")";
      error(at.mark, at.path + ": " + quote(at.address.text) + " overlaps " + other_text);
      break;
    }
  }
}

void Loader::parse_listeners(const Entry& entry, std::vector<Listener>& listeners) {
  const auto list = items(entry);
  if (entry.value.IsSequence() && list.empty()) {
    error(entry, entry.path + ": at least one listener is required");
  }
  for (const auto& item : list) {
    const auto section = this->section(item, {"address", "tls", "redirect_https"});
    if (!section) continue;
    Listener listener;
    listener.location = location_of(item);
    if (const Entry* address = section->find("address")) {
      if (auto parsed = host_port(*address, true)) {
        listener.address = std::move(*parsed);
        bound_.push_back({listener.address, address->path, mark_of(*address)});
      }
    } else {
      error(item, item.path + ": address is required");
    }
    const Entry* tls = section->find("tls");
    if (tls) listener.tls = parse_listener_tls(*tls);
    const Entry* redirect = section->find("redirect_https");
    bool redirect_given = false;
    if (redirect) {
      if (const auto value = boolean(*redirect)) {
        listener.redirect_https = *value;
        redirect_given = true;
      }
    }
    if (tls && listener.redirect_https) {
      error(*redirect, item.path + ": a listener has either tls or redirect_https: true, not both");
    } else if (!tls && !listener.redirect_https && (!redirect || redirect_given)) {
      error(item, item.path +
                      ": needs tls (to terminate TLS) or redirect_https: true (plain HTTP that "
                      "only redirects to https)");
    }
    listeners.push_back(std::move(listener));
  }
}

std::optional<ListenerTls> Loader::parse_listener_tls(const Entry& entry) {
  const auto section =
      this->section(entry, {"certificates", "min_version", "ciphers", "client_ca", "client_auth"});
  if (!section) return std::nullopt;
  ListenerTls tls;
  if (const Entry* certificates = section->find("certificates")) {
    const auto list = items(*certificates);
    if (certificates->value.IsSequence() && list.empty()) {
      error(*certificates, certificates->path + ": at least one certificate is required");
    }
    for (const auto& item : list) {
      const auto pair = this->section(item, {"cert", "key"});
      if (!pair) continue;
      CertificateFiles files;
      files.location = location_of(item);
      const Entry* cert = pair->find("cert");
      const Entry* key = pair->find("key");
      if (!cert) error(item, item.path + ": cert is required");
      if (!key) error(item, item.path + ": key is required");
      if (!cert || !key) continue;
      const auto cert_file = file_path(*cert, false);
      const auto key_file = file_path(*key, false);
      if (!cert_file || !key_file) continue;
      files.cert_file = *cert_file;
      files.key_file = *key_file;
      check_certificate_pair(files, *cert, *key);
      tls.certificates.push_back(std::move(files));
    }
  } else {
    error(entry, entry.path + ": certificates is required (at least one cert and key)");
  }
  set(*section, "min_version", tls.min_version, [&](const Entry& e) {
    return choice<TlsVersion>(e, {{"TLS1.2", TlsVersion::tls1_2}, {"TLS1.3", TlsVersion::tls1_3}});
  });
  if (const Entry* ciphers = section->find("ciphers")) {
    if (const auto text = string(*ciphers)) {
      tls.ciphers = *text;
      if (!text->empty()) {
        const SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
        ERR_clear_error();
        if (ctx && SSL_CTX_set_cipher_list(ctx.get(), text->c_str()) != 1) {
          ERR_clear_error();
          error(*ciphers, ciphers->path + ": OpenSSL knows none of the ciphers in " + quote(*text));
        }
      }
    }
  }
  const Entry* client_ca = section->find("client_ca");
  if (client_ca) {
    if (const auto path = file_path(*client_ca, true)) {
      tls.client_ca = *path;
      if (!path->empty()) check_ca_bundle(*path, *client_ca);
    }
  }
  if (const Entry* client_auth = section->find("client_auth")) {
    if (const auto value = choice<ClientAuth>(*client_auth, {{"none", ClientAuth::none},
                                                             {"optional", ClientAuth::optional},
                                                             {"required", ClientAuth::required}})) {
      tls.client_auth = *value;
      const bool ca_given =
          client_ca && client_ca->value.IsScalar() && !client_ca->value.Scalar().empty();
      if (*value != ClientAuth::none && !ca_given) {
        error(*client_auth, client_auth->path + ": " + client_auth->value.Scalar() +
                                " needs client_ca (the CA bundle client certificates are checked "
                                "against)");
      }
    }
  }
  return tls;
}

void Loader::parse_admin(const Entry& entry, AdminSettings& admin) {
  const auto section = this->section(entry, {"address", "token_file"});
  if (!section) return;
  if (const Entry* address = section->find("address")) {
    if (auto parsed = host_port(*address, true)) {
      admin.address = std::move(*parsed);
      admin_bound_ = BoundAddress{admin.address, address->path, mark_of(*address)};
    }
  }
  if (const Entry* token = section->find("token_file")) {
    if (const auto path = file_path(*token, true)) {
      admin.token_file = *path;
      if (!path->empty()) check_token_file(*path, *token);
    }
  }
}

void Loader::parse_limits(const Entry& entry, Limits& limits) {
  const auto section =
      this->section(entry, {"max_connections", "max_connections_per_ip", "max_uri_bytes",
                            "max_header_bytes", "max_header_count", "max_body_bytes",
                            "header_timeout", "body_timeout", "idle_timeout", "drain_timeout"});
  if (!section) return;
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  const auto count = [&](const Entry& e) { return whole(e, 1, kMax); };
  const auto bytes = [&](const Entry& e) { return size(e); };
  const auto time = [&](const Entry& e) { return duration(e); };
  set(*section, "max_connections", limits.max_connections, count);
  set(*section, "max_connections_per_ip", limits.max_connections_per_ip, count);
  set(*section, "max_uri_bytes", limits.max_uri_bytes, bytes);
  set(*section, "max_header_bytes", limits.max_header_bytes, bytes);
  set(*section, "max_header_count", limits.max_header_count, count);
  set(*section, "max_body_bytes", limits.max_body_bytes, bytes);
  set(*section, "header_timeout", limits.header_timeout, time);
  set(*section, "body_timeout", limits.body_timeout, time);
  set(*section, "idle_timeout", limits.idle_timeout, time);
  set(*section, "drain_timeout", limits.drain_timeout, time);
  if (limits.max_connections_per_ip > limits.max_connections) {
    const Entry* at = section->find("max_connections_per_ip");
    if (!at) at = section->find("max_connections");
    error(*at, section->child("max_connections_per_ip") + ": " +
                   std::to_string(limits.max_connections_per_ip) +
                   " is more than max_connections (" + std::to_string(limits.max_connections) +
                   ")");
  }
}

void Loader::parse_logging(const Entry& entry, LoggingSettings& logging) {
  const auto section = this->section(entry, {"level", "access_log", "security_log"});
  if (!section) return;
  set(*section, "level", logging.level, [&](const Entry& e) {
    return choice<LogLevel>(e, {{"trace", LogLevel::trace},
                                {"debug", LogLevel::debug},
                                {"info", LogLevel::info},
                                {"warn", LogLevel::warn},
                                {"error", LogLevel::error}});
  });
  const auto target = [&](const Entry& e) -> std::optional<std::string> {
    const auto text = string(e);
    if (!text) return std::nullopt;
    if (*text == "stdout" || *text == "stderr" || *text == "off") return text;
    if (text->empty()) {
      error(e, e.path + ": expected stdout, stderr, off or a file path, got ''");
      return std::nullopt;
    }
    auto path = file_path(e, false);
    if (path) check_log_target(*path, e);
    return path;
  };
  set(*section, "access_log", logging.access_log, target);
  set(*section, "security_log", logging.security_log, target);
}

void Loader::parse_upstreams(const Entry& entry, std::vector<Upstream>& upstreams) {
  const auto section = this->section(entry, {}, {}, true);
  if (!section) return;
  for (const auto& [name, item] : section->entries()) {
    if (!is_name(name)) {
      error(item.key.Mark(), item.path +
                                 ": upstream names use letters, digits, '_', '-' and "
                                 "'.' (at most 64)");
    }
    upstreams.push_back(parse_upstream(item, name));
  }
}

Upstream Loader::parse_upstream(const Entry& entry, std::string name) {
  Upstream upstream;
  upstream.name = std::move(name);
  upstream.location = entry.key.IsDefined()
                          ? Location{file_, entry.key.Mark().line + 1, entry.key.Mark().column + 1}
                          : location_of(entry);
  const auto section =
      this->section(entry, {"endpoints", "tls", "connect_timeout", "response_timeout",
                            "max_idle_per_endpoint", "health_check", "retries"});
  if (!section) return upstream;
  if (const Entry* endpoints = section->find("endpoints")) {
    const auto list = items(*endpoints);
    if (endpoints->value.IsSequence() && list.empty()) {
      error(*endpoints, endpoints->path + ": at least one endpoint is required");
    }
    for (const auto& item : list) {
      auto endpoint = host_port(item, false);
      if (!endpoint) continue;
      const bool repeated =
          std::any_of(upstream.endpoints.begin(), upstream.endpoints.end(),
                      [&](const HostPort& other) { return other.text == endpoint->text; });
      if (repeated) {
        error(item, item.path + ": " + quote(endpoint->text) + " is listed twice");
        continue;
      }
      upstream.endpoints.push_back(std::move(*endpoint));
    }
  } else {
    error(entry, entry.path + ": endpoints is required");
  }
  if (const Entry* tls = section->find("tls")) {
    if (const auto fields = this->section(*tls, {"enabled", "ca_file", "server_name", "verify"})) {
      set(*fields, "enabled", upstream.tls.enabled, [&](const Entry& e) { return boolean(e); });
      set(*fields, "verify", upstream.tls.verify, [&](const Entry& e) { return boolean(e); });
      if (const Entry* ca_file = fields->find("ca_file")) {
        if (const auto path = file_path(*ca_file, true)) {
          upstream.tls.ca_file = *path;
          if (!path->empty()) check_ca_bundle(*path, *ca_file);
        }
      }
      set(*fields, "server_name", upstream.tls.server_name,
          [&](const Entry& e) -> std::optional<std::string> {
            auto text = string(e);
            if (text && !text->empty() && !is_host_name(*text) && !core::IpAddress::parse(*text)) {
              error(e, e.path + ": " + quote(*text) + " is not a host name");
              return std::nullopt;
            }
            return text;
          });
    }
  }
  const auto time = [&](const Entry& e) { return duration(e); };
  set(*section, "connect_timeout", upstream.connect_timeout, time);
  set(*section, "response_timeout", upstream.response_timeout, time);
  set(*section, "max_idle_per_endpoint", upstream.max_idle_per_endpoint,
      [&](const Entry& e) { return whole(e, 0, 65535); });
  set(*section, "retries", upstream.retries, [&](const Entry& e) { return whole(e, 0, 10); });
  if (const Entry* health = section->find("health_check")) {
    if (const auto fields = this->section(*health, {"path", "interval"})) {
      set(*fields, "path", upstream.health_check.path,
          [&](const Entry& e) -> std::optional<std::string> {
            auto text = string(e);
            if (!text || text->empty()) return text;
            const bool clean = std::all_of(text->begin(), text->end(), [](char c) {
              const auto byte = static_cast<unsigned char>(c);
              return byte > 0x20 && byte < 0x7f && c != '#';
            });
            if (text->front() != '/' || !clean) {
              error(e, e.path + ": " + quote(*text) +
                           " must start with '/' and hold no spaces, controls or '#'");
              return std::nullopt;
            }
            return text;
          });
      set(*fields, "interval", upstream.health_check.interval, time);
    }
  }
  return upstream;
}

void Loader::parse_headers(const Entry& entry, HeaderSettings& headers) {
  const auto section = this->section(entry, {"response", "cookies"});
  if (!section) return;
  if (const Entry* response = section->find("response")) {
    if (const auto fields = this->section(*response, {"set", "remove"})) {
      if (const Entry* set_entry = fields->find("set")) {
        // Given at all, the list replaces the defaults: what is written is what is sent.
        if (const auto names = this->section(*set_entry, {}, {}, true)) {
          headers.response_set.clear();
          std::vector<std::string> seen;
          for (const auto& [name, item] : names->entries()) {
            if (!is_token(name)) {
              error(item.key.Mark(),
                    item.path + ": " + quote(name) + " is not a valid header name");
              continue;
            }
            const std::string folded = core::ascii_lowercase(name);
            if (std::find(std::begin(kUnsettableHeaders), std::end(kUnsettableHeaders), folded) !=
                std::end(kUnsettableHeaders)) {
              error(item.key.Mark(), item.path + ": " + name +
                                         " describes one message or one hop and cannot be set "
                                         "on every response");
              continue;
            }
            if (std::find(seen.begin(), seen.end(), folded) != seen.end()) {
              error(item.key.Mark(),
                    item.path + ": header " + quote(name) + " is set twice (names ignore case)");
              continue;
            }
            seen.push_back(folded);
            const auto value = string(item);
            if (!value) continue;
            if (!is_field_value(*value)) {
              error(item, item.path + ": value has a control character (CR, LF, NUL, ...)");
              continue;
            }
            headers.response_set.emplace_back(name, *value);
          }
        }
      }
      if (const Entry* remove = fields->find("remove")) {
        if (remove->value.IsSequence()) headers.response_remove.clear();
        for (const auto& item : items(*remove)) {
          if (auto name = header_name(item)) headers.response_remove.push_back(std::move(*name));
        }
      }
    }
  }
  if (const Entry* cookies = section->find("cookies")) {
    if (const auto fields = this->section(*cookies, {"secure", "http_only", "same_site"})) {
      auto& flags = headers.cookies;
      set(*fields, "secure", flags.secure, [&](const Entry& e) { return boolean(e); });
      set(*fields, "http_only", flags.http_only, [&](const Entry& e) { return boolean(e); });
      set(*fields, "same_site", flags.same_site, [&](const Entry& e) {
        return choice<SameSite>(e, {{"Strict", SameSite::strict},
                                    {"Lax", SameSite::lax},
                                    {"None", SameSite::none},
                                    {"off", SameSite::off}});
      });
      // Browsers drop a SameSite=None cookie that is not Secure.
      if (flags.same_site == SameSite::none && !flags.secure) {
        const Entry* at = fields->find("same_site");
        error(*at, at->path + ": None needs secure: true (browsers refuse it otherwise)");
      }
    }
  }
}

// JOSE algorithm names this build verifies; "none" is never one of them.
constexpr std::string_view kSymmetricAlgorithms[] = {"HS256", "HS384", "HS512"};
constexpr std::string_view kAsymmetricAlgorithms[] = {"RS256", "RS384", "RS512", "PS256", "PS384",
                                                      "PS512", "ES256", "ES384", "ES512", "EdDSA"};

bool listed(std::span<const std::string_view> names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

void Loader::parse_jwt_providers(const Entry& entry, std::vector<JwtProvider>& providers) {
  const auto section = this->section(entry, {}, {}, true);
  if (!section) return;
  for (const auto& [name, item] : section->entries()) {
    if (!is_name(name)) {
      error(item.key.Mark(), item.path +
                                 ": provider names use letters, digits, '_', '-' and '.' "
                                 "(at most 64)");
    }
    providers.push_back(parse_jwt_provider(item, name));
  }
}

JwtProvider Loader::parse_jwt_provider(const Entry& entry, std::string name) {
  JwtProvider provider;
  provider.name = std::move(name);
  provider.location = entry.key.IsDefined()
                          ? Location{file_, entry.key.Mark().line + 1, entry.key.Mark().column + 1}
                          : location_of(entry);
  const auto section =
      this->section(entry, {"issuer", "audiences", "jwks_file", "jwks_url", "jwks_ca_file",
                            "secret_file", "jwks_refresh", "algorithms", "clock_skew",
                            "required_claims", "require_exp", "token", "forward_claims"});
  if (!section) return provider;
  if (const Entry* issuer = section->find("issuer")) {
    if (const auto text = string(*issuer)) {
      if (text->empty()) error(*issuer, issuer->path + ": must not be empty");
      provider.issuer = *text;
    }
  } else {
    error(entry, entry.path + ": issuer is required");
  }
  if (const Entry* audiences = section->find("audiences")) {
    for (const auto& item : items(*audiences)) {
      if (const auto text = string(item); text && !text->empty()) {
        provider.audiences.push_back(*text);
      } else if (text) {
        error(item, item.path + ": an audience must not be empty");
      }
    }
    if (audiences->value.IsSequence() && provider.audiences.empty())
      error(*audiences, audiences->path + ": at least one audience is required");
  } else {
    error(entry, entry.path + ": audiences is required");
  }

  // Exactly one key source.
  int sources = 0;
  for (const char* key : {"jwks_file", "secret_file"}) {
    if (const Entry* file = section->find(key)) {
      if (const auto path = file_path(*file, true); path && !path->empty()) {
        std::string problem;
        const auto content = read_file(*path, problem);
        if (!content) {
          error(*file, file->path + ": " + problem);
        } else if (content->empty()) {
          error(*file, file->path + ": " + quote(*path) + " is empty");
        }
        (std::string_view(key) == "jwks_file" ? provider.jwks_file : provider.secret_file) = *path;
        ++sources;
      }
    }
  }
  if (const Entry* url = section->find("jwks_url")) {
    if (const auto text = string(*url); text && !text->empty()) {
      const bool https = text->starts_with("https://") && text->size() > 8 &&
                         std::none_of(text->begin(), text->end(), [](char c) {
                           const auto byte = static_cast<unsigned char>(c);
                           return byte <= 0x20 || byte >= 0x7f;
                         });
      if (!https) {
        error(*url, url->path + ": " + quote(*text) +
                        " must be an https:// URL (keys are never fetched in clear text)");
      }
      provider.jwks_url = *text;
      ++sources;
    }
  }
  if (const Entry* ca_file = section->find("jwks_ca_file")) {
    if (const auto path = file_path(*ca_file, true); path && !path->empty()) {
      check_ca_bundle(*path, *ca_file);
      provider.jwks_ca_file = *path;
      if (provider.jwks_url.empty())
        error(*ca_file, ca_file->path + ": only meaningful with jwks_url");
    }
  }
  if (sources != 1) {
    error(entry, entry.path + ": give exactly one of jwks_file, jwks_url and secret_file (" +
                     std::to_string(sources) + " given)");
  }

  const auto time = [&](const Entry& e) { return duration(e); };
  set(*section, "jwks_refresh", provider.jwks_refresh, time);
  set(*section, "clock_skew", provider.clock_skew,
      [&](const Entry& e) { return duration(e, true); });
  set(*section, "require_exp", provider.require_exp, [&](const Entry& e) { return boolean(e); });
  if (provider.jwks_refresh < std::chrono::seconds(10)) {
    if (const Entry* refresh = section->find("jwks_refresh"))
      error(*refresh, refresh->path + ": at least 10s (the identity provider is not a hot loop)");
  }
  if (provider.clock_skew > std::chrono::minutes(5)) {
    if (const Entry* skew = section->find("clock_skew")) error(*skew, skew->path + ": at most 5m");
  }

  if (const Entry* algorithms = section->find("algorithms")) {
    for (const auto& item : items(*algorithms)) {
      const auto text = string(item);
      if (!text) continue;
      std::string lowered = core::ascii_lowercase(*text);
      if (lowered == "none") {
        error(item, item.path + ": 'none' is never accepted (unsigned tokens)");
      } else if (!listed(kSymmetricAlgorithms, *text) && !listed(kAsymmetricAlgorithms, *text)) {
        error(item, item.path + ": " + quote(*text) +
                        " is not an algorithm this build verifies (RS256/384/512, "
                        "PS256/384/512, ES256/384/512, EdDSA, HS256/384/512)");
      } else if (std::find(provider.algorithms.begin(), provider.algorithms.end(), *text) !=
                 provider.algorithms.end()) {
        error(item, item.path + ": " + quote(*text) + " is listed twice");
      } else {
        provider.algorithms.push_back(*text);
      }
    }
    if (algorithms->value.IsSequence() && provider.algorithms.empty() &&
        items(*algorithms).empty()) {
      error(*algorithms, algorithms->path + ": at least one algorithm is required");
    }
  } else {
    // Left out: what the key source implies.
    provider.algorithms = provider.secret_file.empty() ? std::vector<std::string>{"RS256", "ES256"}
                                                       : std::vector<std::string>{"HS256"};
  }
  const bool any_symmetric =
      std::any_of(provider.algorithms.begin(), provider.algorithms.end(),
                  [](const std::string& a) { return listed(kSymmetricAlgorithms, a); });
  const bool any_asymmetric =
      std::any_of(provider.algorithms.begin(), provider.algorithms.end(),
                  [](const std::string& a) { return listed(kAsymmetricAlgorithms, a); });
  const Entry* algorithms_at = section->find("algorithms");
  const Entry& at = algorithms_at ? *algorithms_at : entry;
  if (any_symmetric && any_asymmetric) {
    error(at, entry.path +
                  ": algorithms mixes HMAC (HS*) with public-key algorithms; a provider "
                  "is either symmetric or asymmetric (HS256 signed with a public key is "
                  "a classic forgery)");
  } else if (!provider.secret_file.empty() && any_asymmetric) {
    error(at, entry.path + ": secret_file works with HS256/384/512 only");
  } else if (provider.secret_file.empty() && any_symmetric && !provider.jwks_url.empty()) {
    error(at, entry.path + ": HMAC secrets are never fetched over the network; use secret_file");
  }

  if (const Entry* claims = section->find("required_claims")) {
    for (const auto& item : items(*claims)) {
      if (const auto text = string(item); text && !text->empty()) {
        provider.required_claims.push_back(*text);
      } else if (text) {
        error(item, item.path + ": a claim name must not be empty");
      }
    }
  }
  if (const Entry* token = section->find("token")) {
    if (const auto fields = this->section(*token, {"header", "scheme", "cookie"})) {
      const Entry* cookie = fields->find("cookie");
      if (cookie && (fields->find("header") || fields->find("scheme"))) {
        error(*cookie, token->path + ": give either cookie, or header (and scheme), not both");
      }
      if (cookie) {
        if (const auto text = string(*cookie)) {
          if (!is_token(*text))
            error(*cookie, cookie->path + ": " + quote(*text) + " is not a cookie name");
          provider.token_cookie = *text;
        }
      }
      set(*fields, "header", provider.token_header, [&](const Entry& e) { return header_name(e); });
      set(*fields, "scheme", provider.token_scheme,
          [&](const Entry& e) -> std::optional<std::string> {
            auto text = string(e);
            if (text && !is_token(*text)) {
              error(e, e.path + ": " + quote(*text) + " is not an authentication scheme");
              return std::nullopt;
            }
            return text;
          });
    }
  }
  if (const Entry* forward = section->find("forward_claims")) {
    if (const auto fields = this->section(*forward, {}, {}, true)) {
      for (const auto& [claim, item] : fields->entries()) {
        const auto header = header_name(item);
        if (!header) continue;
        const std::string name = core::ascii_lowercase(*header);
        const bool reserved = listed(kUnsettableHeaders, name) || name == "authorization" ||
                              name == "cookie" || name == "x-forwarded-for" ||
                              name == "x-forwarded-proto" || name == "x-forwarded-host";
        if (reserved) {
          error(item, item.path + ": " + quote(*header) + " cannot carry a claim");
          continue;
        }
        provider.forward_claims.emplace_back(claim, *header);
      }
    }
  }
  return provider;
}

std::optional<RouteAuth> Loader::parse_route_auth(const Entry& entry, const Policy& policy) {
  if (entry.value.IsScalar() && entry.value.Scalar() == "none") return std::nullopt;
  if (!entry.value.IsMap()) {
    error(entry, entry.path +
                     ": either 'none' or { jwt: PROVIDER, scopes: [...], claims: {...} }, "
                     "got " +
                     describe(entry.value));
    return std::nullopt;
  }
  const auto fields = this->section(entry, {"jwt", "scopes", "claims"});
  if (!fields) return std::nullopt;
  RouteAuth auth;
  if (const Entry* jwt = fields->find("jwt")) {
    if (const auto text = string(*jwt)) {
      auth.provider = *text;
      const auto found =
          std::find_if(policy.jwt_providers.begin(), policy.jwt_providers.end(),
                       [&](const JwtProvider& provider) { return provider.name == *text; });
      if (found == policy.jwt_providers.end()) {
        error(*jwt, jwt->path + ": no provider named " + quote(*text) + " in jwt_providers");
      } else {
        auth.provider_index = static_cast<std::size_t>(found - policy.jwt_providers.begin());
      }
    }
  } else {
    error(entry, entry.path + ": jwt is required (the provider's name)");
  }
  if (const Entry* scopes = fields->find("scopes")) {
    for (const auto& item : items(*scopes)) {
      const auto text = string(item);
      if (!text) continue;
      if (text->empty() || text->find_first_of(" \t") != std::string::npos) {
        error(item, item.path + ": a scope is one non-empty word");
      } else {
        auth.scopes.push_back(*text);
      }
    }
  }
  if (const Entry* claims = fields->find("claims")) {
    if (const auto values = this->section(*claims, {}, {}, true)) {
      for (const auto& [claim, item] : values->entries()) {
        if (!item.value.IsScalar()) {
          error(item, item.path + ": a required claim value is a string, a number or a boolean");
          continue;
        }
        ClaimRequirement requirement;
        requirement.claim = claim;
        requirement.value = item.value.Scalar();
        const std::string& text = requirement.value;
        const bool quoted = item.value.Tag() == "!";
        if (!quoted && (text == "true" || text == "false")) {
          requirement.kind = ClaimRequirement::Kind::boolean;
        } else if (!quoted && !text.empty() &&
                   std::all_of(text.begin() + (text[0] == '-' ? 1 : 0), text.end(), is_digit) &&
                   text.size() < 19 && text != "-") {
          requirement.kind = ClaimRequirement::Kind::integer;
        }
        auth.claims.push_back(std::move(requirement));
      }
    }
  }
  return auth;
}

std::optional<RouteValidation> Loader::parse_route_validation(const Entry& entry,
                                                              const Policy& policy) {
  const auto fields =
      this->section(entry, {"content_types", "max_body_bytes", "json_schema", "error_pointer"});
  if (!fields) return std::nullopt;
  RouteValidation validation;
  validation.location = location_of(entry);
  if (const Entry* types = fields->find("content_types")) {
    for (const auto& item : items(*types)) {
      const auto text = string(item);
      if (!text) continue;
      const auto slash = text->find('/');
      const bool shaped = slash != std::string::npos && slash > 0 && slash + 1 < text->size() &&
                          is_token(text->substr(0, slash)) &&
                          (text->substr(slash + 1) == "*" || is_token(text->substr(slash + 1)));
      if (!shaped || *text == "*/*") {
        error(item, item.path + ": " + quote(*text) +
                        " is not a media type (type/subtype or type/*; */* is refused)");
      } else {
        validation.content_types.push_back(core::ascii_lowercase(*text));
      }
    }
  }
  if (const Entry* max = fields->find("max_body_bytes")) {
    if (const auto bytes = size(*max)) {
      if (*bytes == 0) {
        error(*max, max->path + ": must be greater than 0");
      } else if (*bytes > policy.server.limits.max_body_bytes) {
        error(*max, max->path + ": may only lower server.limits.max_body_bytes (" +
                        std::to_string(policy.server.limits.max_body_bytes) + ")");
      } else {
        validation.max_body_bytes = *bytes;
      }
    }
  }
  if (const Entry* schema = fields->find("json_schema")) {
    if (const auto path = file_path(*schema, true); path && !path->empty()) {
      std::string problem;
      if (!read_file(*path, problem)) error(*schema, schema->path + ": " + problem);
      validation.json_schema = *path;
      validation.json_schema_location = location_of(*schema);
    }
  }
  set(*fields, "error_pointer", validation.error_pointer,
      [&](const Entry& e) { return boolean(e); });
  return validation;
}

void Loader::parse_routes(const Entry& entry, Policy& policy) {
  for (const auto& item : items(entry)) {
    if (auto route = parse_route(item, policy)) policy.routes.push_back(std::move(*route));
  }
}

std::optional<Route> Loader::parse_route(const Entry& entry, const Policy& policy) {
  const auto section =
      this->section(entry, {"name", "match", "upstream", "auth", "validate", "enforce"}, "route");
  if (!section) return std::nullopt;
  Route route;
  route.location = location_of(entry);
  if (const Entry* name = section->find("name")) {
    if (const auto text = string(*name)) {
      const auto first = std::find_if(policy.routes.begin(), policy.routes.end(),
                                      [&](const Route& other) { return other.name == *text; });
      if (!is_name(*text)) {
        error(*name, name->path + ": " + quote(*text) +
                         " is not a route name (letters, digits, '_', '-', '.'; at most 64)");
      } else if (first != policy.routes.end()) {
        error(*name, name->path + ": route name " + quote(*text) + " is already used (line " +
                         std::to_string(first->location.line) + ")");
      } else {
        route.name = *text;
      }
    }
  } else {
    error(entry, entry.path + ": name is required");
  }

  if (const Entry* match = section->find("match")) {
    if (const auto fields = this->section(*match, {"path", "path_prefix", "methods"})) {
      const auto path_text = [&](const Entry& e) -> std::optional<std::string> {
        auto text = string(e);
        if (!text) return std::nullopt;
        if (const auto problem = route_path_problem(*text); !problem.empty()) {
          error(e, e.path + ": " + quote(*text) + " " + problem);
          return std::nullopt;
        }
        return text;
      };
      const Entry* path = fields->find("path");
      const Entry* prefix = fields->find("path_prefix");
      set(*fields, "path", route.match.path, path_text);
      set(*fields, "path_prefix", route.match.path_prefix, path_text);
      if (path && prefix) {
        error(*prefix, match->path + ": give path or path_prefix, not both");
      } else if (!path && !prefix) {
        error(*match, match->path +
                          ": needs path or path_prefix (path_prefix: / matches every "
                          "path)");
      }
      if (const Entry* methods = fields->find("methods")) {
        const auto list = items(*methods);
        if (methods->value.IsSequence() && list.empty()) {
          error(*methods, methods->path + ": empty list; leave methods out to allow any method");
        }
        for (const auto& item : list) {
          const auto text = string(item);
          if (!text) continue;
          if (!is_token(*text)) {
            error(item, item.path + ": " + quote(*text) + " is not a method name");
          } else if (upper(*text) != *text) {
            error(item, item.path + ": methods are case-sensitive; write " + quote(upper(*text)) +
                            ", not " + quote(*text));
          } else if (std::find(route.match.methods.begin(), route.match.methods.end(), *text) !=
                     route.match.methods.end()) {
            error(item, item.path + ": " + quote(*text) + " is listed twice");
          } else {
            route.match.methods.push_back(*text);
          }
        }
      }
    }
  } else {
    error(entry, entry.path + ": match is required");
  }

  if (const Entry* upstream = section->find("upstream")) {
    if (const auto text = string(*upstream)) {
      route.upstream = *text;
      const auto found =
          std::find_if(policy.upstreams.begin(), policy.upstreams.end(),
                       [&](const Upstream& candidate) { return candidate.name == *text; });
      if (found == policy.upstreams.end()) {
        error(*upstream, upstream->path + ": no upstream named " + quote(*text) + " in upstreams");
      } else {
        route.upstream_index = static_cast<std::size_t>(found - policy.upstreams.begin());
      }
    }
  } else {
    error(entry, entry.path + ": upstream is required");
  }

  if (const Entry* auth = section->find("auth")) route.auth = parse_route_auth(*auth, policy);
  if (const Entry* validate = section->find("validate")) {
    route.validate = parse_route_validation(*validate, policy);
  }
  set(*section, "enforce", route.enforce, [&](const Entry& e) { return boolean(e); });
  return route;
}

Policy Loader::load(const std::string& text, std::string source_file) {
  Policy policy;
  policy.source_file = std::move(source_file);

  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(text);
  } catch (const YAML::ParserException& e) {
    error(e.mark, "YAML syntax error: " + e.msg);
    throw PolicyError(std::move(diagnostics_));
  } catch (const YAML::Exception& e) {
    error(e.mark, "YAML error: " + e.msg);
    throw PolicyError(std::move(diagnostics_));
  }
  if (documents.size() > 1) {
    error(documents[1].Mark(), "the policy must be a single YAML document (found '---')");
  }
  const Entry root{YAML::Node(YAML::NodeType::Undefined),
                   documents.empty() ? YAML::Node() : documents.front(), ""};
  if (!root.value.IsMap()) {
    const YAML::Mark start = root.value.Mark().is_null() ? YAML::Mark() : root.value.Mark();
    error(start, root.value.IsNull()
                     ? "the policy is empty; it needs at least 'version: 1' and server.listen"
                     : "the policy must be a mapping (key: value) at the top level, got " +
                           describe(root.value));
    throw PolicyError(std::move(diagnostics_));
  }
  const auto top = section(
      root,
      {"version", "server", "logging", "upstreams", "jwt_providers", "headers", "errors", "routes"},
      "top");
  if (const Entry* version = top->find("version")) {
    if (const auto number = whole(*version, 1, 1)) policy.version = static_cast<int>(*number);
  } else {
    error(root.value.Mark(), "version is required: write 'version: 1' at the top");
  }
  if (const Entry* server = top->find("server")) {
    parse_server(*server, policy.server);
  } else {
    error(root.value.Mark(), "server.listen: at least one listener is required");
  }
  bound_.push_back(admin_bound_.value_or(
      BoundAddress{policy.server.admin.address, "server.admin.address", YAML::Mark::null_mark()}));
  check_address_overlaps();

  if (const Entry* logging = top->find("logging")) parse_logging(*logging, policy.logging);
  if (const Entry* upstreams = top->find("upstreams"))
    parse_upstreams(*upstreams, policy.upstreams);
  if (const Entry* headers = top->find("headers")) parse_headers(*headers, policy.headers);
  if (const Entry* errors = top->find("errors")) {
    if (const auto fields = section(*errors, {"mask_upstream_5xx"})) {
      set(*fields, "mask_upstream_5xx", policy.errors.mask_upstream_5xx,
          [&](const Entry& e) { return boolean(e); });
    }
  }
  if (const Entry* providers = top->find("jwt_providers"))
    parse_jwt_providers(*providers, policy.jwt_providers);
  if (const Entry* routes = top->find("routes")) parse_routes(*routes, policy);

  if (!diagnostics_.empty()) {
    std::stable_sort(diagnostics_.begin(), diagnostics_.end(),
                     [](const Diagnostic& a, const Diagnostic& b) {
                       return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                     });
    throw PolicyError(std::move(diagnostics_));
  }
  return policy;
}

std::string join(const std::vector<Diagnostic>& diagnostics) {
  std::string text;
  for (const auto& diagnostic : diagnostics) {
    if (!text.empty()) text += '\n';
    text += diagnostic.to_string();
  }
  return text;
}

}  // namespace

std::string Diagnostic::to_string() const {
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

PolicyError::PolicyError(std::vector<Diagnostic> diagnostics)
    : std::runtime_error(join(diagnostics)), diagnostics_(std::move(diagnostics)) {}

const Upstream* Policy::find_upstream(std::string_view name) const {
  for (const auto& upstream : upstreams) {
    if (upstream.name == name) return &upstream;
  }
  return nullptr;
}

Policy load_policy(const std::filesystem::path& file) {
  std::string problem;
  const auto text = read_file(file, problem);
  if (!text) throw PolicyError({Diagnostic{file.string(), 0, 0, problem}});
  return load_policy_text(*text, file);
}

Policy load_policy_text(const std::string& yaml_text, const std::filesystem::path& file) {
  const auto absolute = std::filesystem::absolute(file).lexically_normal();
  Loader loader(file.string(), absolute.parent_path());
  return loader.load(yaml_text, absolute.string());
}

}  // namespace portcullis::config
