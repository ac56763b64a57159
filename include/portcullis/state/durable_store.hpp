#pragma once
// The memory backend's file (`state.memory.path`): revocations, cut-offs and bans written through
// to disk before they are acknowledged, and loaded into the Mirror at start, so a restart, a
// `kill -9` or a power loss never forgets a revocation the gateway acknowledged.
//
// Why SQLite: it is the most widely deployed and tested embedded database, packaged by Debian
// (libsqlite3), and its WAL mode with synchronous=FULL fsyncs the log on every commit, so a
// committed transaction survives a crash or power loss; recovery on open is automatic. Its file
// can be inspected and repaired with the stock `sqlite3` tool. LMDB would be just as durable, but
// its map size must be fixed up front (a full map fails writes), it stores raw bytes (we would
// define our own record encoding, expiry index and schema versioning) and its reader-lock table
// needs care after a crash; our write rate (operator actions, bans) is far below what either needs.
//
// Writes: put()/erase_ban()/purge() only queue the write and return. One writer thread owned by
// the store takes everything queued (up to max_batch), commits it in one transaction (group
// commit: one fsync for many writes) and only then calls each write's callback, on the writer
// thread, in queue order, with an empty error_code (committed, on disk) or a StateError. A caller
// on an event loop posts the callback back to its own executor; no caller ever waits for the disk.
// Rows past their retention (records.hpp) are deleted every purge_interval, and on purge().
//
// The file is opened in exclusive locking mode: a second process (or store) opening the same path
// fails at start instead of silently diverging. A file that is not a database, not ours, from
// another schema version, damaged, read-only, a symbolic link, or in an unwritable directory is
// refused at construction with a DurableStoreError naming the path.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <variant>

#include "portcullis/core/clock.hpp"
#include "portcullis/state/mirror.hpp"
#include "portcullis/state/records.hpp"

struct sqlite3;

namespace portcullis::state {

class DurableStoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DurableStoreOptions {
  Retention retention;                          // as the Mirror's (decides which rows expired)
  std::size_t max_batch = 256;                  // writes per transaction
  std::size_t max_queued = 10'000;              // writes waiting; more are refused (queue_full)
  std::chrono::seconds purge_interval{300};     // on the store's clock (monotonic)
  std::chrono::milliseconds idle_wakeup{1000};  // how often an idle writer checks the clock
};

// Counters for metrics and tests.
struct DurableStoreStats {
  std::uint64_t transactions = 0;  // committed
  std::uint64_t writes = 0;        // committed writes (purges not counted)
  std::uint64_t failures = 0;      // transactions that failed (their writes got store_failed)
  std::uint64_t purged_rows = 0;
};

class DurableStore {
 public:
  using Done = std::function<void(std::error_code)>;

  // Opens or creates the file, sets WAL + synchronous=FULL, creates or checks the schema and runs
  // a quick integrity check. Throws DurableStoreError (with the path) on any failure.
  DurableStore(std::string path, const core::Clock& clock, const DurableStoreOptions& options = {});
  ~DurableStore();  // stop()
  DurableStore(const DurableStore&) = delete;
  DurableStore& operator=(const DurableStore&) = delete;

  // Fills `mirror` (replace_all) with the stored rows not expired at `now`. Call before start().
  // Throws DurableStoreError when a row is invalid or the mirror's caps are exceeded.
  void load(Mirror& mirror, std::int64_t now);

  // Starts the writer thread. Writes queued before start() are committed once it runs.
  void start();
  // Commits everything queued, joins the writer and closes the file (another store may then
  // open it). Later writes complete at once with StateError::stopped. Idempotent.
  void stop();

  // Queue a write; `done` is called exactly once (on the writer thread, or at once on the calling
  // thread for queue_full / stopped / invalid_record); it must not throw and may be empty. Rows
  // merge as in the Mirror: the later exp / issued_before / ban end wins.
  void put(const Revocation& revocation, Done done);
  void put(const SubjectCutoff& cutoff, Done done);
  void put(const Ban& ban, Done done);  // stored under ban.ip.client_key()
  void erase_ban(const core::IpAddress& ip, Done done);
  // Deletes the rows expired by now (as the periodic purge does); `done` may be empty.
  void purge(Done done);

  DurableStoreStats stats() const;
  const std::string& path() const { return path_; }

 private:
  struct EraseBan {
    core::IpAddress ip;
  };
  struct Purge {};
  using Op = std::variant<Revocation, SubjectCutoff, Ban, EraseBan, Purge>;
  struct Pending {
    Op op;
    Done done;
  };

  void enqueue(Op op, Done done);
  void run();
  std::error_code commit(std::deque<Pending>& batch);
  std::error_code execute(const Op& op, std::int64_t now);
  std::error_code purge_rows(std::int64_t now);
  std::int64_t now_seconds() const;
  [[noreturn]] void fail(const std::string& what);

  std::string path_;
  const core::Clock& clock_;
  DurableStoreOptions options_;
  sqlite3* db_ = nullptr;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  bool started_ = false;
  bool stopping_ = false;
  std::thread writer_;
  core::Clock::MonotonicTime next_purge_{};

  std::atomic<std::uint64_t> transactions_{0};
  std::atomic<std::uint64_t> writes_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::atomic<std::uint64_t> purged_rows_{0};
};

}  // namespace portcullis::state
