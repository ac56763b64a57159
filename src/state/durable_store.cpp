#include "portcullis/state/durable_store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

namespace portcullis::state {
namespace {

constexpr std::int32_t kApplicationId = 0x50435354;  // "PCST"
constexpr int kSchemaVersion = 1;
constexpr const char* kInUse = "in use by another process or store (one gateway per state file)";

constexpr const char* kSchema = R"sql(
CREATE TABLE revocations(
  issuer TEXT NOT NULL, jti TEXT NOT NULL, exp INTEGER NOT NULL,
  PRIMARY KEY(issuer, jti)) WITHOUT ROWID;
CREATE INDEX revocations_by_exp ON revocations(exp);
CREATE TABLE subject_cutoffs(
  issuer TEXT NOT NULL, subject TEXT NOT NULL, issued_before INTEGER NOT NULL,
  PRIMARY KEY(issuer, subject)) WITHOUT ROWID;
CREATE INDEX subject_cutoffs_by_time ON subject_cutoffs(issued_before);
CREATE TABLE bans(
  ip BLOB NOT NULL PRIMARY KEY, until INTEGER NOT NULL, reason TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX bans_by_until ON bans(until);
)sql";

// A prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return rc_ == SQLITE_OK || rc_ == SQLITE_ROW || rc_ == SQLITE_DONE; }
  Statement& bind(int index, std::string_view text) {
    if (ok())
      rc_ = sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                              SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int index, std::int64_t value) {
    if (ok()) rc_ = sqlite3_bind_int64(stmt_, index, value);
    return *this;
  }
  Statement& bind(int index, const core::IpAddress& ip) {
    if (ok())
      rc_ = sqlite3_bind_blob(stmt_, index, ip.bytes.data(), static_cast<int>(ip.bytes.size()),
                              SQLITE_TRANSIENT);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() {
    if (!ok()) return rc_;
    rc_ = sqlite3_step(stmt_);
    return rc_;
  }
  bool run() { return step() == SQLITE_DONE; }

  std::int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
  std::string text(int column) const {
    const auto* data = sqlite3_column_text(stmt_, column);
    const int size = sqlite3_column_bytes(stmt_, column);
    return data ? std::string(reinterpret_cast<const char*>(data), static_cast<std::size_t>(size))
                : std::string();
  }
  std::string_view blob(int column) const {
    const void* data = sqlite3_column_blob(stmt_, column);
    const int size = sqlite3_column_bytes(stmt_, column);
    return data ? std::string_view(static_cast<const char*>(data), static_cast<std::size_t>(size))
                : std::string_view();
  }
  const char* error() const { return sqlite3_errmsg(db_); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

bool exec(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

void refuse(const DurableStore::Done& done, StateError error) {
  if (done) done(error);
}

// Makes a newly created file's directory entry durable.
void sync_parent_directory(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) parent = ".";
  const int fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

DurableStore::DurableStore(std::string path, const core::Clock& clock,
                           const DurableStoreOptions& options)
    : path_(std::move(path)), clock_(clock), options_(options) {
  if (path_.empty()) throw DurableStoreError("state store: empty path");
  if (options_.max_batch == 0) options_.max_batch = 1;
  options_.idle_wakeup = std::max(options_.idle_wakeup, std::chrono::milliseconds(10));
  const bool existed = std::filesystem::exists(path_);

  const int rc =
      sqlite3_open_v2(path_.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW, nullptr);
  if (rc != SQLITE_OK) {
    const std::string reason = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    fail("cannot open (" + reason + ")");
  }
  sqlite3_extended_result_codes(db_, 1);
  if (sqlite3_db_readonly(db_, "main") == 1) fail("file is read-only");

  // EXCLUSIVE before WAL: the WAL index then lives in heap memory, not a shared -shm file, and the
  // lock taken by the first transaction is held until close.
  if (!exec(db_, "PRAGMA locking_mode=EXCLUSIVE")) fail(sqlite3_errmsg(db_));
  {
    Statement mode(db_, "PRAGMA journal_mode=WAL");
    if (const int step = mode.step(); step != SQLITE_ROW) {
      if ((step & 0xff) == SQLITE_BUSY || (step & 0xff) == SQLITE_LOCKED) fail(kInUse);
      fail(std::string("cannot use it (") + mode.error() + ")");
    }
    if (mode.text(0) != "wal") fail("cannot switch to WAL journaling");
  }
  if (!exec(db_, "PRAGMA synchronous=FULL")) fail(sqlite3_errmsg(db_));
  if (!exec(db_, "BEGIN IMMEDIATE")) {
    const int code = sqlite3_errcode(db_) & 0xff;
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) fail(kInUse);
    fail(std::string("not writable (") + sqlite3_errmsg(db_) + ")");
  }
  {
    // quick_check answers one row "ok", or up to 3 rows describing the damage.
    Statement check(db_, "PRAGMA quick_check(3)");
    std::string findings;
    int step;
    while ((step = check.step()) == SQLITE_ROW) {
      if (!findings.empty()) findings += "; ";
      findings += check.text(0);
    }
    if (step != SQLITE_DONE) findings = check.error();
    if (findings != "ok") {
      exec(db_, "ROLLBACK");
      std::replace(findings.begin(), findings.end(), '\n', ' ');
      fail("integrity check failed (" + findings.substr(0, 300) +
           "); restore it from a backup or move it aside");
    }
  }
  Statement id(db_, "PRAGMA application_id");
  Statement version(db_, "PRAGMA user_version");
  Statement objects(db_, "SELECT count(*) FROM sqlite_schema");
  if (id.step() != SQLITE_ROW || version.step() != SQLITE_ROW || objects.step() != SQLITE_ROW) {
    exec(db_, "ROLLBACK");
    fail(sqlite3_errmsg(db_));
  }
  if (objects.integer(0) == 0) {
    const std::string pragmas = "PRAGMA application_id=" + std::to_string(kApplicationId) +
                                "; PRAGMA user_version=" + std::to_string(kSchemaVersion) + ";";
    if (!exec(db_, kSchema) || !exec(db_, pragmas.c_str())) {
      const std::string reason = sqlite3_errmsg(db_);
      exec(db_, "ROLLBACK");
      fail("cannot create the schema (" + reason + ")");
    }
  } else if (id.integer(0) != kApplicationId) {
    exec(db_, "ROLLBACK");
    fail("not a portcullis state file");
  } else if (version.integer(0) != kSchemaVersion) {
    exec(db_, "ROLLBACK");
    fail("schema version " + std::to_string(version.integer(0)) + " is not " +
         std::to_string(kSchemaVersion) + " (written by another version of portcullis)");
  }
  if (!exec(db_, "COMMIT")) {
    const std::string reason = sqlite3_errmsg(db_);
    exec(db_, "ROLLBACK");
    fail("not writable (" + reason + ")");
  }
  if (!existed) sync_parent_directory(path_);
  next_purge_ = clock_.monotonic() + options_.purge_interval;
}

DurableStore::~DurableStore() {
  stop();
}

void DurableStore::fail(const std::string& what) {
  sqlite3_close_v2(db_);
  db_ = nullptr;
  throw DurableStoreError("state store " + path_ + ": " + what);
}

std::int64_t DurableStore::now_seconds() const {
  return std::chrono::duration_cast<std::chrono::seconds>(clock_.wall().time_since_epoch()).count();
}

void DurableStore::load(Mirror& mirror, std::int64_t now) {
  std::lock_guard lock(mutex_);
  if (started_ || !db_)
    throw DurableStoreError("state store " + path_ + ": load() after start() or stop()");
  MirrorContents contents;
  const auto bad_row = [&](const char* table) {
    throw DurableStoreError("state store " + path_ + ": invalid row in " + table);
  };
  Statement revocations(db_, "SELECT issuer, jti, exp FROM revocations");
  int rc;
  while ((rc = revocations.step()) == SQLITE_ROW) {
    contents.revocations.push_back(
        Revocation{revocations.text(0), revocations.text(1), revocations.integer(2)});
    if (!is_valid(contents.revocations.back())) bad_row("revocations");
  }
  if (rc != SQLITE_DONE)
    throw DurableStoreError("state store " + path_ + ": " + revocations.error());

  Statement cutoffs(db_, "SELECT issuer, subject, issued_before FROM subject_cutoffs");
  while ((rc = cutoffs.step()) == SQLITE_ROW) {
    contents.cutoffs.push_back(SubjectCutoff{cutoffs.text(0), cutoffs.text(1), cutoffs.integer(2)});
    if (!is_valid(contents.cutoffs.back())) bad_row("subject_cutoffs");
  }
  if (rc != SQLITE_DONE) throw DurableStoreError("state store " + path_ + ": " + cutoffs.error());

  Statement bans(db_, "SELECT ip, until, reason FROM bans");
  while ((rc = bans.step()) == SQLITE_ROW) {
    Ban ban;
    const auto ip = bans.blob(0);
    if (ip.size() != ban.ip.bytes.size()) bad_row("bans");
    std::memcpy(ban.ip.bytes.data(), ip.data(), ip.size());
    ban.until = bans.integer(1);
    ban.reason = bans.text(2);
    if (!is_valid(ban)) bad_row("bans");
    contents.bans.push_back(std::move(ban));
  }
  if (rc != SQLITE_DONE) throw DurableStoreError("state store " + path_ + ": " + bans.error());

  if (const auto error = mirror.replace_all(contents, now))
    throw DurableStoreError("state store " + path_ + ": cannot load (" + error.message() +
                            "; raise the state table limits)");
}

void DurableStore::start() {
  std::lock_guard lock(mutex_);
  if (started_ || stopping_) return;
  started_ = true;
  writer_ = std::thread([this] { run(); });
}

void DurableStore::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!db_) return;  // stopped already
    stopping_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) {
    writer_.join();
  } else {
    // Never started: nothing will commit what was queued.
    std::deque<Pending> abandoned;
    {
      std::lock_guard lock(mutex_);
      abandoned.swap(queue_);
    }
    for (auto& pending : abandoned)
      if (pending.done) pending.done(StateError::stopped);
  }
  // Nothing uses the connection any more: release the file (and its lock) now.
  std::lock_guard lock(mutex_);
  sqlite3_close_v2(db_);
  db_ = nullptr;
}

void DurableStore::put(const Revocation& revocation, Done done) {
  if (!is_valid(revocation)) return refuse(done, StateError::invalid_record);
  enqueue(revocation, std::move(done));
}

void DurableStore::put(const SubjectCutoff& cutoff, Done done) {
  if (!is_valid(cutoff)) return refuse(done, StateError::invalid_record);
  enqueue(cutoff, std::move(done));
}

void DurableStore::put(const Ban& ban, Done done) {
  if (!is_valid(ban)) return refuse(done, StateError::invalid_record);
  Ban stored = ban;
  stored.ip = ban.ip.client_key();
  enqueue(std::move(stored), std::move(done));
}

void DurableStore::erase_ban(const core::IpAddress& ip, Done done) {
  enqueue(EraseBan{ip.client_key()}, std::move(done));
}

void DurableStore::purge(Done done) {
  enqueue(Purge{}, std::move(done));
}

void DurableStore::enqueue(Op op, Done done) {
  std::error_code refused;
  {
    std::lock_guard lock(mutex_);
    if (stopping_)
      refused = StateError::stopped;
    else if (queue_.size() >= options_.max_queued)
      refused = StateError::queue_full;
    else
      queue_.push_back(Pending{std::move(op), std::move(done)});
  }
  if (refused) {
    if (done) done(refused);
    return;
  }
  wake_.notify_one();
}

void DurableStore::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait_for(lock, options_.idle_wakeup, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_ && queue_.empty()) break;
    std::deque<Pending> batch;
    while (!queue_.empty() && batch.size() < options_.max_batch) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();
    if (!batch.empty()) {
      const auto result = commit(batch);
      for (auto& pending : batch)
        if (pending.done) pending.done(result);
    }
    if (clock_.monotonic() >= next_purge_) {
      next_purge_ = clock_.monotonic() + options_.purge_interval;
      std::deque<Pending> purge;
      purge.push_back(Pending{Purge{}, nullptr});
      commit(purge);
    }
    lock.lock();
  }
}

