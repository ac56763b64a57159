// `upstreams`: name -> endpoints, upstream TLS, timeouts, pooling, health checks and retries.

#include <algorithm>

#include "file_checks.hpp"
#include "portcullis/core/ip.hpp"
#include "sections.hpp"
#include "syntax.hpp"

namespace portcullis::config {
namespace {

using syntax::quote;

void parse_upstream_tls(Reader& reader, const Entry& entry, UpstreamTls& tls) {
  const auto fields = reader.section(entry, {"enabled", "ca_file", "server_name", "verify"});
  if (!fields) return;
  set(*fields, "enabled", tls.enabled, [&](const Entry& e) { return reader.boolean(e); });
  set(*fields, "verify", tls.verify, [&](const Entry& e) { return reader.boolean(e); });
  if (const Entry* ca_file = fields->find("ca_file")) {
    if (const auto path = reader.file_path(*ca_file, true)) {
      tls.ca_file = *path;
      if (!path->empty()) files::check_ca_bundle(reader, *path, *ca_file);
    }
  }
  set(*fields, "server_name", tls.server_name, [&](const Entry& e) -> std::optional<std::string> {
    auto text = reader.string(e);
    if (text && !text->empty() && !syntax::is_host_name(*text) && !core::IpAddress::parse(*text)) {
      reader.error(e, e.path + ": " + quote(*text) + " is not a host name");
      return std::nullopt;
    }
    return text;
  });
}

void parse_health_check(Reader& reader, const Entry& entry, HealthCheck& health) {
  const auto fields = reader.section(entry, {"path", "interval", "max_failures"});
  if (!fields) return;
  set(*fields, "path", health.path, [&](const Entry& e) -> std::optional<std::string> {
    auto text = reader.string(e);
    if (!text || text->empty()) return text;
    const bool clean = std::all_of(text->begin(), text->end(), [](char c) {
      const auto byte = static_cast<unsigned char>(c);
      return byte > 0x20 && byte < 0x7f && c != '#';
    });
    if (text->front() != '/' || !clean) {
      reader.error(e, e.path + ": " + quote(*text) +
                          " must start with '/' and hold no spaces, controls or '#'");
      return std::nullopt;
    }
    return text;
  });
  set(*fields, "interval", health.interval, [&](const Entry& e) { return reader.duration(e); });
  set(*fields, "max_failures", health.max_failures, [&](const Entry& e) -> std::optional<unsigned> {
    const auto number = reader.whole(e, 1, 100);
    if (!number) return std::nullopt;
    return static_cast<unsigned>(*number);
  });
}

Upstream parse_upstream(Reader& reader, const Entry& entry, std::string name) {
  Upstream upstream;
  upstream.name = std::move(name);
  upstream.location = reader.key_location_of(entry);
  const auto section =
      reader.section(entry, {"endpoints", "tls", "connect_timeout", "response_timeout",
                             "max_idle_per_endpoint", "health_check", "retries"});
  if (!section) return upstream;
  if (const Entry* endpoints = section->find("endpoints")) {
    const auto list = reader.items(*endpoints);
    if (endpoints->value.IsSequence() && list.empty()) {
      reader.error(*endpoints, endpoints->path + ": at least one endpoint is required");
    }
    for (const auto& item : list) {
      auto endpoint = reader.host_port(item, false);
      if (!endpoint) continue;
      const bool repeated =
          std::any_of(upstream.endpoints.begin(), upstream.endpoints.end(),
                      [&](const HostPort& other) { return other.text == endpoint->text; });
      if (repeated) {
        reader.error(item, item.path + ": " + quote(endpoint->text) + " is listed twice");
        continue;
      }
      upstream.endpoints.push_back(std::move(*endpoint));
    }
  } else {
    reader.error(entry, entry.path + ": endpoints is required");
  }
  if (const Entry* tls = section->find("tls")) parse_upstream_tls(reader, *tls, upstream.tls);
  const auto time = [&](const Entry& e) { return reader.duration(e); };
  set(*section, "connect_timeout", upstream.connect_timeout, time);
  set(*section, "response_timeout", upstream.response_timeout, time);
  set(*section, "max_idle_per_endpoint", upstream.max_idle_per_endpoint,
      [&](const Entry& e) { return reader.whole(e, 0, 65535); });
  set(*section, "retries", upstream.retries,
      [&](const Entry& e) { return reader.whole(e, 0, 10); });
  if (const Entry* health = section->find("health_check")) {
    parse_health_check(reader, *health, upstream.health_check);
  }
  return upstream;
}

}  // namespace

void parse_upstreams(Reader& reader, const Entry& entry, std::vector<Upstream>& upstreams) {
  const auto section = reader.section(entry, {}, true);
  if (!section) return;
  for (const auto& [name, item] : section->entries()) {
    if (!syntax::is_name(name)) {
      reader.error(item.key.Mark(), item.path +
                                        ": upstream names use letters, digits, '_', '-' and "
                                        "'.' (at most 64)");
    }
    upstreams.push_back(parse_upstream(reader, item, name));
  }
}

}  // namespace portcullis::config
