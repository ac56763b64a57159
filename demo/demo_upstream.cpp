// The demo "legacy service": a lenient, fast HTTP/1.1 server that sits behind the gateway in the
// quick start, the integration tests and the benchmarks. It records every request it receives so
// tests can see exactly what the gateway forwarded, and offers routes that misbehave on purpose.
//
//   demo-upstream --listen 127.0.0.1:0 [--threads N] [--tls-cert F --tls-key K] [--name NAME]
//                 [--max-records N]
//
// Control routes under /__ (not recorded): GET /__requests, POST /__reset (records and stats),
// GET /__stats, POST /__health/fail and POST /__health/ok (what GET /health answers from then on).

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include "portcullis/core/errors.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::awaitable;

constexpr auto kTok = asio::as_tuple(asio::use_awaitable);

constexpr std::size_t kMaxHeadBytes = 1 << 20;
constexpr std::size_t kMaxLineBytes = 64 * 1024;
constexpr std::size_t kMaxStoredBody = 64 * 1024;
constexpr std::size_t kInitialBuffer = 16 * 1024;
constexpr std::size_t kMinReadSpace = 4 * 1024;
constexpr std::size_t kChunkSize = 1000;
constexpr std::uint64_t kMaxGeneratedBody = std::uint64_t{1} << 40;

constexpr std::string_view kCommonHeaders = "Server: LegacyIIS/6.0\r\nX-Powered-By: ASP.NET\r\n";
constexpr std::string_view kHello = "hello from the legacy service\n";
constexpr std::string_view kErrorPage =
    "<h1>Error</h1><pre>java.lang.NullPointerException at "
    "com.bank.legacy.Core.handle(Core.java:42)</pre>";

// ---- small string helpers ----------------------------------------------------------------------

char to_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

bool icontains(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (iequals(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

std::string_view strip_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// True when the comma-separated list holds `token` (case-insensitive).
bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::optional<std::uint64_t> parse_decimal(std::string_view s) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc{} || end == s.data()) return std::nullopt;
  return value;
}

void append_number(std::string& out, std::uint64_t value) {
  char digits[24];
  const auto result = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, result.ptr);
}

// Text as a JSON string, each byte read as a Latin-1 code point (so any byte sequence survives).
void append_json_string(std::string& out, std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else if (c < 0x80) {
          out += static_cast<char>(c);
        } else {
          out += static_cast<char>(0xc0 | (c >> 6));
          out += static_cast<char>(0x80 | (c & 0x3f));
        }
    }
  }
  out += '"';
}

std::string_view reason_phrase(unsigned status) {
  const auto phrase = portcullis::core::reason_phrase(static_cast<int>(status));
  return phrase == "Unknown" ? std::string_view("Status") : phrase;
}

// Generated bodies repeat "abc...z"; the block length is a multiple of 26 so slices of it chain.
constexpr std::size_t kPatternPeriod = 26;
const std::string& pattern_block() {
  static const std::string block = [] {
    std::string s(kPatternPeriod * 2521, '\0');
    for (std::size_t i = 0; i < s.size(); ++i)
      s[i] = static_cast<char>('a' + i % kPatternPeriod);
    return s;
  }();
  return block;
}

// ---- HTTP head parsing (lenient on purpose) ----------------------------------------------------

// Length of the head through its blank line (CRLF or bare LF endings), or 0 while incomplete.
std::size_t find_head_end(std::string_view s) {
  std::size_t pos = 0;
  for (;;) {
    const auto nl = s.find('\n', pos);
    if (nl == std::string_view::npos) return 0;
    if (nl + 1 < s.size() && s[nl + 1] == '\n') return nl + 2;
    if (nl + 2 < s.size() && s[nl + 1] == '\r' && s[nl + 2] == '\n') return nl + 3;
    pos = nl + 1;
  }
}

struct RequestLine {
  std::string_view method;
  std::string_view target;
  std::string_view version;
};

RequestLine parse_request_line(std::string_view line) {
  RequestLine r;
  line = trim(line);
  const auto sp1 = line.find(' ');
  r.method = line.substr(0, sp1);
  if (sp1 == std::string_view::npos) return r;
  auto rest = trim(line.substr(sp1 + 1));
  const auto sp2 = rest.find(' ');
  r.target = rest.substr(0, sp2);
  if (sp2 != std::string_view::npos) r.version = trim(rest.substr(sp2 + 1));
  return r;
}

