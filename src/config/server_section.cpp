// `server`: workers, listeners and their TLS, the admin listener, limits, trusted proxies and
// the request id.

#include <algorithm>
#include <limits>

#include "file_checks.hpp"
#include "portcullis/core/text.hpp"
#include "sections.hpp"
#include "syntax.hpp"

namespace portcullis::config {
namespace {

using syntax::quote;

// A listening address and where it was written (a null mark for the admin default).
struct BoundAddress {
  HostPort address;
  std::string path;
  YAML::Mark mark;
};

class ServerParser {
 public:
  explicit ServerParser(Reader& reader) : reader_(reader) {}

  void parse(const Entry& entry, ServerSettings& server);
  void check_address_overlaps(const AdminSettings& admin);

 private:
  void parse_listeners(const Entry& entry, std::vector<Listener>& listeners);
  std::optional<ListenerTls> parse_listener_tls(const Entry& entry);
  void parse_admin(const Entry& entry, AdminSettings& admin);
  void parse_limits(const Entry& entry, Limits& limits);

  Reader& reader_;
  std::vector<BoundAddress> bound_;  // listener addresses in file order
  std::optional<BoundAddress> admin_bound_;
};

void ServerParser::parse(const Entry& entry, ServerSettings& server) {
  const auto section = reader_.section(
      entry, {"workers", "listen", "admin", "limits", "trusted_proxies", "request_id"});
  if (!section) return;
  set(*section, "workers", server.workers,
      [&](const Entry& e) { return reader_.whole(e, 0, 1024); });
  if (const Entry* listen = section->find("listen")) {
    parse_listeners(*listen, server.listen);
  } else {
    reader_.error(entry, "server.listen: at least one listener is required");
  }
  if (const Entry* admin = section->find("admin")) parse_admin(*admin, server.admin);
  if (const Entry* limits = section->find("limits")) parse_limits(*limits, server.limits);
  if (const Entry* proxies = section->find("trusted_proxies")) {
    server.trusted_proxies.clear();
    for (const auto& item : reader_.items(*proxies)) {
      if (auto cidr = reader_.cidr(item)) server.trusted_proxies.push_back(*cidr);
    }
  }
  if (const Entry* request_id = section->find("request_id")) {
    if (const auto fields = reader_.section(*request_id, {"header", "trust_incoming"})) {
      set(*fields, "header", server.request_id.header,
          [&](const Entry& e) { return reader_.header_name(e); });
      set(*fields, "trust_incoming", server.request_id.trust_incoming,
          [&](const Entry& e) { return reader_.boolean(e); });
    }
  }
}

// Workers bind with SO_REUSEPORT, so two listeners on one address would not fail to bind: they
// would silently share connections. Overlaps are refused here instead.
void ServerParser::check_address_overlaps(const AdminSettings& admin) {
  bound_.push_back(admin_bound_.value_or(
      BoundAddress{admin.address, "server.admin.address", YAML::Mark::null_mark()}));
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
      reader_.error(at.mark, at.path + ": " + quote(at.address.text) + " overlaps " + other_text);
      break;
    }
  }
}

void ServerParser::parse_listeners(const Entry& entry, std::vector<Listener>& listeners) {
  const auto list = reader_.items(entry);
  if (entry.value.IsSequence() && list.empty()) {
    reader_.error(entry, entry.path + ": at least one listener is required");
  }
  for (const auto& item : list) {
    const auto section = reader_.section(item, {"address", "tls", "redirect_https"});
    if (!section) continue;
    Listener listener;
    listener.location = reader_.location_of(item);
    if (const Entry* address = section->find("address")) {
      if (auto parsed = reader_.host_port(*address, true)) {
        listener.address = std::move(*parsed);
        bound_.push_back({listener.address, address->path, Reader::mark_of(*address)});
      }
    } else {
      reader_.error(item, item.path + ": address is required");
    }
    const Entry* tls = section->find("tls");
    if (tls) listener.tls = parse_listener_tls(*tls);
    const Entry* redirect = section->find("redirect_https");
    bool redirect_given = false;
    if (redirect) {
      if (const auto value = reader_.boolean(*redirect)) {
        listener.redirect_https = *value;
        redirect_given = true;
      }
    }
    if (tls && listener.redirect_https) {
      reader_.error(*redirect, item.path +
                                   ": a listener has either tls or redirect_https: true, not "
                                   "both (tls is at " +
                                   Reader::line_of(*tls) + ")");
    } else if (!tls && !listener.redirect_https && (!redirect || redirect_given)) {
      reader_.error(item, item.path +
                              ": needs tls (to terminate TLS) or redirect_https: true (plain "
                              "HTTP that only redirects to https)");
    }
    listeners.push_back(std::move(listener));
  }
}

