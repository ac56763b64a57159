#pragma once
// The `memory` state backend: one instance's Mirror, written through to a DurableStore when
// `state.memory.path` is set. With a path, a write reaches the mirror (and so the request path)
// only after the store has committed it, so nothing is enforced that a restart would forget, and
// `done` runs on the store's writer thread. Without a path, writes apply at once and `done` runs
// before the write call returns; state then lives in this process only (durable() is false).
//
// Caps: a write that adds a key takes a room in the mirror (mirror_rooms.hpp) before it goes to
// disk, so the file never holds more than the mirror can load.
//
// Wiring: construct (opens the file and loads it; throws DurableStoreError), start(), share as
// Backend&; call maintain() from a timer; stop() before the clock or the callers go away.

#include <memory>
#include <string>

#include "portcullis/core/clock.hpp"
#include "portcullis/state/backend.hpp"
#include "portcullis/state/durable_store.hpp"
#include "portcullis/state/mirror_rooms.hpp"

namespace portcullis::state {

struct MemoryBackendOptions {
  std::string path;  // "" = this process only
  MirrorOptions mirror;
  DurableStoreOptions store;  // its retention is taken from `mirror`
};

class MemoryBackend final : public Backend {
 public:
  MemoryBackend(const MemoryBackendOptions& options, const core::Clock& clock);
  ~MemoryBackend() override;

  const Mirror& mirror() const override { return mirror_; }
  void revoke(Revocation revocation, Done done) override;
  void cut_off(SubjectCutoff cutoff, Done done) override;
  void ban(Ban ban, Done done) override;
  void unban(core::IpAddress ip, Done done) override;
  bool available() const override { return true; }  // local reads never fail
  bool durable() const override { return store_ != nullptr; }
  void start() override;
  void stop() override;
  void maintain() override;

  // The store's counters (zeros without a path).
  DurableStoreStats store_stats() const;

 private:
  template <class Record>
  void write(Record record, Done done);
  std::int64_t now() const;

  const core::Clock& clock_;
  Mirror mirror_;
  MirrorRooms rooms_{mirror_};
  std::unique_ptr<DurableStore> store_;  // last: its writer drains before the rest goes away
};

}  // namespace portcullis::state
