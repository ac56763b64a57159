#pragma once
// Room in a Mirror for writes still on their way to the backend's store (a file, Redis).
//
// A write whose key the mirror does not hold yet takes a room before it leaves and gives it back
// once it has landed in the mirror or failed. Records held plus rooms taken never exceed the
// mirror's cap of that kind, so a write the store has acknowledged always fits in the mirror: no
// store ever holds a record the mirror that acknowledged it cannot enforce. Expired records are
// purged first when a table looks full. Thread-safe.

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "portcullis/state/mirror.hpp"

namespace portcullis::state {

class MirrorRooms {
 public:
  enum class Kind { revocation, cutoff, ban };
  enum class Room {
    not_needed,  // the key is held already: the write replaces it in place
    taken,       // give it back when the write has landed or failed
    none,        // the table is full: refuse the write (capacity_exceeded)
  };

  explicit MirrorRooms(Mirror& mirror) : mirror_(mirror) {}

  static Kind kind_of(const Revocation&) { return Kind::revocation; }
  static Kind kind_of(const SubjectCutoff&) { return Kind::cutoff; }
  static Kind kind_of(const Ban&) { return Kind::ban; }

  template <class Record>
  Room take(const Record& record, std::int64_t now) {
    if (mirror_.contains(record)) return Room::not_needed;
    return take(kind_of(record), now);
  }
  void give_back(Kind kind);

 private:
  Room take(Kind kind, std::int64_t now);
  // Whether records of `kind` held plus `taken` rooms reach the cap.
  bool full(Kind kind, std::size_t taken) const;

  Mirror& mirror_;
  std::mutex mutex_;
  std::array<std::size_t, 3> taken_{};
};

}  // namespace portcullis::state