std::error_code DurableStore::commit(std::deque<Pending>& batch) {
  const auto now = now_seconds();
  if (!exec(db_, "BEGIN IMMEDIATE")) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    return StateError::store_failed;
  }
  std::uint64_t writes = 0;
  for (const auto& pending : batch) {
    if (auto error = execute(pending.op, now)) {
      exec(db_, "ROLLBACK");
      failures_.fetch_add(1, std::memory_order_relaxed);
      return error;
    }
    if (!std::holds_alternative<Purge>(pending.op)) ++writes;
  }
  if (!exec(db_, "COMMIT")) {
    exec(db_, "ROLLBACK");
    failures_.fetch_add(1, std::memory_order_relaxed);
    return StateError::store_failed;
  }
  transactions_.fetch_add(1, std::memory_order_relaxed);
  writes_.fetch_add(writes, std::memory_order_relaxed);
  return {};
}

std::error_code DurableStore::execute(const Op& op, std::int64_t now) {
  bool ok = false;
  if (const auto* r = std::get_if<Revocation>(&op)) {
    ok = Statement(db_,
                   "INSERT INTO revocations(issuer, jti, exp) VALUES(?1, ?2, ?3) "
                   "ON CONFLICT(issuer, jti) DO UPDATE SET exp = max(exp, excluded.exp)")
             .bind(1, r->issuer)
             .bind(2, r->jti)
             .bind(3, r->exp)
             .run();
  } else if (const auto* c = std::get_if<SubjectCutoff>(&op)) {
    ok = Statement(db_,
                   "INSERT INTO subject_cutoffs(issuer, subject, issued_before) VALUES(?1, ?2, ?3) "
                   "ON CONFLICT(issuer, subject) DO UPDATE SET "
                   "issued_before = max(issued_before, excluded.issued_before)")
             .bind(1, c->issuer)
             .bind(2, c->subject)
             .bind(3, c->issued_before)
             .run();
  } else if (const auto* b = std::get_if<Ban>(&op)) {
    // SET expressions all read the row as it was, so the reason follows the later end.
    ok =
        Statement(db_,
                  "INSERT INTO bans(ip, until, reason) VALUES(?1, ?2, ?3) "
                  "ON CONFLICT(ip) DO UPDATE SET "
                  "reason = CASE WHEN excluded.until > until THEN excluded.reason ELSE reason END, "
                  "until = max(until, excluded.until)")
            .bind(1, b->ip)
            .bind(2, b->until)
            .bind(3, b->reason)
            .run();
  } else if (const auto* e = std::get_if<EraseBan>(&op)) {
    ok = Statement(db_, "DELETE FROM bans WHERE ip = ?1").bind(1, e->ip).run();
  } else {
    return purge_rows(now);
  }
  return ok ? std::error_code() : StateError::store_failed;
}

std::error_code DurableStore::purge_rows(std::int64_t now) {
  const auto& retention = options_.retention;
  const std::int64_t revocations_before = now - retention.after_exp.count();
  const std::int64_t cutoffs_before =
      now - retention.max_token_lifetime.count() - retention.after_exp.count();
  std::uint64_t removed = 0;
  const auto remove = [&](const char* sql, std::int64_t bound) {
    if (!Statement(db_, sql).bind(1, bound).run()) return false;
    removed += static_cast<std::uint64_t>(sqlite3_changes(db_));
    return true;
  };
  const bool ok = remove("DELETE FROM revocations WHERE exp <= ?1", revocations_before) &&
                  remove("DELETE FROM subject_cutoffs WHERE issued_before <= ?1", cutoffs_before) &&
                  remove("DELETE FROM bans WHERE until <= ?1", now);
  if (!ok) return StateError::store_failed;
  purged_rows_.fetch_add(removed, std::memory_order_relaxed);
  return {};
}

DurableStoreStats DurableStore::stats() const {
  return DurableStoreStats{transactions_.load(), writes_.load(), failures_.load(),
                           purged_rows_.load()};
}

}  // namespace portcullis::state
