#pragma once
// Redis commands and replies as the redis module hands them over. A command is a list of
// arguments (binary-safe), encoded with hiredis' redisFormatCommandArgv; a reply is a value tree
// parsed with hiredis' redisReader (RESP2), or a transport status when no value came.

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::redis {

// One RESP value.
struct Value {
  enum class Type { nil, integer, string, status, error, array };
  Type type = Type::nil;
  std::int64_t integer = 0;
  std::string string;  // string, status ("OK") or error ("ERR ...") text
  std::vector<Value> elements;

  bool is_nil() const { return type == Type::nil; }
  bool is_error() const { return type == Type::error; }
  bool is_array() const { return type == Type::array; }
  // string or status
  bool is_text() const { return type == Type::string || type == Type::status; }
};

// Why a command has no value.
enum class Status {
  ok,            // `value` holds the reply (which may be a Redis error reply)
  timeout,       // no reply within the deadline; the connection was reset
  disconnected,  // not connected, or the connection broke before the reply came
  overloaded,    // too many commands in flight on this connection; nothing was sent
  protocol,      // the server sent something that is not RESP (the connection was reset)
};

std::string_view status_name(Status status);

struct Reply {
  Status status = Status::disconnected;
  Value value;

  // A value came and it is not an error reply.
  bool ok() const { return status == Status::ok && !value.is_error(); }
  // An error reply whose text starts with `prefix` ("NOSCRIPT", "WRONGPASS", ...).
  bool is_error(std::string_view prefix) const {
    return status == Status::ok && value.is_error() && value.string.starts_with(prefix);
  }
};

// A command: its arguments, binary-safe.
using Command = std::vector<std::string>;

// make_command("SET", key, value): a Command from strings and literals. Prefer it to a braced
// list inside a coroutine: GCC 12 rejects braced lists of string literals there.
template <typename... Words>
Command make_command(const Words&... words) {
  Command command;
  command.reserve(sizeof...(words));
  (command.emplace_back(words), ...);
  return command;
}

// The command in RESP, ready to be written.
std::string encode(const Command& command);

// Incremental RESP parser over hiredis' redisReader, building Value trees. A reply larger than
// max_reply_bytes (strings plus a fixed cost per element), or input not in RESP, puts the parser
// in error for good (the connection is then reset).
class Parser {
 public:
  explicit Parser(std::size_t max_reply_bytes);
  ~Parser();
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  // Appends received bytes; false when in error.
  bool feed(std::string_view bytes);
  // The next complete reply, if any. Check failed() when nothing comes.
  std::optional<Value> next();
  bool failed() const { return failed_; }

 private:
  friend struct ParserHooks;
  struct Budget;
  void* reader_ = nullptr;  // redisReader
  std::unique_ptr<Budget> budget_;
  bool failed_ = false;
};

}  // namespace portcullis::redis
