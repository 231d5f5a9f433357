// The master's commit log: records read back in order after a reopen; a torn or corrupt tail,
// and what an earlier round left behind a restart, are not read as records; a wait for an
// fsync polls before it sleeps.
#include "master/commit_log.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <unistd.h>

#include "test_util.h"

namespace ferry {
namespace {

using testing::TempDir;

std::vector<CommitLog::Record> Reopen(const std::string& path) {
  std::vector<CommitLog::Record> records;
  auto log = CommitLog::Open(path, &records);
  EXPECT_OK(log.status());
  return records;
}

// A new, empty log at `path`; null if it cannot be opened.
std::unique_ptr<CommitLog> OpenNew(const std::string& path) {
  std::vector<CommitLog::Record> records;
  auto log = CommitLog::Open(path, &records);
  EXPECT_OK(log.status());
  EXPECT_TRUE(records.empty());
  return log.ok() ? std::move(log).value() : nullptr;
}

TEST(CommitLogTest, RecordsComeBackInOrderAfterAReopen) {
  TempDir dir;
  const std::string path = dir.File("log");
  {
    auto log = OpenNew(path);
    ASSERT_NE(log, nullptr);
    for (uint64_t n = 7; n <= 9; ++n) ASSERT_OK(log->Append(n, {"payload " + std::to_string(n)}));
    ASSERT_OK(log->WaitSynced());
  }
  auto records = Reopen(path);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].number, 7u);
  EXPECT_EQ(records[2].number, 9u);
  EXPECT_EQ(records[2].payload, "payload 9");
}

// Records written together are one write and share one fsync, each still a record of its
// own with its number.
TEST(CommitLogTest, RecordsAppendedTogetherShareOneFsync) {
  TempDir dir;
  const std::string path = dir.File("log");
  {
    auto log = OpenNew(path);
    ASSERT_NE(log, nullptr);
    ASSERT_OK(log->Append(1, {"first"}));
    ASSERT_OK(log->WaitSynced());
    ASSERT_EQ(log->syncs(), 1u);
    ASSERT_OK(log->Append(2, {"second", "third", "fourth"}));
    ASSERT_OK(log->WaitSynced());
    EXPECT_EQ(log->syncs(), 2u);
    ASSERT_OK(log->Append(5, {}));  // nothing to write, nothing to wait for
    ASSERT_OK(log->WaitSynced());
    EXPECT_EQ(log->syncs(), 2u);
  }
  auto records = Reopen(path);
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[1].number, 2u);
  EXPECT_EQ(records[1].payload, "second");
  EXPECT_EQ(records[3].number, 4u);
  EXPECT_EQ(records[3].payload, "fourth");
}

TEST(CommitLogTest, ATornOrCorruptRecordEndsTheLog) {
  TempDir dir;
  const std::string path = dir.File("log");
  {
    auto log = OpenNew(path);
    ASSERT_NE(log, nullptr);
    for (uint64_t n = 1; n <= 3; ++n) ASSERT_OK(log->Append(n, {std::string(100, 'a' + n)}));
    ASSERT_OK(log->WaitSynced());
  }
  // One byte of the third record's payload changed: its CRC fails.
  const int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const off_t third = 2 * (CommitLog::kHeaderBytes + 100) + CommitLog::kHeaderBytes + 50;
  ASSERT_EQ(pwrite(fd, "x", 1, third), 1);
  close(fd);
  auto records = Reopen(path);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records.back().number, 2u);
}

TEST(CommitLogTest, RecordsOfAnEarlierRoundAfterARestartAreNotRead) {
  TempDir dir;
  const std::string path = dir.File("log");
  {
    auto log = OpenNew(path);
    ASSERT_NE(log, nullptr);
    for (uint64_t n = 1; n <= 5; ++n) ASSERT_OK(log->Append(n, {"first round"}));
    log->Restart();  // 1..5 are durable elsewhere
    ASSERT_OK(log->Append(6, {"second round"}));
    ASSERT_OK(log->WaitSynced());
  }
  // Behind record 6 lie the first round's 2..5, intact: they do not follow 6.
  auto records = Reopen(path);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].number, 6u);
  EXPECT_EQ(records[0].payload, "second round");
}

TEST(CommitLogTest, AWaitPollsForItsFsyncBeforeItSleeps) {
  TempDir dir;
  std::vector<CommitLog::Record> records;
  // A bound no fsync comes near: every wait ends while polling.
  auto polling = CommitLog::Open(dir.File("polling"), &records, std::chrono::seconds(10));
  ASSERT_OK(polling.status());
  // No polling: a wait for an fsync that is still running sleeps.
  auto sleeping = CommitLog::Open(dir.File("sleeping"), &records, std::chrono::microseconds(0));
  ASSERT_OK(sleeping.status());
  constexpr uint64_t kWaits = 20;
  for (uint64_t n = 1; n <= kWaits; ++n) {
    ASSERT_OK((*polling)->Append(n, {"payload"}));
    ASSERT_OK((*polling)->WaitSynced());
    ASSERT_OK((*sleeping)->Append(n, {"payload"}));
    ASSERT_OK((*sleeping)->WaitSynced());
  }
  EXPECT_EQ((*polling)->sleeping_waits(), 0u);
  EXPECT_EQ((*polling)->syncs(), kWaits);
  // The polling is counted as the CPU time it took; the log that does not poll counts only
  // the clock readings around its empty loop.
  EXPECT_GT((*polling)->poll_cpu_us(), (*sleeping)->poll_cpu_us());
  // An fsync that ends before its wait begins needs no sleep, so not quite all of them.
  EXPECT_GT((*sleeping)->sleeping_waits(), kWaits / 2);
  EXPECT_EQ(Reopen(dir.File("polling")).size(), kWaits);
}

TEST(CommitLogTest, Crc32OfTheCheckString) { EXPECT_EQ(Crc32("123456789"), 0xCBF43926u); }

}  // namespace
}  // namespace ferry
