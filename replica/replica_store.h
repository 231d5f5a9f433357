#ifndef FERRY_REPLICA_REPLICA_STORE_H_
#define FERRY_REPLICA_REPLICA_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/codec.h"
#include "common/status.h"
#include "proto/config.pb.h"
#include "proto/ferry.pb.h"

namespace ferry {

// A job's stored state. A job waiting for another is Posted here; Waiting is the replica's
// in-memory view of it.
enum class JobState { kPosted, kExecuting, kReady, kError, kSkipped };
const char* JobStateName(JobState state);  // "Posted", "Executing", "Ready", "Error", "Skipped"

struct Job {
  // The sequence of the message it applies: one job per message, and whichever process stores
  // the message first (the node, or the worker it handed the message to) posts the same job.
  // Jobs stored before this rule keep the ids they had, which are never above their sequence.
  uint64_t id = 0;
  uint64_t sequence = 0;  // of the replication message it applies
  std::string queue;
  JobState state = JobState::kPosted;
  int attempts = 0;                  // every attempt so far
  int released_attempts = 0;         // attempts when an operator last retried it
  wire::ReplicationMessage message;  // empty in what StoreMessages returns
};

// Operator overrides of a queue's configuration, kept across restarts.
struct QueueSetting {
  std::optional<int> processes;
  bool paused = false;
};

// A replica site's database: the inbox of received messages, the jobs that apply them with
// every attempt, the installed master configuration, the LU tables, the replication sessions
// and the operators' queue settings. The replica node and its worker processes each open it
// (SQLite in WAL mode; PostgreSQL later behind the same interface). Not thread-safe: one
// owner per process.
class ReplicaStore {
 public:
  virtual ~ReplicaStore() = default;

  // ---- Used by the replica node.

  // In one transaction: stores each message in the inbox, its bytes as they are, and posts it
  // as a job (its id is the sequence) on the queue `queue_for` names for its class, received
  // and posted at the message's received_at_us (`now_us` if it has none); a message
  // that a worker stored already (Attempt::message) keeps its row and its job. Durable only
  // after the next Sync() (a power cut may take back the newest of these commits, never an
  // older one without them: WAL commits survive as a prefix). REQUIRES: sequences continue
  // LastReceivedSequence() without a gap. Returns the jobs, one per message, in order, as
  // posted (a stored one may be further along), without their messages (the caller has them).
  virtual StatusOr<std::vector<Job>> StoreMessages(
      const std::vector<ReceivedMessage>& messages,
      const std::function<std::string(wire::MessageClass)>& queue_for, int64_t now_us) = 0;

  // The newest sequence stored with every one before it (or pruned after it was).
  virtual uint64_t LastReceivedSequence() const = 0;
  // Sequences after LastReceivedSequence() stored already, as they were when the store was
  // opened: a worker stores each message it is handed before the node does, so after a crash
  // the inbox may hold some beyond a gap. Their jobs exist; StoreMessages leaves them as they
  // are.
  virtual const std::set<uint64_t>& StoredBeyondLastReceived() const = 0;
  // Makes everything committed so far durable (one fsync), whatever connection committed it.
  virtual Status Sync() = 0;
  // The master superseded the stream up to `sequence` (a snapshot follows): continue after it.
  // REQUIRES: sequence >= LastReceivedSequence().
  virtual Status SkipTo(uint64_t sequence) = 0;

  // Jobs not finished (not Ready, not Skipped), by sequence, messages included.
  virtual StatusOr<std::vector<Job>> UnfinishedJobs() = 0;
  // The configuration in force for the next message: the newest one received.
  virtual StatusOr<std::optional<config::MasterConfiguration>> NewestConfiguration() = 0;

  // Operator actions: the job is set aside, or gets a fresh retry budget.
  virtual Status MarkSkipped(uint64_t job_id, int64_t now_us) = 0;
  virtual Status MarkReleased(uint64_t job_id) = 0;

  virtual StatusOr<std::map<std::string, QueueSetting>> QueueSettings() = 0;
  virtual Status SaveQueueSetting(const std::string& queue, const QueueSetting& setting) = 0;

  // Starts a new replication session (one per start of the node) and returns its id.
  virtual StatusOr<std::string> BeginSession(int pid, int64_t now_us) = 0;

  // Jobs by queue and stored state name.
  using JobCounts = std::map<std::string, std::map<std::string, uint64_t>>;
  virtual StatusOr<JobCounts> CountJobs() = 0;
  // Jobs with their attempts, newest first; empty `queue`/`state` match all.
  virtual StatusOr<std::vector<wire::JobRecord>> ListJobs(const std::string& queue,
                                                          const std::string& state, uint64_t job_id,
                                                          size_t limit) = 0;
  // Removes finished (Ready, Skipped) jobs that finished before `before_us`, with their
  // attempts and inbox messages. Returns how many; `removed`, if given, gets them by queue
  // and state.
  virtual StatusOr<size_t> PruneFinished(int64_t before_us, JobCounts* removed) = 0;

  // ---- Used by a worker.

  // The message job `job_id` applies.
  virtual StatusOr<wire::ReplicationMessage> ReadJobMessage(uint64_t job_id) = 0;

  // One attempt at a job, as a worker sees it.
  struct Attempt {
    uint64_t job_id = 0;
    int attempt = 1;
    std::string session_id;
    int pid = 0;
    int64_t started_at_us = 0;  // when the worker took the job
    // The message's bytes when the node handed it over before storing it: the worker stores
    // it, and posts its job on `queue`, in the batch's transaction (as StoreMessages would,
    // but already Ready when the batch applies whole; what is stored already stays as it
    // is). Empty when the job is stored.
    std::string_view message;
    std::string queue;
    int64_t received_at_us = 0;
  };
  // Applies the jobs in order in one transaction and records each attempt (storing first the
  // messages handed over with them, see Attempt::message): a Receive_Message job's
  // LU changes, a Receive_Configuration job's tables and catalog, a Receive_Snapshot part's rows
  // (the first part empties the LU tables first). A job Ready already changes nothing (its attempt
  // says AlreadyReady). A job that fails rolls back alone and is marked Error with the message
  // (naming the job, the LU, the key and what failed); the jobs after it are not attempted. Returns
  // one Status per attempted job. Each attempt's start and end are its own; every applied job's
  // finish time is the batch's commit, from `clock` just before the COMMIT.
  virtual std::vector<Status> ApplyJobs(const std::vector<Attempt>& attempts,
                                        const Clock& clock) = 0;
  // One job: ApplyJobs of it alone.
  Status ApplyJob(const Attempt& attempt, const Clock& clock) {
    std::vector<Status> results = ApplyJobs({attempt}, clock);
    return results.empty() ? Status::Internal("job not attempted") : results.front();
  }
};

struct ReplicaStoreOptions {
  bool create = true;  // create the database if missing (the node); a worker opens an existing one
  // How long a write waits for another process's write lock before it fails.
  int busy_timeout_ms = 10000;
};

StatusOr<std::unique_ptr<ReplicaStore>> OpenSqliteReplicaStore(const std::string& path,
                                                               const ReplicaStoreOptions& options);

}  // namespace ferry

#endif  // FERRY_REPLICA_REPLICA_STORE_H_
