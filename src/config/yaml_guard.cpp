#include "yaml_guard.hpp"

#include <yaml.h>

#include <utility>
#include <vector>

namespace portcullis::config::detail {
namespace {

// Owns one libyaml parser and its current event.
class EventReader {
 public:
  explicit EventReader(std::string_view text) {
    yaml_parser_initialize(&parser_);
    yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(text.data()),
                                 text.size());
  }
  ~EventReader() {
    if (has_event_) yaml_event_delete(&event_);
    yaml_parser_delete(&parser_);
  }
  EventReader(const EventReader&) = delete;
  EventReader& operator=(const EventReader&) = delete;

  // The next event, or nullptr on a syntax error (then problem() says what and where).
  const yaml_event_t* next() {
    if (has_event_) yaml_event_delete(&event_);
    has_event_ = yaml_parser_parse(&parser_, &event_) == 1;
    return has_event_ ? &event_ : nullptr;
  }

  YamlProblem problem() const {
    YamlProblem problem;
    const yaml_mark_t& mark = parser_.problem_mark.line || parser_.problem_mark.column
                                  ? parser_.problem_mark
                                  : parser_.context_mark;
    problem.line = static_cast<int>(mark.line) + 1;
    problem.column = static_cast<int>(mark.column) + 1;
    problem.message = "YAML syntax error: ";
    problem.message += parser_.problem ? parser_.problem : "unreadable input";
    if (parser_.context) {
      problem.message += " (";
      problem.message += parser_.context;
      problem.message += ")";
    }
    return problem;
  }

 private:
  yaml_parser_t parser_{};
  yaml_event_t event_{};
  bool has_event_ = false;
};

// A policy has no use for tags, and yaml-cpp 0.7 can allocate without bound on some tagged
// inputs that libyaml accepts (found by the policy loader's fuzz target).
constexpr const char* kNoTags =
    "YAML tags ('!', '!!str', %TAG) are not part of the policy language: remove the tag";

YamlProblem at(const yaml_event_t& event, std::string message) {
  return {static_cast<int>(event.start_mark.line) + 1,
          static_cast<int>(event.start_mark.column) + 1, std::move(message)};
}

}  // namespace

std::optional<YamlProblem> check_yaml(std::string_view text, const YamlGuardLimits& limits) {
  EventReader reader(text);
  std::size_t depth = 0;
  std::size_t nodes = 0;
  // Per open collection: whether it is a mapping, and the nodes directly inside it.
  std::vector<std::pair<bool, std::size_t>> open;
  const auto count_child = [&](const yaml_event_t& event) -> std::optional<YamlProblem> {
    if (open.empty() || !open.back().first) return std::nullopt;
    if (++open.back().second > 2 * limits.max_mapping_keys)
      return at(event,
                "a mapping with more than " + std::to_string(limits.max_mapping_keys) + " keys");
    return std::nullopt;
  };
  std::size_t aliases = 0;
  std::size_t documents = 0;
  for (;;) {
    const yaml_event_t* event = reader.next();
    if (!event) return reader.problem();
    switch (event->type) {
      case YAML_STREAM_END_EVENT:
        return std::nullopt;
      case YAML_DOCUMENT_START_EVENT:
        if (++documents > 1)
          return at(*event, "the policy must be a single YAML document (found '---')");
        if (event->data.document_start.tag_directives.start !=
            event->data.document_start.tag_directives.end)
          return at(*event, kNoTags);
        break;
      case YAML_MAPPING_START_EVENT:
      case YAML_SEQUENCE_START_EVENT:
        if ((event->type == YAML_MAPPING_START_EVENT ? event->data.mapping_start.tag
                                                     : event->data.sequence_start.tag) != nullptr)
          return at(*event, kNoTags);
        if (++depth > limits.max_depth)
          return at(*event,
                    "nested more than " + std::to_string(limits.max_depth) + " levels deep");
        if (++nodes > limits.max_nodes)
          return at(*event, "more than " + std::to_string(limits.max_nodes) + " YAML nodes");
        if (auto problem = count_child(*event)) return problem;
        open.emplace_back(event->type == YAML_MAPPING_START_EVENT, 0);
        break;
      case YAML_SCALAR_EVENT:
        if (event->data.scalar.tag != nullptr) return at(*event, kNoTags);
        if (++nodes > limits.max_nodes)
          return at(*event, "more than " + std::to_string(limits.max_nodes) + " YAML nodes");
        if (auto problem = count_child(*event)) return problem;
        break;
      case YAML_MAPPING_END_EVENT:
      case YAML_SEQUENCE_END_EVENT:
        --depth;
        if (!open.empty()) open.pop_back();
        break;
      case YAML_ALIAS_EVENT:
        if (auto problem = count_child(*event)) return problem;
        if (++aliases > limits.max_aliases)
          return at(*event,
                    "more than " + std::to_string(limits.max_aliases) + " alias references");
        break;
      default:
        break;
    }
  }
}

}  // namespace portcullis::config::detail
