// Loading a policy: the YAML document, its top level, and each section handed to its parser
// (sections.hpp) in an order where every section finds what it refers to.

#include "portcullis/config/loader.hpp"

#include <yaml-cpp/yaml.h>

#include <new>
#include <string>

#include "file_checks.hpp"
#include "portcullis/core/allocation_budget.hpp"
#include "sections.hpp"
#include "yaml_guard.hpp"
#include "yaml_reader.hpp"

namespace portcullis::config {
namespace {

namespace fs = std::filesystem;

// What yaml-cpp may allocate to build the tree of a text of `bytes`: a fixed allowance plus 16
// times the text, so that no file costs the process more than about 20 times its size. A node
// costs yaml-cpp several hundred bytes, so only a file of tens of thousands of very short
// entries reaches it; allocations are counted when made, not net of frees.
std::size_t yaml_tree_budget(std::size_t bytes) {
  return (std::size_t{64} << 20) + 16 * bytes;
}

Policy load(Reader& reader, const std::string& text, std::string source_file,
            std::size_t yaml_budget) {
  Policy policy;
  policy.source_file = std::move(source_file);

  // libyaml reads the bytes first (bounded time and memory for any input); yaml-cpp only ever
  // sees a text that passed.
  if (const auto problem = detail::check_yaml(text)) {
    YAML::Mark mark;
    mark.line = problem->line - 1;
    mark.column = problem->column - 1;
    reader.error(mark, problem->message);
    throw PolicyError(reader.take_errors());
  }
  std::vector<YAML::Node> documents;
  // And a cap on what yaml-cpp may allocate for it, in case an input the first pass accepts
  // still sends it astray: the load is refused, the serving process keeps its memory.
  bool over_budget = false;
  try {
    const core::AllocationBudget budget(yaml_budget);
    try {
      documents = YAML::LoadAll(text);
    } catch (const std::bad_alloc&) {
      if (!budget.exceeded()) throw;
      over_budget = true;
    }
  } catch (const YAML::ParserException& e) {
    reader.error(e.mark, "YAML syntax error: " + e.msg);
    throw PolicyError(reader.take_errors());
  } catch (const YAML::Exception& e) {
    reader.error(e.mark, "YAML error: " + e.msg);
    throw PolicyError(reader.take_errors());
  }
  if (over_budget) {
    documents.clear();
    reader.error(YAML::Mark(), "the YAML parser needed more than " +
                                   std::to_string(yaml_budget >> 10) +
                                   " KiB for this file (64 MiB and 16 times its size): too many "
                                   "entries for one policy; refused");
    throw PolicyError(reader.take_errors());
  }
  if (documents.size() > 1) {
    reader.error(documents[1].Mark(), "the policy must be a single YAML document (found '---')");
  }
  const Entry root{YAML::Node(YAML::NodeType::Undefined),
                   documents.empty() ? YAML::Node() : documents.front(), ""};
  if (!root.value.IsMap()) {
    const YAML::Mark start = root.value.Mark().is_null() ? YAML::Mark() : root.value.Mark();
    reader.error(start, root.value.IsNull()
                            ? "the policy is empty; it needs at least 'version: 1' and "
                              "server.listen"
                            : "the policy must be a mapping (key: value) at the top level, got " +
                                  Reader::describe(root.value));
    throw PolicyError(reader.take_errors());
  }
  const auto top =
      reader.section(root, {"version", "server", "logging", "state", "upstreams", "jwt_providers",
                            "rate_limits", "headers", "errors", "ip_rules", "routes"});
  if (const Entry* version = top->find("version")) {
    if (const auto number = reader.whole(*version, 1, 1)) {
      policy.version = static_cast<int>(*number);
    }
  } else {
    reader.error(root.value.Mark(), "version is required: write 'version: 1' at the top");
  }
  parse_server(reader, top->find("server"), root, policy.server);
  if (const Entry* logging = top->find("logging")) parse_logging(reader, *logging, policy.logging);
  parse_state(reader, top->find("state"), policy.state);
  if (const Entry* upstreams = top->find("upstreams")) {
    parse_upstreams(reader, *upstreams, policy.upstreams);
  }
  if (const Entry* headers = top->find("headers")) parse_headers(reader, *headers, policy.headers);
  if (const Entry* errors = top->find("errors")) parse_errors(reader, *errors, policy.errors);
  if (const Entry* ip_rules = top->find("ip_rules")) {
    parse_ip_rules(reader, *ip_rules, policy.ip_rules);
  }
  if (const Entry* providers = top->find("jwt_providers")) {
    parse_jwt_providers(reader, *providers, policy.jwt_providers);
  }
  if (const Entry* limits = top->find("rate_limits")) {
    parse_rate_limits(reader, *limits, policy.rate_limits);
  }
  if (const Entry* routes = top->find("routes")) parse_routes(reader, *routes, policy);

  if (reader.has_errors()) throw PolicyError(reader.take_errors());
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

Policy load_policy(const fs::path& file, std::vector<Diagnostic>* warnings) {
  std::string problem;
  const auto text = files::read(file, problem);
  if (!text) throw PolicyError({Diagnostic{file.string(), 0, 0, problem}});
  return load_policy_text(*text, file, warnings);
}

Policy load_policy_text(const std::string& yaml_text, const fs::path& file,
                        std::vector<Diagnostic>* warnings, std::size_t yaml_budget) {
  const auto absolute = fs::absolute(file).lexically_normal();
  Reader reader(file.string(), absolute.parent_path());
  Policy policy = load(reader, yaml_text, absolute.string(),
                       yaml_budget ? yaml_budget : yaml_tree_budget(yaml_text.size()));
  if (warnings) *warnings = reader.take_warnings();
  return policy;
}

}  // namespace portcullis::config