// Calls fn(name, value) for each header line of `head` (after the request line); returns the
// request line.
template <class Fn>
RequestLine for_each_header(std::string_view head, Fn&& fn) {
  auto nl = head.find('\n');
  const RequestLine line = parse_request_line(strip_cr(head.substr(0, nl)));
  std::size_t pos = nl == std::string_view::npos ? head.size() : nl + 1;
  while (pos < head.size()) {
    nl = head.find('\n', pos);
    if (nl == std::string_view::npos) nl = head.size();
    const auto text = strip_cr(head.substr(pos, nl - pos));
    pos = nl + 1;
    if (text.empty()) break;
    fn(text);
  }
  return line;
}

struct HeadInfo {
  RequestLine line;
  std::uint64_t content_length = 0;
  bool has_content_length = false;
  bool chunked = false;
  bool connection_close = false;
  bool connection_keep_alive = false;
  bool expect_continue = false;
};

// What the connection loop needs, without building a header list.
HeadInfo scan_head(std::string_view head) {
  HeadInfo info;
  info.line = for_each_header(head, [&info](std::string_view text) {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) return;
    const auto name = trim(text.substr(0, colon));
    const auto value = trim(text.substr(colon + 1));
    switch (name.size()) {
      case 14:
        if (!info.has_content_length && iequals(name, "content-length")) {
          info.has_content_length = true;
          info.content_length = parse_decimal(value).value_or(0);
        }
        break;
      case 17:
        if (iequals(name, "transfer-encoding") && icontains(value, "chunked")) info.chunked = true;
        break;
      case 10:
        if (iequals(name, "connection")) {
          if (has_token(value, "close")) info.connection_close = true;
          if (has_token(value, "keep-alive")) info.connection_keep_alive = true;
        }
        break;
      case 6:
        if (iequals(name, "expect") && iequals(value, "100-continue")) info.expect_continue = true;
        break;
      default:
        break;
    }
  });
  return info;
}

