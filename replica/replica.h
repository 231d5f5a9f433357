#ifndef FERRY_REPLICA_REPLICA_H_
#define FERRY_REPLICA_REPLICA_H_

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/catalog.h"
#include "common/clock.h"
#include "common/status.h"
#include "replica/batch_queues.h"
#include "replica/queue_config.h"
#include "replica/replica_store.h"
#include "replica/worker_supervisor.h"

namespace ferry {

// The most jobs one worker applies in one transaction.
inline constexpr size_t kMaxBatch = 1024;

struct ReplicaOptions {
  std::string site;                                       // this site's name; required
  std::string master_endpoint;                            // the master's stream port; required
  std::string control_endpoint = "tcp://127.0.0.1:7410";  // status and operator commands
  std::string worker_endpoint = "tcp://127.0.0.1:*";      // workers connect here
  std::string db_path = "replica.db";                     // the SQLite replica database
  std::string worker_program;                             // path of ferry-worker; required
  std::string worker_log;                                 // workers' output; empty: ours
  std::vector<std::string> worker_args;                   // extra ferry-worker arguments
  QueueSet queues;                                        // the batch queues and their routes
  std::chrono::milliseconds master_timeout{3000};         // silence after which we say hello again
  std::chrono::seconds job_retention{7 * 24 * 3600};      // finished jobs are kept this long
  // Received messages wait at most this long for the sync (store and fsync) that lets us
  // acknowledge them (or none, past kSyncEvery of them): one fsync for several messages when
  // they come one by one. Their jobs do not wait for it, so it adds no latency; what it costs
  // is CPU (10 ms against 2: about 20 µs less a message at the replica, see
  // docs/benchmarks.md).
  std::chrono::milliseconds sync_interval{10};
  // How long a write of the replica's waits for another connection's write lock on its
  // database (a worker's commit, an operator's transaction) before it fails. A failed store of
  // received messages is tried again at the next sync and acknowledges nothing meanwhile; an
  // operator's command answers with the error.
  std::chrono::milliseconds db_lock_timeout{10000};
};

// Unsynced messages past which the replica syncs and acknowledges at once.
inline constexpr uint64_t kSyncEvery = 256;

// ferry-replica: one per site. Connects to its own stream at the master and posts every
// message as a job on the batch queue its message class is routed to. It stores the messages
// (inbox and jobs) in one transaction when it syncs, and acknowledges them once that fsync
// made them durable (deferred by up to `sync_interval`, so that messages arriving one by one
// share fsyncs). The jobs need not wait: a job handed to a worker before its message is stored
// comes with the message, and the worker stores both in the transaction that applies it, so
// a message that comes alone costs one write transaction, not two. Hands jobs to worker
// processes as the queues' ordering modes and process counts allow (BatchQueues decides),
// retries failed jobs per their queue's policy, starts and restarts each queue's workers, and
// hands a dead worker's job out again. Answers status and operator commands on its control port.
// Single-threaded: Run() is its poll loop.
class Replica {
 public:
  // Opens the store, restores the unfinished jobs and the operators' queue settings, binds
  // the control and worker ports and connects to the master.
  // REQUIRES: `context` and `clock` outlive it.
  static StatusOr<std::unique_ptr<Replica>> Create(zmq::context_t& context, ReplicaOptions options,
                                                   const Clock* clock);

  // Serves until `stop` is set or the context shuts down; then stops the workers, letting
  // jobs in progress finish.
  Status Run(const std::atomic<bool>& stop);

  const std::string& control_endpoint() const { return control_endpoint_; }
  const std::string& worker_endpoint() const { return worker_endpoint_; }

 private:
  struct WorkerSession {
    std::string id;  // "W<n>", unique within this replication session
    int pid = 0;
    std::string queue;
    std::vector<uint64_t> batch;  // the jobs it is applying, in order; empty when idle
    int64_t started_at_us = 0;
    bool retiring = false;                               // asked to stop: gets no new job
    std::chrono::steady_clock::time_point idle_since{};  // the longest idle gets the next job
  };

