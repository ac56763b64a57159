// `logging`: the level of operational events and where access and security lines go.

#include "file_checks.hpp"
#include "sections.hpp"

namespace portcullis::config {

void parse_logging(Reader& reader, const Entry& entry, LoggingSettings& logging) {
  const auto section = reader.section(entry, {"level", "access_log", "security_log"});
  if (!section) return;
  set(*section, "level", logging.level, [&](const Entry& e) {
    return reader.choice<LogLevel>(e, {{"trace", LogLevel::trace},
                                       {"debug", LogLevel::debug},
                                       {"info", LogLevel::info},
                                       {"warn", LogLevel::warn},
                                       {"error", LogLevel::error}});
  });
  const auto target = [&](const Entry& e) -> std::optional<std::string> {
    const auto text = reader.string(e);
    if (!text) return std::nullopt;
    if (*text == "stdout" || *text == "stderr" || *text == "off") return text;
    if (text->empty()) {
      reader.error(e, e.path + ": expected stdout, stderr, off or a file path, got ''");
      return std::nullopt;
    }
    auto path = reader.file_path(e, false);
    if (path) files::check_writable_target(reader, *path, e);
    return path;
  };
  set(*section, "access_log", logging.access_log, target);
  set(*section, "security_log", logging.security_log, target);
}

}  // namespace portcullis::config