// The path of a target: query dropped, absolute-form reduced to its path.
std::string_view path_of(std::string_view target) {
  if (!target.starts_with('/')) {
    const auto scheme = target.find("://");
    if (scheme != std::string_view::npos) {
      const auto slash = target.find('/', scheme + 3);
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
  }
  return target.substr(0, target.find('?'));
}

// ---- recorded requests -------------------------------------------------------------------------

struct Record {
  std::uint64_t seq = 0;
  std::uint64_t connection_id = 0;
  std::string head;
  std::string body;  // first kMaxStoredBody bytes
  std::uint64_t body_length = 0;
  bool chunked = false;
};

void append_record_json(std::string& out, std::string_view head, std::string_view body,
                        std::uint64_t body_length, bool chunked, std::uint64_t connection_id) {
  std::string headers = "[";
  const RequestLine line = for_each_header(head, [&headers](std::string_view text) {
    if ((text.front() == ' ' || text.front() == '\t') && headers.size() > 1) {
      // obs-fold: shown as its own entry with an empty name, exactly as received
      headers += ",[\"\",";
      append_json_string(headers, trim(text));
      headers += ']';
      return;
    }
    const auto colon = text.find(':');
    if (headers.size() > 1) headers += ',';
    headers += '[';
    append_json_string(headers, text.substr(0, colon));
    headers += ',';
    append_json_string(headers, colon == std::string_view::npos ? std::string_view{}
                                                                : trim(text.substr(colon + 1)));
    headers += ']';
  });
  headers += ']';

  out += "{\"method\":";
  append_json_string(out, line.method);
  out += ",\"target\":";
  append_json_string(out, line.target);
  out += ",\"version\":";
  append_json_string(out, line.version);
  out += ",\"headers\":";
  out += headers;
  out += ",\"body_length\":";
  append_number(out, body_length);
  out += ",\"body\":";
  append_json_string(out, body);
  out += ",\"chunked\":";
  out += chunked ? "true" : "false";
  out += ",\"connection_id\":";
  append_number(out, connection_id);
  out += ",\"raw_head\":";
  append_json_string(out, head);
  out += '}';
}

// One per worker thread, so recording rarely contends; a global sequence number orders them.
class RecordStore {
 public:
  void add(std::shared_ptr<const Record> record, std::size_t max_records, std::size_t max_bytes) {
    const std::lock_guard lock(mutex_);
    bytes_ += record->head.size() + record->body.size();
    records_.push_back(std::move(record));
    while (!records_.empty() && (records_.size() > max_records || bytes_ > max_bytes)) {
      bytes_ -= records_.front()->head.size() + records_.front()->body.size();
      records_.pop_front();
    }
  }
  void clear() {
    const std::lock_guard lock(mutex_);
    records_.clear();
    bytes_ = 0;
  }
  void snapshot(std::vector<std::shared_ptr<const Record>>& out) const {
    const std::lock_guard lock(mutex_);
    out.insert(out.end(), records_.begin(), records_.end());
  }

 private:
  mutable std::mutex mutex_;
  std::deque<std::shared_ptr<const Record>> records_;
  std::size_t bytes_ = 0;
};

struct Shared {
  std::string name = "demo-upstream";
  std::size_t max_records = 10000;
  std::size_t max_record_bytes = 256u << 20;
  std::atomic<std::int64_t> connections{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> next_seq{0};
  std::atomic<std::uint64_t> next_connection{0};
  std::atomic<bool> healthy{true};  // what GET /health answers; flipped by /__health/{ok,fail}
  std::vector<std::unique_ptr<RecordStore>> stores;

  std::string requests_json() const {
    std::vector<std::shared_ptr<const Record>> all;
    for (const auto& store : stores)
      store->snapshot(all);
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a->seq < b->seq; });
    std::string out = "[";
    for (const auto& r : all) {
      if (out.size() > 1) out += ',';
      append_record_json(out, r->head, r->body, r->body_length, r->chunked, r->connection_id);
    }
    out += ']';
    return out;
  }

  std::string stats_json() const {
    std::string out = "{\"connections_accepted\":";
    append_number(out, static_cast<std::uint64_t>(std::max<std::int64_t>(0, connections.load())));
    out += ",\"requests\":";
    append_number(out, requests.load());
    out += ",\"name\":";
    append_json_string(out, name);
    out += '}';
    return out;
  }

  void reset() {
    for (const auto& store : stores)
      store->clear();
    connections.store(0);
    requests.store(0);
  }
};

// ---- one connection ----------------------------------------------------------------------------

template <class Stream>
tcp::socket& lowest_socket(Stream& stream) {
  if constexpr (std::is_same_v<Stream, tcp::socket>) {
    return stream;
  } else {
    return stream.next_layer();
  }
}

template <class Stream>
class Session {
 public:
  Session(Stream& stream, Shared& shared, RecordStore& store, std::uint64_t id)
      : stream_(stream), shared_(shared), store_(store), id_(id) {}

  awaitable<void> run() {
    bool first = true;
    for (;;) {
      std::size_t head_length = 0;
      for (;;) {
        auto pending = buffered();
        std::size_t blank = 0;
        while (blank < pending.size() && (pending[blank] == '\r' || pending[blank] == '\n')) {
          ++blank;
        }
        if (blank > 0) {
          consume(blank);
          pending = buffered();
        }
        head_length = find_head_end(pending);
        if (head_length > 0) break;
        if (pending.size() > kMaxHeadBytes) {
          http10_ = false;
          respond(431, "text/plain", "head too large\n", false, false);
          co_await flush();
          co_return;
        }
        if (!co_await fill()) co_return;
      }
      head_.assign(in_.data() + begin_, head_length);
      consume(head_length);
      const HeadInfo info = scan_head(head_);
      const bool control = info.line.target.starts_with("/__");
      if (first) {
        first = false;
        // Control connections (the test harness asking) are not counted as accepted.
        if (control) shared_.connections.fetch_sub(1, std::memory_order_relaxed);
      }
      http10_ = info.line.version == "HTTP/1.0";
      bool keep_alive =
          http10_ ? info.connection_keep_alive && !info.connection_close : !info.connection_close;

      body_.clear();
      body_length_ = 0;
      const bool body_expected = info.chunked || info.content_length > 0;
      if (info.expect_continue && body_expected && begin_ == end_) {
        out_ += "HTTP/1.1 100 Continue\r\n\r\n";
      }
      if (info.chunked) {
        if (!co_await read_chunked_body()) co_return;
      } else if (info.content_length > 0) {
        if (!co_await read_body(info.content_length)) co_return;
      }

      if (!control) {
        shared_.requests.fetch_add(1, std::memory_order_relaxed);
        if (shared_.max_records > 0) {
          auto record = std::make_shared<Record>();
          record->seq = shared_.next_seq.fetch_add(1, std::memory_order_relaxed);
          record->connection_id = id_;
          record->head = head_;
          record->body = body_;
          record->body_length = body_length_;
          record->chunked = info.chunked;
          store_.add(std::move(record), shared_.max_records, shared_.max_record_bytes);
        }
      }

      if (!co_await dispatch(info, control, keep_alive)) co_return;
      if (!keep_alive) {
        if (co_await flush()) co_await close_gracefully();
        co_return;
      }
    }
  }

