// portcullis: command line, signals and wiring. See the README and conf/portcullis.yaml.

#include <openssl/crypto.h>
#include <pthread.h>
#include <csignal>

#include <atomic>
#include <boost/version.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "portcullis/config/loader.hpp"
#include "portcullis/config/secret_file.hpp"
#include "portcullis/core/descriptor_limit.hpp"
#include "portcullis/core/errors.hpp"
#include "portcullis/net/runtime.hpp"
#include "portcullis/net/server.hpp"
#include "portcullis/redis/state_backend.hpp"

namespace {

using namespace portcullis;

std::string json_string(std::string_view text) {
  std::string out = "\"";
  core::append_json_escaped(out, text);
  return out + "\"";
}

// Operational events (listening, ready, reload, drain, warnings) go to stderr as JSON lines;
// logging.level decides which: listening/ready/reload/drain are info, warnings warn, failures
// error.
std::mutex event_mutex;
std::atomic<int> event_threshold{static_cast<int>(config::LogLevel::info)};
void emit_event(const std::string& json, config::LogLevel level = config::LogLevel::info) {
  if (static_cast<int>(level) < event_threshold.load(std::memory_order_relaxed)) return;
  std::lock_guard lock(event_mutex);
  std::fputs(json.c_str(), stderr);
  std::fputc('\n', stderr);
  std::fflush(stderr);
}

std::string boost_version() {
  return std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000) +
         "." + std::to_string(BOOST_VERSION % 100);
}

// The `redis` state backend for `settings` (state.redis), feeding the process's state metrics.
std::shared_ptr<state::Backend> make_redis_backend(const config::StateSettings& settings,
                                                   const core::Clock& clock,
                                                   obs::StateMetrics& metrics) {
  std::string password;
  if (!settings.redis.password_file.empty())
    password = config::read_secret_file(settings.redis.password_file);
  redis::StateBackendOptions options;
  options.redis = redis::redis_options(settings.redis, std::move(password));
  options.mirror.retention.max_token_lifetime =
      std::chrono::duration_cast<std::chrono::seconds>(settings.max_token_lifetime);
  auto backend = std::make_shared<redis::RedisStateBackend>(std::move(options), clock, &metrics);
  backend->on_persistence_checked([](bool aof_enabled) {
    if (!aof_enabled) {
      emit_event(
          "{\"event\":\"warning\",\"message\":\"state.redis: the server reports appendonly "
          "no: a Redis restart loses every revocation and ban it holds; a fleet needs appendonly "
          "yes (see the README)\"}",
          config::LogLevel::warn);
    }
  });
  return backend;
}

void print_usage(std::FILE* out) {
  std::fputs(
      "usage: portcullis -c FILE          run the gateway with the policy FILE\n"
      "       portcullis --check -c FILE  validate FILE and every file it names, print OK\n"
      "       portcullis --version        print versions\n",
      out);
}

struct Loaded {
  std::shared_ptr<const config::Policy> policy;
  std::shared_ptr<const net::Runtime> runtime;
};

// Loads and compiles the policy; on failure returns the diagnostics, one per line.
std::optional<Loaded> load(const std::string& path, net::Services& services,
                           std::vector<std::string>& errors, const net::Runtime* previous = nullptr,
                           bool serving = true) {
  try {
    std::vector<config::Diagnostic> policy_warnings;
    auto policy =
        std::make_shared<const config::Policy>(config::load_policy(path, &policy_warnings));
    for (auto warning : policy_warnings) {
      warning.message = "warning: " + warning.message;
      if (serving) {
        emit_event(R"({"event":"warning","message":)" + json_string(warning.to_string()) + "}",
                   config::LogLevel::warn);
      } else {
        std::fprintf(stderr, "%s\n", warning.to_string().c_str());  // --check: still OK
      }
    }
    std::vector<std::string> warnings;
    auto runtime = net::build_runtime(policy, services, previous, serving, &warnings);
    for (const auto& warning : warnings) {
      emit_event(R"({"event":"warning","message":)" + json_string(warning) + "}",
                 config::LogLevel::warn);
    }
    return Loaded{policy, runtime};
  } catch (const config::PolicyError& error) {
    for (const auto& diagnostic : error.diagnostics())
      errors.push_back(diagnostic.to_string());
  } catch (const std::exception& error) {
    errors.emplace_back(error.what());
  }
  return std::nullopt;
}

