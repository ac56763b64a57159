#include "portcullis/state/durable_store.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "unit/state/state_test_support.hpp"

namespace portcullis::state {
namespace {

using namespace std::chrono_literals;
using testing::Ack;
using testing::TempDir;

const std::string kIss = "https://idp.example";

core::IpAddress ip(const char* text) {
  return *core::IpAddress::parse(text);
}

// "prefix<i>" (appending avoids GCC 12's false -Wrestrict on "literal" + std::string).
std::string numbered(std::string prefix, std::size_t i) {
  prefix += std::to_string(i);
  return prefix;
}

std::int64_t unix_now(const core::Clock& clock) {
  return std::chrono::duration_cast<std::chrono::seconds>(clock.wall().time_since_epoch()).count();
}

// Writes through the store and waits for the acknowledgement.
template <class Record>
std::optional<std::error_code> put_and_wait(DurableStore& store, const Record& record) {
  Ack ack;
  store.put(record, ack.callback());
  return ack.wait();
}

TEST(DurableStore, RecordsSurviveAReopen) {
  TempDir dir;
  core::ManualClock clock;
  const auto now = unix_now(clock);
  {
    DurableStore store(dir.file("state.db"), clock);
    store.start();
    EXPECT_EQ(put_and_wait(store, Revocation{kIss, "jti-1", now + 600}), std::error_code());
    EXPECT_EQ(put_and_wait(store, Revocation{"", "jti-any", now + 600}), std::error_code());
    EXPECT_EQ(put_and_wait(store, SubjectCutoff{kIss, "alice", now}), std::error_code());
    EXPECT_EQ(put_and_wait(store, Ban{ip("2001:db8:7:7::1"), now + 60, "manual"}),
              std::error_code());
    EXPECT_EQ(put_and_wait(store, Ban{ip("192.0.2.9"), now + 60, "manual"}), std::error_code());
    Ack erased;
    store.erase_ban(ip("192.0.2.9"), erased.callback());
    EXPECT_EQ(erased.wait(), std::error_code());
  }
  DurableStore reopened(dir.file("state.db"), clock);
  Mirror mirror;
  reopened.load(mirror, now);
  EXPECT_TRUE(mirror.is_revoked(kIss, "jti-1", "", kNoIssuedAt, now));
  EXPECT_TRUE(mirror.is_revoked("https://elsewhere.example", "jti-any", "", kNoIssuedAt, now));
  EXPECT_TRUE(mirror.is_revoked(kIss, "", "alice", now - 1, now));
  const auto ban = mirror.ban_of(ip("2001:db8:7:7:1234::5"), now);
  ASSERT_TRUE(ban);
  EXPECT_EQ(ban->reason, "manual");
  EXPECT_FALSE(mirror.ban_of(ip("192.0.2.9"), now));
  const auto sizes = mirror.sizes();
  EXPECT_EQ(sizes.revocations, 2u);
  EXPECT_EQ(sizes.cutoffs, 1u);
  EXPECT_EQ(sizes.bans, 1u);
}

TEST(DurableStore, LoadSkipsExpiredRowsAndMergesLikeTheMirror) {
  TempDir dir;
  core::ManualClock clock;
  const auto now = unix_now(clock);
  DurableStoreOptions options;
  options.retention.after_exp = 0s;
  options.retention.max_token_lifetime = 3600s;
  {
    DurableStore store(dir.file("state.db"), clock, options);
    store.start();
    ASSERT_EQ(put_and_wait(store, Revocation{kIss, "short", now + 10}), std::error_code());
    ASSERT_EQ(put_and_wait(store, Revocation{kIss, "long", now + 1000}), std::error_code());
    ASSERT_EQ(put_and_wait(store, Revocation{kIss, "long", now + 20}), std::error_code());
    ASSERT_EQ(put_and_wait(store, Ban{ip("192.0.2.1"), now + 500, "first"}), std::error_code());
    ASSERT_EQ(put_and_wait(store, Ban{ip("192.0.2.1"), now + 50, "second"}), std::error_code());
  }
  DurableStore reopened(dir.file("state.db"), clock, options);
  MirrorOptions mirror_options;
  mirror_options.retention = options.retention;
  Mirror mirror(mirror_options);
  reopened.load(mirror, now + 100);
  EXPECT_FALSE(mirror.is_revoked(kIss, "short", "", kNoIssuedAt, now + 100));
  EXPECT_TRUE(mirror.is_revoked(kIss, "long", "", kNoIssuedAt, now + 100));
  ASSERT_TRUE(mirror.ban_of(ip("192.0.2.1"), now + 100));
  EXPECT_EQ(mirror.ban_of(ip("192.0.2.1"), now + 100)->reason, "first");
  EXPECT_EQ(mirror.sizes().revocations, 1u);
}

TEST(DurableStore, QueuedWritesCommitInOneTransaction) {
  TempDir dir;
  core::ManualClock clock;
  const auto now = unix_now(clock);
  DurableStore store(dir.file("state.db"), clock);
  std::vector<Ack> acks(20);
  for (std::size_t i = 0; i < acks.size(); ++i)
    store.put(Revocation{kIss, numbered("j", i), now + 60}, acks[i].callback());
  EXPECT_FALSE(acks[0].ready());  // nothing commits before start()
  store.start();
  for (auto& ack : acks)
    EXPECT_EQ(ack.wait(), std::error_code());
  const auto stats = store.stats();
  EXPECT_EQ(stats.transactions, 1u);
  EXPECT_EQ(stats.writes, 20u);
  EXPECT_EQ(stats.failures, 0u);
}

TEST(DurableStore, RefusesInvalidRecordsAFullQueueAndWritesAfterStop) {
  TempDir dir;
  core::ManualClock clock;
  const auto now = unix_now(clock);
  DurableStoreOptions options;
  options.max_queued = 2;
  DurableStore store(dir.file("state.db"), clock, options);
  Ack invalid;
  store.put(Revocation{kIss, "", now + 60}, invalid.callback());
  EXPECT_EQ(invalid.wait(), std::error_code(StateError::invalid_record));
  Ack first, second, third;
  store.put(Revocation{kIss, "a", now + 60}, first.callback());
  store.put(Revocation{kIss, "b", now + 60}, second.callback());
  store.put(Revocation{kIss, "c", now + 60}, third.callback());
  EXPECT_EQ(third.wait(), std::error_code(StateError::queue_full));
  store.stop();  // never started: what was queued is refused, not lost silently
  EXPECT_EQ(first.wait(), std::error_code(StateError::stopped));
  EXPECT_EQ(second.wait(), std::error_code(StateError::stopped));
  Ack late;
  store.put(Revocation{kIss, "d", now + 60}, late.callback());
  EXPECT_EQ(late.wait(), std::error_code(StateError::stopped));
}

TEST(DurableStore, StopCommitsWhatWasQueued) {
  TempDir dir;
  core::ManualClock clock;
  const auto now = unix_now(clock);
  std::vector<Ack> acks(50);
  {
    DurableStore store(dir.file("state.db"), clock);
    store.start();
    for (std::size_t i = 0; i < acks.size(); ++i)
      store.put(Revocation{kIss, numbered("j", i), now + 60}, acks[i].callback());
    store.stop();
    for (auto& ack : acks)
      ASSERT_TRUE(ack.ready());
  }
  for (auto& ack : acks)
    EXPECT_EQ(ack.wait(), std::error_code());
  DurableStore reopened(dir.file("state.db"), clock);
  Mirror mirror;
  reopened.load(mirror, now);
  EXPECT_EQ(mirror.sizes().revocations, acks.size());
}

TEST(DurableStore, PurgesExpiredRowsPeriodicallyAndOnRequest) {
  TempDir dir;
  core::ManualClock clock;
  const auto now = unix_now(clock);
  DurableStoreOptions options;
  options.retention.after_exp = 0s;
  options.purge_interval = 60s;
  DurableStore store(dir.file("state.db"), clock, options);
  store.start();
  ASSERT_EQ(put_and_wait(store, Revocation{kIss, "soon", now + 5}), std::error_code());
  ASSERT_EQ(put_and_wait(store, Ban{ip("192.0.2.1"), now + 5, ""}), std::error_code());
  ASSERT_EQ(put_and_wait(store, Revocation{kIss, "later", now + 6000}), std::error_code());
  EXPECT_EQ(store.stats().purged_rows, 0u);

  // Explicit purge: nothing has expired yet.
  Ack nothing;
  store.purge(nothing.callback());
  ASSERT_EQ(nothing.wait(), std::error_code());
  EXPECT_EQ(store.stats().purged_rows, 0u);

  // Past the interval, the writer purges after its next batch; the batch after that sees it done.
  clock.advance(61s);
  ASSERT_EQ(put_and_wait(store, Revocation{kIss, "x", now + 6000}), std::error_code());
  ASSERT_EQ(put_and_wait(store, Revocation{kIss, "y", now + 6000}), std::error_code());
  EXPECT_EQ(store.stats().purged_rows, 2u);
}

TEST(DurableStore, AnAcknowledgedWriteSurvivesKill9) {
  TempDir dir;
  const std::string path = dir.file("state.db");
  const std::int64_t exp = unix_now(core::system_clock()) + 3600;
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    try {
      DurableStore store(path, core::system_clock());
      store.start();
      Ack ack;
      store.put(Revocation{kIss, "acknowledged", exp}, ack.callback());
      const auto result = ack.wait();
      const char byte = (result && !*result) ? 'A' : 'F';
      if (::write(pipe_fds[1], &byte, 1) != 1) ::_exit(2);
      // Keep the store busy so the kill lands in the middle of later writes.
      for (std::size_t i = 0;; ++i) {
        Ack more;
        store.put(Revocation{kIss, numbered("more", i), exp}, more.callback());
        more.wait();
      }
    } catch (...) {
      const char byte = 'E';
      [[maybe_unused]] auto written = ::write(pipe_fds[1], &byte, 1);
    }
    ::_exit(1);
  }
  ::close(pipe_fds[1]);
  char byte = 0;
  const auto got = ::read(pipe_fds[0], &byte, 1);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(pipe_fds[0]);
  ASSERT_EQ(got, 1);
  ASSERT_EQ(byte, 'A');
  ASSERT_TRUE(WIFSIGNALED(status));