 private:
  std::string_view buffered() const { return {in_.data() + begin_, end_ - begin_}; }

  void consume(std::size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }

  // Sends what is pending, then reads more input. False on EOF or error.
  awaitable<bool> fill() {
    if (!out_.empty() && !co_await flush()) co_return false;
    if (in_.size() - end_ < kMinReadSpace) {
      if (begin_ > 0) {
        std::memmove(in_.data(), in_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
      }
      if (in_.size() - end_ < kMinReadSpace) in_.resize(std::max(in_.size() * 2, end_ + 4096));
    }
    auto [ec, n] =
        co_await stream_.async_read_some(asio::buffer(in_.data() + end_, in_.size() - end_), kTok);
    if (ec || n == 0) co_return false;
    end_ += n;
    co_return true;
  }

  awaitable<bool> flush() {
    if (out_.empty()) co_return true;
    auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(out_), kTok);
    (void)n;
    out_.clear();
    co_return !ec;
  }

  void store_body(std::string_view data) {
    if (body_.size() < kMaxStoredBody) {
      body_.append(data.substr(0, kMaxStoredBody - body_.size()));
    }
    body_length_ += data.size();
  }

  awaitable<bool> read_body(std::uint64_t remaining) {
    while (remaining > 0) {
      if (begin_ == end_ && !co_await fill()) co_return false;
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, end_ - begin_));
      store_body({in_.data() + begin_, take});
      consume(take);
      remaining -= take;
    }
    co_return true;
  }

  awaitable<bool> read_line(std::string& line) {
    for (;;) {
      const auto pending = buffered();
      const auto nl = pending.find('\n');
      if (nl != std::string_view::npos) {
        line.assign(strip_cr(pending.substr(0, nl)));
        consume(nl + 1);
        co_return true;
      }
      if (pending.size() > kMaxLineBytes) co_return false;
      if (!co_await fill()) co_return false;
    }
  }

  awaitable<bool> read_chunked_body() {
    std::string line;
    for (;;) {
      if (!co_await read_line(line)) co_return false;
      const auto text = trim(line);
      std::uint64_t size = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), size, 16);
      if (ec != std::errc{} || end == text.data()) co_return false;
      if (size == 0) {
        do {
          if (!co_await read_line(line)) co_return false;
        } while (!line.empty());
        co_return true;
      }
      if (!co_await read_body(size)) co_return false;
      if (!co_await read_line(line)) co_return false;
    }
  }

  void append_status_line(unsigned status) {
    out_ += "HTTP/1.1 ";
    append_number(out_, status);
    out_ += ' ';
    out_ += reason_phrase(status);
    out_ += "\r\n";
    out_ += kCommonHeaders;
  }

  void append_connection(bool keep_alive) {
    if (!keep_alive) {
      out_ += "Connection: close\r\n";
    } else if (http10_) {
      out_ += "Connection: keep-alive\r\n";
    }
  }

  void respond(unsigned status, std::string_view content_type, std::string_view body,
               bool keep_alive, bool head_only, std::string_view extra_headers = {}) {
    append_status_line(status);
    if (!content_type.empty()) {
      out_ += "Content-Type: ";
      out_ += content_type;
      out_ += "\r\n";
    }
    out_ += extra_headers;
    const bool bodiless = status == 204 || status == 304;
    if (!bodiless) {
      out_ += "Content-Length: ";
      append_number(out_, body.size());
      out_ += "\r\n";
    }
    append_connection(keep_alive);
    out_ += "\r\n";
    if (!head_only && !bodiless) out_ += body;
  }

  awaitable<bool> send_sized(std::uint64_t n, bool keep_alive, bool head_only) {
    append_status_line(200);
    out_ += "Content-Type: application/octet-stream\r\nContent-Length: ";
    append_number(out_, n);
    out_ += "\r\n";
    append_connection(keep_alive);
    out_ += "\r\n";
    if (head_only) co_return true;
    const std::string& block = pattern_block();
    if (n <= 4096) {
      out_.append(block.data(), static_cast<std::size_t>(n));
      co_return true;
    }
    if (!co_await flush()) co_return false;
    std::vector<asio::const_buffer> pieces;
    while (n > 0) {
      pieces.clear();
      for (int i = 0; i < 16 && n > 0; ++i) {
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(n, block.size()));
        pieces.emplace_back(block.data(), take);
        n -= take;
      }
      auto [ec, written] = co_await asio::async_write(stream_, pieces, kTok);
      (void)written;
      if (ec) co_return false;
    }
    co_return true;
  }

  awaitable<bool> send_chunked(std::uint64_t n, bool keep_alive, bool head_only) {
    append_status_line(200);
    out_ += "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n";
    append_connection(keep_alive);
    out_ += "\r\n";
    if (head_only) co_return true;
    const std::string& block = pattern_block();
    std::uint64_t sent = 0;
    while (sent < n) {
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(n - sent, kChunkSize));
      char size_hex[20];
      const auto hex = std::to_chars(size_hex, size_hex + sizeof size_hex, take, 16);
      out_.append(size_hex, hex.ptr);
      out_ += "\r\n";
      out_.append(block.data() + sent % kPatternPeriod, take);
      out_ += "\r\n";
      sent += take;
      if (out_.size() >= 64 * 1024 && !co_await flush()) co_return false;
    }
    out_ += "0\r\n\r\n";
    co_return true;
  }

  // Handles one request; false when the connection is already gone.
  awaitable<bool> dispatch(const HeadInfo& info, bool control, bool& keep_alive) {
    const std::string_view path = path_of(info.line.target);
    const bool head_only = info.line.method == "HEAD";
    if (control) {
      if (path == "/__requests") {
        respond(200, "application/json", shared_.requests_json(), keep_alive, head_only);
      } else if (path == "/__reset") {
        shared_.reset();
        respond(200, "application/json", "{\"reset\":true}", keep_alive, head_only);
      } else if (path == "/__stats") {
        respond(200, "application/json", shared_.stats_json(), keep_alive, head_only);
      } else if (path == "/__health/ok" || path == "/__health/fail") {
        shared_.healthy.store(path == "/__health/ok");
        respond(200, "application/json", "{\"health\":true}", keep_alive, head_only);
      } else {
        respond(404, "text/plain", "no such control route\n", keep_alive, head_only);
      }
      co_return true;
    }

    if (path.starts_with("/status/")) {
      const auto code = parse_decimal(path.substr(8)).value_or(0);
      if (code >= 200 && code <= 599) {
        respond(static_cast<unsigned>(code), "text/html", kErrorPage, keep_alive, head_only);
      } else {
        respond(400, "text/plain", "bad status\n", keep_alive, head_only);
      }
    } else if (path.starts_with("/delay/")) {
      const auto ms = std::min<std::uint64_t>(parse_decimal(path.substr(7)).value_or(0), 3600000);
      if (!co_await flush()) co_return false;
      asio::steady_timer timer(stream_.get_executor());
      timer.expires_after(std::chrono::milliseconds(ms));
      co_await timer.async_wait(kTok);
      std::string body = "delayed ";
      append_number(body, ms);
      body += " ms\n";
      respond(200, "text/plain", body, keep_alive, head_only);
    } else if (path == "/reset") {
      co_await flush();
      auto& socket = lowest_socket(stream_);
      boost::system::error_code ignored;
      socket.set_option(tcp::socket::linger(true, 0), ignored);
      socket.close(ignored);
      co_return false;
    } else if (path == "/close") {
      keep_alive = false;
      respond(200, "text/plain", kHello, keep_alive, head_only);
    } else if (path == "/cookie") {
      respond(200, "text/plain", "cookies set\n", keep_alive, head_only,
              "Set-Cookie: session=abc123; Path=/\r\n"
              "Set-Cookie: theme=dark; Secure; HttpOnly; SameSite=Lax\r\n");
    } else if (path.starts_with("/size/")) {
      const auto n = std::min(parse_decimal(path.substr(6)).value_or(0), kMaxGeneratedBody);
      co_return co_await send_sized(n, keep_alive, head_only);
    } else if (path.starts_with("/chunked/")) {
      const auto n = std::min(parse_decimal(path.substr(9)).value_or(0), kMaxGeneratedBody);
      co_return co_await send_chunked(n, keep_alive, head_only);
    } else if (path == "/health") {
      if (shared_.healthy.load(std::memory_order_relaxed)) {
        respond(200, "text/plain", "ok", keep_alive, head_only);
      } else {
        respond(503, "text/plain", "unhealthy", keep_alive, head_only);
      }
    } else if (path == "/health-fail") {
      respond(503, "text/plain", "unhealthy", keep_alive, head_only);
    } else if (path == "/echo" || path.starts_with("/echo/")) {
      std::string json;
      append_record_json(json, head_, body_, body_length_, info.chunked, id_);
      respond(200, "application/json", json, keep_alive, head_only);
    } else {
      respond(200, "text/plain", kHello, keep_alive, head_only);
    }
    co_return true;
  }

  // Ends the connection without losing the response: send our close (FIN or close_notify), then
  // wait briefly for the peer's before closing, so unread input does not turn into a reset.
  awaitable<void> close_gracefully() {
    auto& socket = lowest_socket(stream_);
    asio::steady_timer timer(stream_.get_executor());
    timer.expires_after(std::chrono::seconds(2));
    timer.async_wait([&socket](boost::system::error_code ec) {
      if (!ec) {
        boost::system::error_code ignored;
        socket.close(ignored);
      }
    });
    boost::system::error_code ignored;
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
      socket.shutdown(tcp::socket::shutdown_send, ignored);
      char sink[4096];
      for (;;) {
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(sink), kTok);
        (void)n;
        if (ec) break;
      }
    } else {
      co_await stream_.async_shutdown(kTok);
    }
    timer.cancel();
    socket.close(ignored);
  }

  Stream& stream_;
  Shared& shared_;
  RecordStore& store_;
  std::uint64_t id_;
  std::vector<char> in_ = std::vector<char>(kInitialBuffer);
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::string out_;
  std::string head_;
  std::string body_;
  std::uint64_t body_length_ = 0;
  bool http10_ = false;
};