// Raises the descriptor limit towards what the policy's max_connections may need, and returns
// the warning to give when it stays below (empty when it does not).
std::string fit_descriptor_limit(const config::Policy& policy) {
  const std::uint64_t workers = policy.server.workers
                                    ? policy.server.workers
                                    : std::max(1u, std::thread::hardware_concurrency());
  const std::uint64_t max_connections = policy.server.limits.max_connections;
  const std::uint64_t needed =
      core::descriptors_needed(max_connections, workers, policy.server.listen.size() + 1);
  return core::descriptor_limit_warning(max_connections, needed,
                                        core::raise_descriptor_limit(needed));
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if ((arg == "-c" || arg == "--config") && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg.starts_with("--config=")) {
      config_path = std::string(arg.substr(9));
    } else if (arg == "--check" || arg == "-t") {
      check_only = true;
    } else if (arg == "--version" || arg == "-v") {
      std::printf("portcullis %s\nOpenSSL %s\nBoost %s\n", PORTCULLIS_VERSION,
                  OpenSSL_version(OPENSSL_VERSION_STRING), boost_version().c_str());
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      print_usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "portcullis: unknown argument '%s'\n", argv[i]);
      print_usage(stderr);
      return 2;
    }
  }
  if (config_path.empty()) {
    print_usage(stderr);
    return 2;
  }

  // Signals are taken synchronously by this thread (sigwait below). They are blocked before the
  // policy is loaded, because loading starts threads (logs, the state backend) that inherit this
  // mask: a thread with them unblocked would take a SIGHUP or SIGTERM that arrives while this
  // thread is not in sigwait (right after start, or during a reload) and die of it, with the
  // whole process. --check stays interruptible. A peer that closes while we write must be an
  // error value, not a process-killing SIGPIPE.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR1);
  if (!check_only) {
    std::signal(SIGPIPE, SIG_IGN);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  }

  net::Services services(PORTCULLIS_VERSION);
  services.make_redis_backend = [&services](const config::StateSettings& settings,
                                            const core::Clock& clock) {
    return make_redis_backend(settings, clock, services.metrics.state);
  };
  std::vector<std::string> errors;
  auto loaded = load(config_path, services, errors, nullptr, !check_only);
  if (!loaded) {
    for (const auto& line : errors)
      std::fprintf(check_only ? stdout : stderr, "%s\n", line.c_str());
    return 1;
  }
  if (const auto warning = fit_descriptor_limit(*loaded->policy); !warning.empty()) {
    if (check_only) {
      std::fprintf(stderr, "warning: %s\n", warning.c_str());  // still OK
    } else {
      emit_event(R"({"event":"warning","message":)" + json_string(warning) + "}",
                 config::LogLevel::warn);
    }
  }
  if (check_only) {
    std::puts("OK");
    return 0;
  }

  event_threshold = static_cast<int>(loaded->policy->logging.level);
  net::Server server(loaded->runtime, services, [](const std::string& json) { emit_event(json); });
  try {
    server.start();
  } catch (const std::exception& error) {
    emit_event(R"({"event":"start_failed","error":)" + json_string(error.what()) + "}",
               config::LogLevel::error);
    return 1;
  }
  emit_event(R"({"event":"ready","version":)" + json_string(PORTCULLIS_VERSION) + "}");

  for (;;) {
    int signal_number = 0;
    if (sigwait(&signals, &signal_number) != 0) continue;
    if (signal_number == SIGUSR1) {
      server.current()->logs->reopen();
      continue;
    }
    if (signal_number == SIGHUP) {
      std::vector<std::string> reload_errors;
      const auto current = server.current();
      auto reloaded = load(config_path, services, reload_errors, current.get());
      services.metrics.config_reload(reloaded.has_value());
      if (!reloaded) {
        std::string list = "[";
        for (std::size_t i = 0; i < reload_errors.size(); ++i) {
          if (i) list += ",";
          list += json_string(reload_errors[i]);
        }
        emit_event(R"({"event":"reload","result":"refused","errors":)" + list + "]}",
                   config::LogLevel::error);
        current->logs->security_event(R"("event":"reload","result":"refused","errors":)" + list +
                                      "]");
        continue;
      }
      event_threshold = static_cast<int>(reloaded->policy->logging.level);
      server.reload(reloaded->runtime);
      emit_event(R"({"event":"reload","result":"ok"})");
      // A reload may raise max_connections past what the descriptor limit allows.
      if (const auto warning = fit_descriptor_limit(*reloaded->policy); !warning.empty()) {
        emit_event(R"({"event":"warning","message":)" + json_string(warning) + "}",
                   config::LogLevel::warn);
      }
      reloaded->runtime->logs->security_event(R"("event":"reload","result":"ok")");
      continue;
    }
    emit_event(R"({"event":"drain","signal":)" + json_string(strsignal(signal_number)) + "}");
    const auto drain_timeout = server.current()->policy->server.limits.drain_timeout;
    server.drain_and_stop(drain_timeout);
    server.current()->logs->flush();
    emit_event(R"({"event":"stopped"})");
    return 0;
  }
}
