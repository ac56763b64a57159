#include "portcullis/redis/reply.hpp"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <algorithm>
#include <cstdlib>
#include <limits>

namespace portcullis::redis {

std::string_view status_name(Status status) {
  switch (status) {
    case Status::ok:
      return "ok";
    case Status::timeout:
      return "timeout";
    case Status::disconnected:
      return "disconnected";
    case Status::overloaded:
      return "overloaded";
    case Status::protocol:
      return "protocol";
  }
  return "unknown";
}

std::string encode(const Command& command) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(command.size());
  lengths.reserve(command.size());
  for (const auto& argument : command) {
    argv.push_back(argument.data());
    lengths.push_back(argument.size());
  }
  char* target = nullptr;
  const int length =
      redisFormatCommandArgv(&target, static_cast<int>(argv.size()), argv.data(), lengths.data());
  if (length < 0 || !target) return {};
  std::string encoded(target, static_cast<std::size_t>(length));
  redisFreeCommand(target);
  return encoded;
}

// ---- Parser -------------------------------------------------------------------------------------
//
// hiredis calls these to build each value. A child is stored in its parent's element list (the
// parent is the task's parent object) and only the root is heap-allocated: hiredis frees nothing
// but the root. Children are appended as they arrive, so an array's declared length commits no
// memory before its elements do.

struct Parser::Budget {
  std::size_t limit;
  std::size_t used = 0;
  // Charged for every value of the reply being parsed; false when over the limit.
  bool charge(std::size_t bytes) {
    used += bytes;
    return used <= limit;
  }
};

namespace {

constexpr std::size_t kElementCost = sizeof(Value);
constexpr std::size_t kReserveAtMost = 64;

void* place(const redisReadTask* task, Value&& value) {
  if (task->parent) {
    auto* parent = static_cast<Value*>(task->parent->obj);
    parent->elements.push_back(std::move(value));
    return &parent->elements.back();
  }
  return new (std::nothrow) Value(std::move(value));
}

}  // namespace

struct ParserHooks {
  static Parser::Budget* budget(const redisReadTask* task) {
    // hiredis copies the reader's privdata (the budget, see Parser::Parser) into every task.
    return static_cast<Parser::Budget*>(task->privdata);
  }
  static void* create_string(const redisReadTask* task, char* data, std::size_t length) {
    if (!budget(task)->charge(kElementCost + length)) return nullptr;
    Value value;
    value.type = task->type == REDIS_REPLY_ERROR    ? Value::Type::error
                 : task->type == REDIS_REPLY_STATUS ? Value::Type::status
                                                    : Value::Type::string;
    value.string.assign(data, length);
    return place(task, std::move(value));
  }
  static void* create_array(const redisReadTask* task, int elements) {
    if (!budget(task)->charge(kElementCost)) return nullptr;
    Value value;
    value.type = Value::Type::array;
    value.elements.reserve(
        std::min<std::size_t>(static_cast<std::size_t>(std::max(elements, 0)), kReserveAtMost));
    return place(task, std::move(value));
  }
  static void* create_integer(const redisReadTask* task, long long integer) {
    if (!budget(task)->charge(kElementCost)) return nullptr;
    Value value;
    value.type = Value::Type::integer;
    value.integer = integer;
    return place(task, std::move(value));
  }
  static void* create_nil(const redisReadTask* task) {
    if (!budget(task)->charge(kElementCost)) return nullptr;
    return place(task, Value{});
  }
  static void free_object(void* object) { delete static_cast<Value*>(object); }
};

namespace {

redisReplyObjectFunctions kFunctions = {
    ParserHooks::create_string, ParserHooks::create_array, ParserHooks::create_integer,
    ParserHooks::create_nil,    ParserHooks::free_object,
};

}  // namespace

Parser::Parser(std::size_t max_reply_bytes) : budget_(std::make_unique<Budget>()) {
  budget_->limit = max_reply_bytes;
  auto* reader = redisReaderCreateWithFunctions(&kFunctions);
  if (!reader) {
    failed_ = true;
    return;
  }
  reader->privdata = budget_.get();
  reader_ = reader;
}

Parser::~Parser() {
  if (reader_) redisReaderFree(static_cast<redisReader*>(reader_));
}

bool Parser::feed(std::string_view bytes) {
  if (failed_) return false;
  auto* reader = static_cast<redisReader*>(reader_);
  // Bytes not yet parsed (a bulk string is buffered whole before it becomes a value).
  if (reader->len - reader->pos + bytes.size() > budget_->limit + 1024 ||
      redisReaderFeed(reader, bytes.data(), bytes.size()) != REDIS_OK) {
    failed_ = true;
    return false;
  }
  return true;
}

std::optional<Value> Parser::next() {
  if (failed_) return std::nullopt;
  auto* reader = static_cast<redisReader*>(reader_);
  void* object = nullptr;
  if (redisReaderGetReply(reader, &object) != REDIS_OK) {
    failed_ = true;
    return std::nullopt;
  }
  if (!object) return std::nullopt;
  budget_->used = 0;
  std::unique_ptr<Value> root(static_cast<Value*>(object));
  return std::move(*root);
}

}  // namespace portcullis::redis