awaitable<void> serve_plain(tcp::socket socket, Shared& shared, RecordStore& store,
                            std::uint64_t id) {
  try {
    Session<tcp::socket> session(socket, shared, store, id);
    co_await session.run();
  } catch (const std::exception&) {
    // a broken peer only ends its own connection
  }
}

awaitable<void> serve_tls(tcp::socket socket, ssl::context& context, Shared& shared,
                          RecordStore& store, std::uint64_t id) {
  try {
    ssl::stream<tcp::socket> stream(std::move(socket), context);
    auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, kTok);
    if (ec) co_return;
    Session<ssl::stream<tcp::socket>> session(stream, shared, store, id);
    co_await session.run();
  } catch (const std::exception&) {
    // a broken peer only ends its own connection
  }
}

using Contexts = std::vector<std::unique_ptr<asio::io_context>>;

// One acceptor; accepted sockets are handed to the worker contexts in turn.
awaitable<void> accept_loop(tcp::acceptor& acceptor, Contexts& contexts, Shared& shared,
                            ssl::context* tls) {
  std::size_t next = 0;
  for (;;) {
    const std::size_t index = next++ % contexts.size();
    auto [ec, accepted] = co_await acceptor.async_accept(*contexts[index], kTok);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(20));
      co_await pause.async_wait(kTok);
      continue;
    }
    shared.connections.fetch_add(1, std::memory_order_relaxed);
    tcp::socket socket(std::move(accepted));
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    const auto id = shared.next_connection.fetch_add(1, std::memory_order_relaxed) + 1;
    RecordStore& store = *shared.stores[index];
    auto executor = socket.get_executor();
    if (tls != nullptr) {
      asio::co_spawn(executor, serve_tls(std::move(socket), *tls, shared, store, id),
                     asio::detached);
    } else {
      asio::co_spawn(executor, serve_plain(std::move(socket), shared, store, id), asio::detached);
    }
  }
}

