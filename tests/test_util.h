#ifndef FERRY_TESTS_TEST_UTIL_H_
#define FERRY_TESTS_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "proto/ferry.pb.h"

#define ASSERT_OK(expr)                                                        \
  do {                                                                         \
    const ::ferry::Status ferry_assert_status_ = (expr);                       \
    ASSERT_TRUE(ferry_assert_status_.ok()) << ferry_assert_status_.ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                                        \
  do {                                                                         \
    const ::ferry::Status ferry_expect_status_ = (expr);                       \
    EXPECT_TRUE(ferry_expect_status_.ok()) << ferry_expect_status_.ToString(); \
  } while (0)

namespace ferry::testing {

// A fresh directory under the system temp folder, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// The deployment's master configuration file (deploy/master_configuration.txtpb).
std::string DeployedMasterConfiguration();
// A built executable ("ferry-master").
std::string Executable(const std::string& name);

// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// A clock that stands still at `now_us` (steady time alike), for tests that stamp things.
class FixedClock : public Clock {
 public:
  explicit FixedClock(int64_t now_us) : now_us_(now_us) {}
  int64_t NowMicros() const override { return now_us_; }
  std::chrono::steady_clock::time_point Steady() const override {
    return std::chrono::steady_clock::time_point(std::chrono::microseconds(now_us_));
  }

 private:
  int64_t now_us_;
};

// An LU change and a transaction of them, for tests that build their own.
wire::LuChange Change(const std::string& lu, wire::ChangeAction action,
                      const std::map<std::string, std::string>& keys,
                      const std::map<std::string, std::string>& attributes = {});
wire::SubmitRequest Transaction(const std::vector<wire::LuChange>& changes);

}  // namespace ferry::testing

#endif  // FERRY_TESTS_TEST_UTIL_H_
