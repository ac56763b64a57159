// The long-lived services a policy asks for (state backend, rate limiter, login-failure counts,
// IP rules, each route's limits) attached to a Runtime. A service is created by the first policy
// that is served and kept by later ones while its settings are unchanged, so a reload keeps
// budgets, bans and revocations; a setting that cannot change without a restart (the state
// backend) keeps the running one and says so.

#include <stdexcept>

#include "portcullis/config/secret_file.hpp"
#include "portcullis/state/memory_backend.hpp"
#include "worker.hpp"

namespace portcullis::net {
namespace {

std::string state_settings_key(const config::StateSettings& settings) {
  std::string key = settings.backend == config::StateBackendKind::memory ? "memory|" : "redis|";
  key += settings.backend == config::StateBackendKind::memory ? settings.memory_path
                                                              : settings.redis.url;
  key += '|';
  key += std::to_string(settings.max_token_lifetime.count());
  return key;
}

std::shared_ptr<state::Backend> make_state_backend(const config::StateSettings& settings,
                                                   Services& services) {
  const core::Clock& clock = *services.clock;
  if (settings.backend == config::StateBackendKind::redis) {
    auto backend = services.make_redis_backend(settings, clock);
    backend->start();
    return backend;
  }
  state::MemoryBackendOptions options;
  options.path = settings.memory_path;
  options.mirror.retention.max_token_lifetime =
      std::chrono::duration_cast<std::chrono::seconds>(settings.max_token_lifetime);
  auto backend = std::make_shared<state::MemoryBackend>(options, clock);
  backend->start();
  return backend;
}

}  // namespace

Services::~Services() {
  if (state) state->stop();
}

std::uint32_t Services::stable_id(const std::string& name) {
  const auto [found, inserted] =
      limit_ids.try_emplace(name, static_cast<std::uint32_t>(limit_ids.size()));
  return found->second;
}

void attach_policy_services(Runtime& runtime, Services& services, bool serving,
                            std::vector<std::string>* warnings) {
  const config::Policy& policy = *runtime.policy;
  if (policy.state.backend == config::StateBackendKind::redis && !services.make_redis_backend) {
    throw std::runtime_error(policy.state.location.file + ":" +
                             std::to_string(policy.state.location.line) + ":" +
                             std::to_string(policy.state.location.column) +
                             ": state.backend: redis is not available in this build; use memory");
  }
  runtime.ip_rules = limits::IpRules(policy.ip_rules.deny, policy.ip_rules.allow);
  if (!policy.server.admin.token_file.empty()) {
    const std::string token = config::read_secret_file(policy.server.admin.token_file);
    if (!token.empty()) runtime.admin_token = auth::token_digest(token);
  }

  std::lock_guard lock(services.policy_services_mutex);
  const std::string key = state_settings_key(policy.state);
  if (serving) {
    if (!services.state) {
      services.state = make_state_backend(policy.state, services);
      services.state_settings = key;
    } else if (services.state_settings != key && warnings) {
      warnings->push_back(
          "state: changed settings take effect at the next restart; the running backend stays");
    }
    if (!services.limiter || services.limiter_bytes != policy.state.local_memory) {
      limits::KeyTableOptions options;
      options.memory_bytes = static_cast<std::size_t>(policy.state.local_memory);
      services.limiter = std::make_shared<limits::LocalLimiter>(options);
      services.limiter_bytes = policy.state.local_memory;
    }
  }
  runtime.state = services.state;
  runtime.limiter = services.limiter;

  std::vector<std::uint32_t> limit_ids;
  std::vector<const obs::RateLimitMetrics*> limit_metrics;
  for (const auto& limit : policy.rate_limits) {
    limit_ids.push_back(services.stable_id(std::string("limit:").append(limit.name)));
    limit_metrics.push_back(&services.metrics.state.rate_limit(limit.name));
  }
  for (std::size_t i = 0; i < policy.routes.size(); ++i) {
    const auto& route = policy.routes[i];
    auto& chain = runtime.route_chains[i];
    for (const std::size_t index : route.rate_limits) {
      const auto& limit = policy.rate_limits[index];
      const filters::LimitRule rule{limit_ids[index], filters::fleet_key_prefix(limit),
                                    limits::GcraLimit::make(limit.rate, limit.per, limit.burst),
                                    limit_metrics[index], limit.rate};
      (limit.key == config::RateLimitKey::jwt_sub ? chain.user_limits : chain.ip_limits)
          .push_back(rule);
    }
    runtime.login_protection_ids.push_back(
        services.stable_id(std::string("login:").append(route.name)));
  }
}

}  // namespace portcullis::net