  Replica(zmq::context_t& context, ReplicaOptions options, const Clock* clock,
          std::unique_ptr<ReplicaStore> store, BatchQueues scheduler);

  void HandleStream();
  // Posts the jobs of `batch`, which continues LastReceived(), and keeps it to be stored.
  void Receive(std::vector<ReceivedMessage> batch);
  // The newest sequence received, with every one before it.
  uint64_t LastReceived() const { return store_->LastReceivedSequence() + unstored_.size(); }
  // The received message job `job_id` applies if it is not stored yet, else null.
  const ReceivedMessage* Unstored(uint64_t job_id) const;
  // Stores the unstored messages (not durably); false (logged) if it failed.
  bool StoreUnstored();
  // Stores and syncs what was received and acknowledges it, if anything awaits that.
  void SyncAndAcknowledge();
  void HandleWorkers();
  void HandleControl();
  void SayHello();
  // Puts the job of `message` on its queue, unless the store holds it already.
  void Post(const ReceivedMessage& message);
  void Dispatch();
  void OnJobResult(const wire::JobResult& result, const std::string& queue);
  void CheckWorkers();
  void OnWorkerGone(int pid);
  void Prune();
  wire::Envelope OnQueueCommand(const wire::QueueCommand& command);
  wire::Envelope OnJobCommand(const wire::JobCommand& command);
  StatusOr<wire::JobWhy> Why(uint64_t job_id);
  StatusOr<wire::JobList> ListJobs(const wire::JobQuery& query);
  StatusOr<wire::ReplicaStatus> CurrentStatus();
  uint64_t LastAppliedSequence() const;
  // Counts the finished jobs in the store (at start).
  Status LoadFinishedCounts();
  // Job `job_id` of the scheduler finishes as `state` (Ready or Skipped): counted.
  void CountFinished(uint64_t job_id, const char* state);

  ReplicaOptions options_;
  const Clock* clock_;
  std::unique_ptr<ReplicaStore> store_;
  BatchQueues scheduler_;
  std::shared_ptr<const Catalog> catalog_;  // the newest configuration received: footprints
  zmq::socket_t stream_socket_;             // DEALER to the master's stream port
  zmq::socket_t worker_socket_;             // ROUTER for workers
  zmq::socket_t control_socket_;            // ROUTER for status and operator commands
  std::string control_endpoint_;
  std::string worker_endpoint_;
  std::string session_id_;                               // this replication session, from the store
  std::map<std::string, WorkerSupervisor> supervisors_;  // by queue
  std::map<std::string, WorkerSession> sessions_;        // by ZeroMQ identity
  uint64_t next_session_number_ = 1;
  std::chrono::steady_clock::time_point last_heard_from_master_{};
  bool silence_reported_ = false;  // the master's current silence is in the log already
  std::chrono::steady_clock::time_point last_hello_{};
  std::chrono::steady_clock::time_point next_prune_{};
  uint64_t acknowledged_ = 0;  // the newest sequence made durable and acknowledged
  // Received and posted, not stored yet: the sequences after the store's
  // LastReceivedSequence(), in order. Stored by the next sync, or before it by the worker that
  // each job is handed to.
  std::vector<ReceivedMessage> unstored_;
  std::optional<std::chrono::steady_clock::time_point> sync_due_;  // when stored ones await it
  std::map<std::string, QueueSetting> queue_settings_;  // the operators' (ferryctl), by queue
  std::string last_error_;                              // the newest job error
  // Ready and Skipped jobs by queue and state: counted in the store at start, then kept as
  // jobs finish and are pruned, so a status request scans no table.
  ReplicaStore::JobCounts finished_counts_;
};

}  // namespace ferry

#endif  // FERRY_REPLICA_REPLICA_H_
