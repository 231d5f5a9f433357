#ifndef FERRY_MASTER_COMMIT_LOG_H_
#define FERRY_MASTER_COMMIT_LOG_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"

namespace ferry {

// The master's commit log: a file of numbered records, each durable once WaitSynced() says
// so. A submitted transaction is durable by its record; SQLite gets it in a group commit a
// few milliseconds later, and after a crash the records SQLite lacks are applied again, in
// order. Records go to a preallocated file, whose fsyncs run on a thread of their own while
// the transactions are applied; the submits that waited together share them. The appending
// thread starts the records' write to the disk itself, so the fsync thread's wake-up is not on
// its path; a wait for an fsync polls before it sleeps: see WaitSynced.
//
// Record: [u32 payload length][u32 CRC-32 of number and payload][u64 number][payload], numbers
// consecutive. Reading stops at the first record that is torn, fails its CRC, or does not
// follow its predecessor's number (what an earlier round left behind Restart's records).
class CommitLog {
 public:
  struct Record {
    uint64_t number = 0;
    std::string payload;
  };

  // How long WaitSynced polls before it sleeps: longer than most fsyncs here (p90 about
  // 430 us with a replica on the same machine).
  static constexpr std::chrono::microseconds kPollBeforeSleep{1000};

  // Opens (creating and preallocating if needed) the log at `path`; `*records` gets the valid
  // records it holds, in order.
  static StatusOr<std::unique_ptr<CommitLog>> Open(
      const std::string& path, std::vector<Record>* records,
      std::chrono::microseconds poll_before_sleep = kPollBeforeSleep);
  ~CommitLog();
  CommitLog(const CommitLog&) = delete;
  CommitLog& operator=(const CommitLog&) = delete;

  // Writes `payloads` as records `first_number`, `first_number` + 1, ... after the last one,
  // in one write, starts that write to the disk, and starts their fsync in the background:
  // records written together share an fsync, which runs while their transactions are applied.
  // REQUIRES: HasRoomFor(the sum of their RecordBytes); `first_number` follows the last
  // appended (any after Open or Restart).
  Status Append(uint64_t first_number, const std::vector<std::string>& payloads);
  // Waits until everything Append wrote is durable. It polls for up to `poll_before_sleep`,
  // yielding its CPU to any thread that wants it, and sleeps only then: the fsync thread's
  // wake-up through the condition variable would add 30-60 us (this VM, loaded) to the
  // fsync's 100-200, and one client's every transaction waits for one.
  Status WaitSynced();
  // Of the WaitSynced calls since Open, the ones that found the fsync still running after the
  // polling and slept.
  uint64_t sleeping_waits() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return sleeping_waits_;
  }
  // The fsyncs done since Open.
  uint64_t syncs() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return syncs_;
  }
  // The CPU time the waiting threads spent polling in WaitSynced since Open, in microseconds.
  // Each look yields the CPU to any other thread that wants it, so a count of CPU time that
  // includes the polling overstates what a transaction needs.
  uint64_t poll_cpu_us() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return poll_cpu_us_;
  }
  // The records so far are durable elsewhere: the next one goes to the start of the file.
  void Restart() { end_ = 0; }
  bool HasRoomFor(size_t record_bytes) const { return end_ + record_bytes <= kFileBytes; }
  // What a record of `payload_bytes` takes in the file.
  static size_t RecordBytes(size_t payload_bytes) { return kHeaderBytes + payload_bytes; }

  static constexpr size_t kHeaderBytes = 16;
  static constexpr size_t kFileBytes = 16 << 20;

 private:
  CommitLog(int fd, std::string path, std::chrono::microseconds poll_before_sleep);
  void SyncLoop();

  const int fd_;
  const std::string path_;
  const std::chrono::microseconds poll_before_sleep_;
  size_t end_ = 0;  // where the next record goes
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t appended_ = 0;            // records written
  std::atomic<uint64_t> synced_{0};  // of them, the ones an fsync has covered (polled)
  uint64_t syncs_ = 0;               // fsyncs done
  uint64_t sleeping_waits_ = 0;
  uint64_t poll_cpu_us_ = 0;
  Status error_;  // the first failed fsync: nothing after it is known durable
  bool stop_ = false;
  std::thread syncer_;  // last: starts after the members it uses
};

// CRC-32 (IEEE), for the log's records.
uint32_t Crc32(std::string_view bytes, uint32_t crc = 0);

}  // namespace ferry

#endif  // FERRY_MASTER_COMMIT_LOG_H_