  DurableStore reopened(path, core::system_clock());
  Mirror mirror;
  reopened.load(mirror, unix_now(core::system_clock()));
  EXPECT_TRUE(
      mirror.is_revoked(kIss, "acknowledged", "", kNoIssuedAt, unix_now(core::system_clock())));
}

TEST(DurableStore, ACorruptFileIsAClearError) {
  TempDir dir;
  const std::string path = dir.file("state.db");
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 512; ++i)
      out << "not a database, just bytes ";
  }
  core::ManualClock clock;
  try {
    DurableStore store(path, clock);
    FAIL() << "opened a corrupt file";
  } catch (const DurableStoreError& error) {
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("not a database"), std::string::npos) << error.what();
  }
}

TEST(DurableStore, ADamagedDatabaseIsAClearError) {
  TempDir dir;
  const std::string path = dir.file("state.db");
  core::ManualClock clock;
  {
    DurableStore store(path, clock);
    store.start();
    for (std::size_t i = 0; i < 300; ++i)
      store.put(Revocation{kIss, numbered(std::string(200, 'j'), i), 1'900'000'000}, nullptr);
  }  // stop() commits them all; closing checkpoints the WAL into the file
  {
    // Overwrite a page in the middle of the file (not the header).
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(4096 * 3);
    const std::string garbage(4096, '\x5a');
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  try {
    DurableStore store(path, clock);
    Mirror mirror;
    store.load(mirror, unix_now(clock));
    FAIL() << "opened a damaged file";
  } catch (const DurableStoreError& error) {
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("integrity check failed"), std::string::npos)
        << error.what();
  }
}

TEST(DurableStore, AnotherApplicationsDatabaseIsRefused) {
  TempDir dir;
  const std::string path = dir.file("other.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  core::ManualClock clock;
  try {
    DurableStore store(path, clock);
    FAIL() << "opened a foreign database";
  } catch (const DurableStoreError& error) {
    EXPECT_NE(std::string(error.what()).find("not a portcullis state file"), std::string::npos)
        << error.what();
  }
}

TEST(DurableStore, AnUnusablePathIsAClearError) {
  TempDir dir;
  core::ManualClock clock;
  const std::string missing = dir.file("no-such-dir/state.db");
  try {
    DurableStore store(missing, clock);
    FAIL() << "opened " << missing;
  } catch (const DurableStoreError& error) {
    EXPECT_NE(std::string(error.what()).find(missing), std::string::npos) << error.what();
  }
  EXPECT_THROW(DurableStore("", clock), DurableStoreError);
}

TEST(DurableStore, TheFileIsHeldByOneStoreAtATime) {
  TempDir dir;
  core::ManualClock clock;
  DurableStore first(dir.file("state.db"), clock);
  try {
    DurableStore second(dir.file("state.db"), clock);
    FAIL() << "opened a file another store holds";
  } catch (const DurableStoreError& error) {
    EXPECT_NE(std::string(error.what()).find("in use"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace portcullis::state
