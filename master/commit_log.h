#ifndef FERRY_MASTER_COMMIT_LOG_H_
#define FERRY_MASTER_COMMIT_LOG_H_

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
// the transactions are applied; the submits that waited together share them.
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

  // Opens (creating and preallocating if needed) the log at `path`; `*records` gets the valid
  // records it holds, in order.
  static StatusOr<std::unique_ptr<CommitLog>> Open(const std::string& path,
                                                   std::vector<Record>* records);
  ~CommitLog();
  CommitLog(const CommitLog&) = delete;
  CommitLog& operator=(const CommitLog&) = delete;

  // Writes a record after the last one and starts its fsync in the background.
  // REQUIRES: HasRoomFor(payload.size()); `number` follows the last appended (any after Open
  // or Restart).
  Status Append(uint64_t number, std::string_view payload);
  // Waits until everything Append wrote is durable.
  Status WaitSynced();
  // The fsyncs done since Open.
  uint64_t syncs() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return syncs_;
  }
  // The records so far are durable elsewhere: the next one goes to the start of the file.
  void Restart() { end_ = 0; }
  bool HasRoomFor(size_t payload_bytes) const {
    return end_ + kHeaderBytes + payload_bytes <= kFileBytes;
  }

  static constexpr size_t kHeaderBytes = 16;
  static constexpr size_t kFileBytes = 16 << 20;

 private:
  CommitLog(int fd, std::string path);
  void SyncLoop();

  const int fd_;
  const std::string path_;
  size_t end_ = 0;  // where the next record goes
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t appended_ = 0;  // records written
  uint64_t synced_ = 0;    // of them, the ones an fsync has covered
  uint64_t syncs_ = 0;     // fsyncs done
  Status error_;           // the first failed fsync: nothing after it is known durable
  bool stop_ = false;
  std::thread syncer_;  // last: starts after the members it uses
};

// CRC-32 (IEEE), for the log's records.
uint32_t Crc32(std::string_view bytes, uint32_t crc = 0);

}  // namespace ferry

#endif  // FERRY_MASTER_COMMIT_LOG_H_
