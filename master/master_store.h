#ifndef FERRY_MASTER_MASTER_STORE_H_
#define FERRY_MASTER_MASTER_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/catalog.h"
#include "common/status.h"
#include "proto/ferry.pb.h"

namespace ferry {

// One stored replication message of a replica's stream: a serialized wire::ReplicationMessage.
struct OutboxEntry {
  uint64_t sequence = 0;
  std::string message;
};

struct StreamPosition {
  std::string site;
  uint64_t latest_sequence = 0;        // the newest message on the stream
  uint64_t acknowledged_sequence = 0;  // the replica has stored everything up to here
  uint64_t first_available = 1;        // the oldest sequence the outbox holds (latest + 1: none)
};

struct PruneResult {
  size_t entries = 0;                   // outbox entries removed
  std::vector<std::string> past_quota;  // sites whose unacknowledged entries went too
};

// The master's database: the LU tables, the outbox of every replica's stream and the stream
// positions. SQLite now (OpenSqliteMasterStore); PostgreSQL later behind the same interface.
// Not thread-safe: the Master node owns it.
class MasterStore {
 public:
  virtual ~MasterStore() = default;

  // Checks every change against the catalog and the stored rows and, only if all of them
  // hold, commits the rows and one outbox entry per replica site they route to, as one
  // transaction, durable when this returns. A rejected request stores nothing; its error
  // names the change (by its position), the LU, the key and what is wrong.
  StatusOr<wire::SubmitReply> Commit(const wire::SubmitRequest& request, int64_t commit_time_us) {
    return std::move(CommitGroup({&request}, commit_time_us).front());
  }
  // Commits each request as Commit does, in order, each its own transaction (a rejected one
  // does not stop the others; a later one sees an earlier one's rows), and makes them durable
  // together before returning: the group shares its syncs. The replies are in the requests'
  // order. A storage error breaks the store: that request and every later one fail with it,
  // and so does every one if the sync fails.
  virtual std::vector<StatusOr<wire::SubmitReply>> CommitGroup(
      const std::vector<const wire::SubmitRequest*>& requests, int64_t commit_time_us) = 0;

  // Committed transactions may wait, durable but in a group, for this to put them where
  // other readers of the database see them (the owner calls it within milliseconds; an
  // error means the store must be opened again). The store's own reads see them at once.
  virtual Status Flush() = 0;
  virtual bool HasUnflushed() const = 0;

  // Puts a Receive_Configuration message on the stream of every replica site that has not
  // been sent this configuration yet (at the first start: all of them), followed, on a new
  // site's stream, by a snapshot of the rows routed to it if there are any. Returns the sites.
  virtual StatusOr<std::vector<std::string>> PublishConfiguration(int64_t now_us) = 0;

  // Appends to `site`'s stream, in one transaction, the configuration and a snapshot of every
  // row it routes to the site (Receive_Snapshot parts, parents' rows first; the first part
  // empties the site's LU tables). Returns the sequence of the configuration message.
  virtual StatusOr<uint64_t> AppendSnapshot(const std::string& site, int64_t now_us) = 0;

  // Writes the stream positions (a commit writes only its outbox entries: they tell the
  // newest sequence until then); removes outbox entries that their site acknowledged,
  // and entries beyond the newest
  // `quota` of a site (that site will need a snapshot), and idempotency keys over 24 hours old.
  virtual StatusOr<PruneResult> Prune(uint64_t quota, int64_t now_us) = 0;

  // Up to `max` entries of `site`'s stream from `from_sequence` on, in order. Fails once the
  // store is broken: what its open group holds may not be durable and must not be sent.
  virtual StatusOr<std::vector<OutboxEntry>> ReadOutbox(const std::string& site,
                                                        uint64_t from_sequence, size_t max) = 0;

  // Records that `site` has stored everything up to `sequence`. Written to the database with
  // the next Prune (a crash may forget it; the site's next hello tells it again).
  virtual Status RecordAcknowledged(const std::string& site, uint64_t sequence) = 0;

  virtual std::vector<StreamPosition> Streams() const = 0;
  // The position of `site`'s stream (zeros for a site without one).
  virtual StreamPosition Position(const std::string& site) const = 0;
  virtual uint64_t LastTransactionId() const = 0;
  // The syncs that made submits durable since the store was opened.
  virtual uint64_t DurableSyncs() const = 0;
  // The CPU time spent polling for those syncs, in microseconds (CommitLog::poll_cpu_us).
  virtual uint64_t SyncPollCpuMicros() const = 0;
};

// Opens (creating if needed) the SQLite master database at `path` for `catalog`.
StatusOr<std::unique_ptr<MasterStore>> OpenSqliteMasterStore(
    const std::string& path, std::shared_ptr<const Catalog> catalog);

}  // namespace ferry

#endif  // FERRY_MASTER_MASTER_STORE_H_
