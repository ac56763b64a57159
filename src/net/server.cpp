#include "portcullis/net/server.hpp"

#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/version.hpp>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "portcullis/upstream/health_checker.hpp"
#include "worker.hpp"

namespace portcullis::net {
namespace {

using ReusePort = boost::asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

std::string location_prefix(const config::Location& location) {
  return location.file + ":" + std::to_string(location.line) + ":" +
         std::to_string(location.column) + ": ";
}

tcp::endpoint resolve(asio::io_context& io, const config::HostPort& address,
                      const config::Location& location) {
  error_code ec;
  const auto literal = asio::ip::make_address(address.host, ec);
  if (!ec) return {literal, address.port};
  tcp::resolver resolver(io);
  const auto results = resolver.resolve(address.host, std::to_string(address.port), ec);
  if (ec || results.empty()) {
    throw std::runtime_error(location_prefix(location) + "cannot resolve '" + address.host +
                             "': " + ec.message());
  }
  return *results.begin();
}

tcp::acceptor open_acceptor(asio::io_context& io, const tcp::endpoint& endpoint, bool reuse_port,
                            const std::string& what) {
  tcp::acceptor acceptor(io);
  error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && reuse_port) acceptor.set_option(ReusePort(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen on " + what + ": " + ec.message());
  return acceptor;
}

std::string endpoint_text(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

asio::awaitable<void> accept_loop(Worker& worker, tcp::acceptor& acceptor, ListenerKind kind,
                                  std::size_t listener_index) {
  for (;;) {
    error_code ec;
    tcp::endpoint remote;  // from accept() itself: no getpeername() per connection
    tcp::socket socket =
        co_await acceptor.async_accept(remote, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // Out of descriptors or a transient error: pause briefly rather than spin.
      asio::steady_timer pause(worker.io, std::chrono::milliseconds(50));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    const core::IpAddress peer = io::peer_address(remote);
    std::optional<ConnectionLimiter::Slot> slot;
    if (kind != ListenerKind::admin) {
      const auto pinned = worker.pin();
      const auto& rules = pinned->runtime->ip_rules;
      if (!rules.allowed(peer)) {
        // Refused by ip_rules before any TLS work: a reset, no answer.
        worker.services.metrics.rejection(core::Reason::ip_denied);
        worker.services.metrics.state.ip_rule_refusal(rules.deny().contains(peer)
                                                          ? obs::IpRuleRefusal::denied
                                                          : obs::IpRuleRefusal::not_allowed);
        socket.set_option(asio::socket_base::linger(true, 0), ec);
        socket.close(ec);
        continue;
      }
      const auto& limits = pinned->runtime->policy->server.limits;
      core::Reason refused = core::Reason::none;
      slot = worker.services.connections.try_acquire(peer, limits.max_connections,
                                                     limits.max_connections_per_ip, refused);
      if (!slot) {
        // Closed at accept, before any TLS work is spent on it.
        worker.services.metrics.rejection(refused);
        socket.set_option(asio::socket_base::linger(true, 0), ec);
        socket.close(ec);
        continue;
      }
    }
    start_connection(worker, std::move(socket), peer, kind, listener_index, std::move(slot));
  }
}

}  // namespace

// ---- Runtime ----------------------------------------------------------------------------------

Runtime::Runtime(std::shared_ptr<const config::Policy> p) : policy(std::move(p)), router(*policy) {
  const auto& limits = policy->server.limits;
  head_limits.max_uri_bytes = limits.max_uri_bytes;
  head_limits.max_header_bytes = limits.max_header_bytes;
  head_limits.max_header_count = limits.max_header_count;
  // Request line beyond the URI (method, version, separators) and a few leading empty lines.
  head_buffer_bytes = limits.max_uri_bytes + limits.max_header_bytes + 256;
}

Services::Services(std::string_view version)
    : metrics(version, io::openssl_version(), BOOST_LIB_VERSION) {}

namespace {

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

std::string at(const config::JwtProvider& provider, std::string_view key) {
  return location_prefix(provider.location) + "jwt_providers." + provider.name + "." +
         std::string(key) + ": ";
}

// The key set of a provider with a local source (jwks_file or secret_file), read now: a reload
// (SIGHUP) picks up a rotated file.
std::shared_ptr<auth::KeySetHolder> local_keys(const config::JwtProvider& provider) {
  auth::KeySetLoad load;
  if (!provider.jwks_file.empty()) {
    load = auth::KeySet::from_jwks(read_whole_file(provider.jwks_file));
    if (!load.ok()) {
      throw std::runtime_error(at(provider, "jwks_file") + provider.jwks_file + ": " +
                               (load.errors.empty() ? "no usable key" : load.errors.front()));
    }
  } else {
    std::string secret = read_whole_file(provider.secret_file);
    // A secret written with echo ends in a newline that is not part of it.
    if (secret.ends_with("\r\n")) {
      secret.resize(secret.size() - 2);
    } else if (secret.ends_with("\n")) {
      secret.pop_back();
    }
    load = auth::KeySet::from_secret(secret);
    if (!load.ok()) {
      throw std::runtime_error(at(provider, "secret_file") + provider.secret_file + ": " +
                               (load.errors.empty() ? "unusable secret" : load.errors.front()));
    }
  }
  return std::make_shared<auth::KeySetHolder>(load.keys);
}

}  // namespace

std::shared_ptr<const Runtime> build_runtime(std::shared_ptr<const config::Policy> policy,
                                             Services& services, const Runtime* previous,
                                             bool fetch_remote_keys,
                                             std::vector<std::string>* warnings) {
  auto runtime = std::make_shared<Runtime>(policy);
  const auto& logging = policy->logging;
  if (previous && previous->logs && previous->logs->settings().access_log == logging.access_log &&
      previous->logs->settings().security_log == logging.security_log &&
      previous->logs->settings().level == logging.level) {
    runtime->logs = previous->logs;
  } else {
    runtime->logs = std::make_shared<obs::Logs>(logging);
  }
  for (const auto& route : policy->routes)
    runtime->route_metrics.push_back(&services.metrics.route(route.name));
  runtime->unmatched_metrics = &services.metrics.route(std::string(obs::Metrics::kUnmatchedRoute));
  for (const auto& provider : policy->jwt_providers) {
    JwtProviderRuntime compiled;
    std::shared_ptr<auth::KeySetHolder> keys;
    if (!provider.jwks_url.empty()) {
      compiled.remote = services.remote_keys.get(
          provider.jwks_url,
          std::chrono::duration_cast<std::chrono::seconds>(provider.jwks_refresh));
      keys = compiled.remote->keys;
      if (fetch_remote_keys && !keys->current()) {
        const auto load =
            fetch_jwks_now(provider.jwks_url, provider.jwks_ca_file, std::chrono::seconds(5));
        compiled.remote->schedule.record_attempt(services.clock->wall());
        if (!keys->offer(load) && warnings) {
          warnings->push_back(at(provider, "jwks_url") + "first fetch failed: " +
                              (load.errors.empty() ? "no usable key" : load.errors.front()));
        }
      }
    } else {
      keys = local_keys(provider);
    }
    try {
      compiled.gate = std::make_unique<filters::JwtProviderGate>(provider, std::move(keys));
    } catch (const std::exception& error) {
      throw std::runtime_error(location_prefix(provider.location) + "jwt_providers." +
                               provider.name + ": " + error.what());
    }
    for (const auto& [claim, header] : provider.forward_claims)
      runtime->claim_headers.push_back(header);
    runtime->jwt_providers.push_back(std::move(compiled));
  }
  for (const auto& route : policy->routes) {
    if (!route.validate) {
      runtime->route_rules.push_back(nullptr);
    } else {
      const auto& block = *route.validate;
      validate::RequestRulesSpec spec;
      spec.content_types = block.content_types;
      spec.max_body_bytes =
          block.max_body_bytes ? block.max_body_bytes : policy->server.limits.max_body_bytes;
      spec.expose_pointer = block.error_pointer;
      if (!block.json_schema.empty()) {
        try {
          spec.schema = validate::JsonSchema::compile_file(block.json_schema);
        } catch (const validate::SchemaError& error) {
          // Point into the schema file itself when the place is known.
          const std::string where = error.line() > 0
                                        ? block.json_schema + ":" + std::string(error.what())
                                        : location_prefix(block.json_schema_location) +
                                              block.json_schema + ": " + error.what();
          const auto& at = block.json_schema_location;
          throw std::runtime_error(where + " (the json_schema of route '" + route.name + "' at " +
                                   at.file + ":" + std::to_string(at.line) + ")");
        }
      }
      try {
        runtime->route_rules.push_back(std::make_unique<validate::RequestRules>(std::move(spec)));
      } catch (const std::exception& error) {
        throw std::runtime_error(location_prefix(block.location) + "routes." + route.name +
                                 ".validate: " + error.what());
      }
    }
    runtime->route_auth.push_back(
        route.auth ? std::make_unique<filters::RouteAuthRule>(
                         *runtime->jwt_providers[route.auth->provider_index].gate, *route.auth)
                   : nullptr);
    filters::RouteChain chain;
    chain.rules = runtime->route_rules.back().get();
    chain.auth = runtime->route_auth.back().get();
    chain.phases = filters::phases_for(route, chain.rules != nullptr, policy->rate_limits);
    if (route.auth) {
      if (const auto& remote = runtime->jwt_providers[route.auth->provider_index].remote) {
        chain.key_schedule = &remote->schedule;
        chain.key_refetch_wanted = &remote->refetch_wanted;
      }
    }
    runtime->route_chains.push_back(std::move(chain));
  }
  attach_policy_services(*runtime, services, fetch_remote_keys, warnings);
  for (const auto& listener : policy->server.listen) {
    ListenerRuntime compiled;
    compiled.settings = &listener;
    if (listener.tls) {
      compiled.tls = std::make_unique<ServerTlsContext>(*listener.tls, listener.location,
                                                        services.ticket_keys);
    }
    runtime->listeners.push_back(std::move(compiled));
  }
  asio::io_context resolver_io;
  for (const auto& upstream : policy->upstreams) {
    UpstreamRuntime compiled;
    compiled.settings = &upstream;
    if (upstream.tls.enabled) {
      compiled.tls = std::make_unique<ClientTlsContext>(upstream.tls, upstream.location);
    }
    for (const auto& address : upstream.endpoints) {
      EndpointRuntime endpoint;
      endpoint.address = address;
      endpoint.resolved = resolve(resolver_io, address, upstream.location);
      // Pools and health are keyed by what makes connections interchangeable.
      const std::string key = endpoint_text(endpoint.resolved) + "|" +
                              (upstream.tls.enabled ? "tls:" + upstream.tls.server_name + ":" +
                                                          std::to_string(upstream.tls.verify) +
                                                          ":" + upstream.tls.ca_file
                                                    : "plain");
      const auto entry = services.endpoints.get(key, upstream.name + "|" + key);
      endpoint.id = entry.id;
      endpoint.health = entry.health;
      compiled.endpoints.push_back(std::move(endpoint));
    }
    runtime->upstreams.push_back(std::move(compiled));
  }
  return runtime;
}

// ---- Server -----------------------------------------------------------------------------------

struct Server::Impl {
  Impl(std::shared_ptr<const Runtime> runtime, Services& services,
       std::function<void(const std::string&)> emit)
      : store(std::move(runtime)), services(services), emit(std::move(emit)) {}

  RuntimeStore store;
  Services& services;
  std::function<void(const std::string&)> emit;
  std::atomic<bool> draining{false};
  std::vector<std::unique_ptr<Worker>> workers;
  bool started = false;
};

Server::Server(std::shared_ptr<const Runtime> runtime, Services& services,
               std::function<void(const std::string&)> emit_event)
    : impl_(std::make_unique<Impl>(std::move(runtime), services, std::move(emit_event))) {}

Server::~Server() {
  if (impl_->started) drain_and_stop(std::chrono::milliseconds(0));
}

std::shared_ptr<const Runtime> Server::current() const {
  return impl_->store.current();
}

void Server::start() {
  const auto runtime = impl_->store.current();
  const config::Policy& policy = *runtime->policy;
  std::size_t count = policy.server.workers;
  if (count == 0) count = std::max(1u, std::thread::hardware_concurrency());
  for (std::size_t i = 0; i < count; ++i) {
    impl_->workers.push_back(
        std::make_unique<Worker>(i, impl_->services, impl_->store, impl_->draining));
  }

  struct Bound {
    ListenerKind kind;
    std::size_t listener_index;
  };
  std::vector<Bound> bound;
  std::uint16_t https_port = 0;
  // Each worker gets its own acceptor on the same port (SO_REUSEPORT): the kernel spreads
  // connections and no accept lock is shared. Port 0 is resolved by the first bind.
  for (std::size_t l = 0; l < policy.server.listen.size(); ++l) {
    const auto& listener = policy.server.listen[l];
    auto endpoint = resolve(impl_->workers[0]->io, listener.address, listener.location);
    const auto kind = listener.tls ? ListenerKind::tls : ListenerKind::redirect;
    for (auto& worker : impl_->workers) {
      worker->acceptors.push_back(open_acceptor(worker->io, endpoint, true, listener.address.text));
      endpoint = worker->acceptors.back().local_endpoint();
    }
    if (kind == ListenerKind::tls && https_port == 0) https_port = endpoint.port();
    bound.push_back({kind, l});
    impl_->emit(std::string(R"({"event":"listening","kind":")") +
                (kind == ListenerKind::tls ? "tls" : "redirect") + R"(","configured":")" +
                listener.address.text + R"(","bound":")" + endpoint_text(endpoint) + "\"}");
  }
  Worker& first = *impl_->workers[0];
  const config::Location no_location{policy.source_file, 0, 0};
  const auto admin_endpoint = resolve(first.io, policy.server.admin.address, no_location);
  first.acceptors.push_back(
      open_acceptor(first.io, admin_endpoint, false, policy.server.admin.address.text));
  impl_->emit(std::string(R"({"event":"listening","kind":"admin","configured":")") +
              policy.server.admin.address.text + R"(","bound":")" +
              endpoint_text(first.acceptors.back().local_endpoint()) + "\"}");

  for (auto& worker : impl_->workers) {
    worker->https_port = https_port;
    for (std::size_t a = 0; a < bound.size(); ++a) {
      asio::co_spawn(
          worker->io,
          accept_loop(*worker, worker->acceptors[a], bound[a].kind, bound[a].listener_index),
          asio::detached);
    }
  }
  first.admin_acceptor = &first.acceptors.back();
  asio::co_spawn(first.io, accept_loop(first, first.acceptors.back(), ListenerKind::admin, 0),
                 asio::detached);
  asio::co_spawn(first.io,
                 upstream::run_health_checks(
                     first.io, first.draining,
                     [&first] {
                       auto pinned = first.pin();
                       // Keeps the whole runtime alive while in use.
                       return std::shared_ptr<const std::vector<upstream::UpstreamRuntime>>(
                           pinned, &pinned->runtime->upstreams);
                     }),
                 asio::detached);
  asio::co_spawn(first.io, run_jwks_refresh(first), asio::detached);
  asio::co_spawn(first.io, run_state_maintenance(first), asio::detached);
  for (auto& worker : impl_->workers) {
    Worker* w = worker.get();
    w->thread = std::thread([w] {
      for (;;) {
        try {
          w->io.run();
          return;
        } catch (const std::exception&) {
          // A bug in one connection must not take the worker down; keep serving.
        }
      }
    });
  }
  impl_->started = true;
}

void Server::reload(std::shared_ptr<const Runtime> runtime) {
  impl_->store.replace(std::move(runtime));
}

void Server::drain_and_stop(std::chrono::milliseconds timeout) {
  if (!impl_->started) return;
  impl_->draining = true;
  for (auto& worker : impl_->workers) {
    Worker* w = worker.get();
    asio::post(w->io, [w] {
      // The admin listener stays open so that /readyz can say 503 while the drain runs.
      for (auto& acceptor : w->acceptors) {
        if (&acceptor == w->admin_acceptor) continue;
        error_code ignored;
        acceptor.close(ignored);
      }
      for (ClientConnection* connection : w->connections)
        close_if_idle(connection);
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (impl_->services.connections.active() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& worker : impl_->workers)
    worker->io.stop();
  for (auto& worker : impl_->workers) {
    if (worker->thread.joinable()) worker->thread.join();
  }
  impl_->started = false;
}

}  // namespace portcullis::net