struct Options {
  std::string listen = "127.0.0.1:0";
  unsigned threads = 1;
  std::string tls_cert;
  std::string tls_key;
  std::string name = "demo-upstream";
  std::size_t max_records = 10000;
};

void usage(std::FILE* out) {
  std::fputs(
      "usage: demo-upstream --listen HOST:PORT [--threads N] [--tls-cert FILE --tls-key FILE]\n"
      "                     [--name NAME] [--max-records N]\n"
      "  --listen       address to listen on (default 127.0.0.1:0; port 0 = any free port)\n"
      "  --threads      worker threads (default 1)\n"
      "  --tls-cert/key serve TLS with this certificate chain and key (PEM)\n"
      "  --name         name reported by GET /__stats (default demo-upstream)\n"
      "  --max-records  requests kept for GET /__requests (default 10000; 0 = none)\n",
      out);
}

std::optional<Options> parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) return std::nullopt;
    const std::string_view value = argv[++i];
    if (arg == "--listen") {
      options.listen = value;
    } else if (arg == "--threads") {
      const auto n = parse_decimal(value);
      if (!n || *n == 0 || *n > 1024) return std::nullopt;
      options.threads = static_cast<unsigned>(*n);
    } else if (arg == "--tls-cert") {
      options.tls_cert = value;
    } else if (arg == "--tls-key") {
      options.tls_key = value;
    } else if (arg == "--name") {
      options.name = value;
    } else if (arg == "--max-records") {
      const auto n = parse_decimal(value);
      if (!n) return std::nullopt;
      options.max_records = static_cast<std::size_t>(*n);
    } else {
      return std::nullopt;
    }
  }
  if (options.tls_cert.empty() != options.tls_key.empty()) return std::nullopt;
  return options;
}

