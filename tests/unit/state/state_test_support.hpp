#pragma once
// Helpers for the state tests: a scratch directory and a write acknowledgement to wait for.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

namespace portcullis::state::testing {

inline constexpr std::chrono::seconds kAckTimeout{20};

// A directory removed with its contents at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "portcullis-state-XXXXXX");
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const char* name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A write's completion: callback() makes the Done, wait() blocks at most kAckTimeout for it.
class Ack {
 public:
  std::function<void(std::error_code)> callback() {
    auto promise = promise_;
    return [promise](std::error_code error) { promise->set_value(error); };
  }
  bool ready() const {
    return future_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }
  // The result, or nullopt when none came in time.
  std::optional<std::error_code> wait() {
    if (future_.wait_for(kAckTimeout) != std::future_status::ready) return std::nullopt;
    return future_.get();
  }

 private:
  std::shared_ptr<std::promise<std::error_code>> promise_ =
      std::make_shared<std::promise<std::error_code>>();
  std::shared_future<std::error_code> future_ = promise_->get_future().share();
};

}  // namespace portcullis::state::testing