std::optional<ListenerTls> ServerParser::parse_listener_tls(const Entry& entry) {
  const auto section = reader_.section(
      entry, {"certificates", "min_version", "ciphers", "client_ca", "client_auth"});
  if (!section) return std::nullopt;
  ListenerTls tls;
  if (const Entry* certificates = section->find("certificates")) {
    const auto list = reader_.items(*certificates);
    if (certificates->value.IsSequence() && list.empty()) {
      reader_.error(*certificates, certificates->path + ": at least one certificate is required");
    }
    for (const auto& item : list) {
      const auto pair = reader_.section(item, {"cert", "key"});
      if (!pair) continue;
      CertificateFiles files;
      files.location = reader_.location_of(item);
      const Entry* cert = pair->find("cert");
      const Entry* key = pair->find("key");
      if (!cert) reader_.error(item, item.path + ": cert is required");
      if (!key) reader_.error(item, item.path + ": key is required");
      if (!cert || !key) continue;
      const auto cert_file = reader_.file_path(*cert, false);
      const auto key_file = reader_.file_path(*key, false);
      if (!cert_file || !key_file) continue;
      files.cert_file = *cert_file;
      files.key_file = *key_file;
      files::check_certificate_pair(reader_, files, *cert, *key);
      tls.certificates.push_back(std::move(files));
    }
  } else {
    reader_.error(entry, entry.path + ": certificates is required (at least one cert and key)");
  }
  set(*section, "min_version", tls.min_version, [&](const Entry& e) {
    return reader_.choice<TlsVersion>(
        e, {{"TLS1.2", TlsVersion::tls1_2}, {"TLS1.3", TlsVersion::tls1_3}});
  });
  if (const Entry* ciphers = section->find("ciphers")) {
    if (const auto text = reader_.string(*ciphers)) {
      tls.ciphers = *text;
      if (!text->empty() && !files::cipher_list_known(*text)) {
        reader_.error(*ciphers,
                      ciphers->path + ": OpenSSL knows none of the ciphers in " + quote(*text));
      }
    }
  }
  const Entry* client_ca = section->find("client_ca");
  if (client_ca) {
    if (const auto path = reader_.file_path(*client_ca, true)) {
      tls.client_ca = *path;
      if (!path->empty()) files::check_ca_bundle(reader_, *path, *client_ca);
    }
  }
  if (const Entry* client_auth = section->find("client_auth")) {
    if (const auto value =
            reader_.choice<ClientAuth>(*client_auth, {{"none", ClientAuth::none},
                                                      {"optional", ClientAuth::optional},
                                                      {"required", ClientAuth::required}})) {
      tls.client_auth = *value;
      const bool ca_given =
          client_ca && client_ca->value.IsScalar() && !client_ca->value.Scalar().empty();
      if (*value != ClientAuth::none && !ca_given) {
        reader_.error(*client_auth,
                      client_auth->path + ": " + client_auth->value.Scalar() +
                          " needs client_ca (the CA bundle client certificates are checked "
                          "against)" +
                          (client_ca ? "; client_ca is empty at " + Reader::line_of(*client_ca)
                                     : std::string()));
      }
    }
  }
  return tls;
}

void ServerParser::parse_admin(const Entry& entry, AdminSettings& admin) {
  const auto section = reader_.section(entry, {"address", "token_file"});
  if (!section) return;
  if (const Entry* address = section->find("address")) {
    if (auto parsed = reader_.host_port(*address, true)) {
      admin.address = std::move(*parsed);
      admin_bound_ = BoundAddress{admin.address, address->path, Reader::mark_of(*address)};
    }
  }
  if (const Entry* token = section->find("token_file")) {
    if (const auto path = reader_.file_path(*token, true)) {
      admin.token_file = *path;
      if (!path->empty()) files::check_secret_file(reader_, *path, *token);
    }
  }
}

void ServerParser::parse_limits(const Entry& entry, Limits& limits) {
  const auto section =
      reader_.section(entry, {"max_connections", "max_connections_per_ip", "max_uri_bytes",
                              "max_header_bytes", "max_header_count", "max_body_bytes",
                              "header_timeout", "body_timeout", "idle_timeout", "drain_timeout"});
  if (!section) return;
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  const auto count = [&](const Entry& e) { return reader_.whole(e, 1, kMax); };
  const auto bytes = [&](const Entry& e) { return reader_.size(e); };
  const auto time = [&](const Entry& e) { return reader_.duration(e); };
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
  if (limits.max_body_bytes > kMaxBodyBytes) {
    const Entry* max = section->find("max_body_bytes");
    reader_.error(*max, max->path + ": at most 1GiB (bodies above it are refused with 413)");
  }
  if (limits.max_connections_per_ip > limits.max_connections) {
    const Entry* per_ip = section->find("max_connections_per_ip");
    const Entry* total = section->find("max_connections");
    const Entry* at = per_ip ? per_ip : total;
    std::string message = section->child("max_connections_per_ip") + ": " +
                          std::to_string(limits.max_connections_per_ip) +
                          " is more than max_connections (" +
                          std::to_string(limits.max_connections) + ")";
    if (!per_ip) message += "; the per-IP cap left out is 256";
    reader_.error(*at, std::move(message));
  }
}

}  // namespace

void parse_server(Reader& reader, const Entry* server, const Entry& root, ServerSettings& out) {
  ServerParser parser(reader);
  if (server) {
    parser.parse(*server, out);
  } else {
    reader.error(root.value.Mark(), "server.listen: at least one listener is required");
  }
  parser.check_address_overlaps(out.admin);
}

}  // namespace portcullis::config
