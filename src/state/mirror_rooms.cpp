#include "portcullis/state/mirror_rooms.hpp"

namespace portcullis::state {

bool MirrorRooms::full(Kind kind, std::size_t taken) const {
  const MirrorSizes sizes = mirror_.sizes();
  const MirrorOptions& options = mirror_.options();
  switch (kind) {
    case Kind::revocation:
      return sizes.revocations + taken >= options.max_revocations;
    case Kind::cutoff:
      return sizes.cutoffs + taken >= options.max_cutoffs;
    case Kind::ban:
      return sizes.bans + taken >= options.max_bans;
  }
  return true;
}

MirrorRooms::Room MirrorRooms::take(Kind kind, std::int64_t now) {
  std::lock_guard lock(mutex_);
  std::size_t& taken = taken_[static_cast<std::size_t>(kind)];
  if (full(kind, taken)) {
    mirror_.purge_expired(now);
    if (full(kind, taken)) return Room::none;
  }
  ++taken;
  return Room::taken;
}

void MirrorRooms::give_back(Kind kind) {
  std::lock_guard lock(mutex_);
  --taken_[static_cast<std::size_t>(kind)];
}

}  // namespace portcullis::state
