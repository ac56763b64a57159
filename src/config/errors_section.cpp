// `errors`: how upstream error answers are shown to clients.

#include "sections.hpp"

namespace portcullis::config {

void parse_errors(Reader& reader, const Entry& entry, ErrorSettings& errors) {
  if (const auto fields = reader.section(entry, {"mask_upstream_5xx"})) {
    set(*fields, "mask_upstream_5xx", errors.mask_upstream_5xx,
        [&](const Entry& e) { return reader.boolean(e); });
  }
}

}  // namespace portcullis::config