tcp::endpoint parse_endpoint(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) throw std::runtime_error("--listen wants HOST:PORT");
  auto host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const auto port = parse_decimal(text.substr(colon + 1));
  if (!port || *port > 65535) throw std::runtime_error("bad port in --listen");
  return {asio::ip::make_address(std::string(host)), static_cast<unsigned short>(*port)};
}

int run(const Options& options) {
  Shared shared;
  shared.name = options.name;
  shared.max_records = options.max_records;
  for (unsigned i = 0; i < options.threads; ++i) {
    shared.stores.push_back(std::make_unique<RecordStore>());
  }

  std::optional<ssl::context> tls;
  if (!options.tls_cert.empty()) {
    tls.emplace(ssl::context::tls_server);
    tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    tls->use_certificate_chain_file(options.tls_cert);
    tls->use_private_key_file(options.tls_key, ssl::context::pem);
  }

  Contexts contexts;
  for (unsigned i = 0; i < options.threads; ++i) {
    contexts.push_back(std::make_unique<asio::io_context>(1));
  }
  auto& main_context = *contexts.front();

  const tcp::endpoint endpoint = parse_endpoint(options.listen);
  tcp::acceptor acceptor(main_context);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);

  const auto bound = acceptor.local_endpoint();
  const std::string address = bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                                      : bound.address().to_string();
  std::printf("listening %s:%u\n", address.c_str(), static_cast<unsigned>(bound.port()));
  std::fflush(stdout);

  asio::co_spawn(main_context, accept_loop(acceptor, contexts, shared, tls ? &*tls : nullptr),
                 asio::detached);

  asio::signal_set signals(main_context, SIGINT, SIGTERM);
  signals.async_wait([&contexts](boost::system::error_code, int) {
    for (auto& context : contexts)
      context->stop();
  });

  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& context : contexts)
    guards.push_back(asio::make_work_guard(*context));
  std::vector<std::thread> workers;
  for (std::size_t i = 1; i < contexts.size(); ++i) {
    workers.emplace_back([&context = *contexts[i]] { context.run(); });
  }
  main_context.run();
  for (auto& context : contexts)
    context->stop();
  for (auto& worker : workers)
    worker.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto options = parse_options(argc, argv);
  if (!options) {
    usage(stderr);
    return 2;
  }
  try {
    return run(*options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo-upstream: %s\n", e.what());
    return 1;
  }
}
