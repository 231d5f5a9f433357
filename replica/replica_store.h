#ifndef FERRY_REPLICA_REPLICA_STORE_H_
#define FERRY_REPLICA_REPLICA_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/ferry.pb.h"

namespace ferry {

enum class JobState { kPosted, kExecuting, kReady, kError };
const char* JobStateName(JobState state);  // "Posted", "Executing", "Ready", "Error"

struct Job {
  uint64_t id = 0;
  uint64_t sequence = 0;  // of the replication message it applies
  std::string queue;
  JobState state = JobState::kPosted;
};

// A replica site's database: the inbox of received messages, the jobs that apply them, the
// installed master configuration, the LU tables and the replication sessions. The replica
// node and its worker processes each open it (SQLite in WAL mode; PostgreSQL later behind
// the same interface). Not thread-safe: one owner per process.
class ReplicaStore {
 public:
  virtual ~ReplicaStore() = default;

  // ---- Used by the replica node.

  // In one durable transaction: stores each message in the inbox and posts it as a job on
  // `queue_for_messages`. A Receive_Configuration message is installed instead (its LU tables
  // created, the catalog kept for the workers) and its job recorded as Ready on
  // `queue_for_configuration`. REQUIRES: sequences continue LastReceivedSequence() without
  // a gap. Returns the jobs posted to run.
  virtual StatusOr<std::vector<Job>> StoreMessages(
      const std::vector<wire::ReplicationMessage>& messages, const std::string& queue_for_messages,
      const std::string& queue_for_configuration, int64_t now_us) = 0;

  virtual uint64_t LastReceivedSequence() const = 0;

  // Jobs not yet Ready, by sequence: what to dispatch after a restart.
  virtual StatusOr<std::vector<Job>> UnfinishedJobs() = 0;

  // Records that `session` starts job `job_id` (one more attempt).
  virtual Status MarkExecuting(uint64_t job_id, const std::string& session, int64_t now_us) = 0;

  // Starts a new replication session (one per start of the node) and returns its id.
  virtual StatusOr<std::string> BeginSession(int pid, int64_t now_us) = 0;

  // Job counts by queue and state name.
  virtual StatusOr<std::map<std::string, std::map<std::string, uint64_t>>> CountJobs() = 0;

  // ---- Used by a worker.

  // Applies job `job_id`'s LU changes and marks it Ready in one durable transaction; a job
  // that is Ready already changes nothing. On failure nothing of it is applied, the job is
  // marked Error with the returned message (naming the job, the LU, the key and what failed).
  virtual Status ApplyJob(uint64_t job_id, int64_t now_us) = 0;
};

struct ReplicaStoreOptions {
  bool create = true;  // create the database if missing (the node); a worker opens an existing one
};

StatusOr<std::unique_ptr<ReplicaStore>> OpenSqliteReplicaStore(const std::string& path,
                                                               const ReplicaStoreOptions& options);

}  // namespace ferry

#endif  // FERRY_REPLICA_REPLICA_STORE_H_
