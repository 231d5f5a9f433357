#ifndef FERRY_REPLICA_REPLICA_H_
#define FERRY_REPLICA_REPLICA_H_

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "replica/replica_store.h"
#include "replica/worker_supervisor.h"

namespace ferry {

inline constexpr char kReplicationQueue[] = "REPLICATION";  // Receive_Message
inline constexpr char kDefaultQueue[] = "DEFAULT";          // Receive_Configuration

struct ReplicaOptions {
  std::string site;                                       // this site's name; required
  std::string master_endpoint;                            // the master's stream port; required
  std::string control_endpoint = "tcp://127.0.0.1:7410";  // status requests (ferryctl)
  std::string worker_endpoint = "tcp://127.0.0.1:*";      // workers connect here
  std::string db_path = "replica.db";                     // the SQLite replica database
  std::string worker_program;                             // path of ferry-worker; required
  std::string worker_log;                                 // workers' output; empty: ours
  std::chrono::milliseconds master_timeout{3000};         // silence after which we say hello again
  std::chrono::milliseconds retry_delay{1000};            // before a failed job is tried again
};

// ferry-replica: one per site. Connects to its own stream at the master, stores every message
// in its inbox and posts it as a job in one durable transaction before acknowledging it, and
// hands the REPLICATION queue's jobs to its worker process strictly in sequence order: one at
// a time, a failed job retried after `retry_delay` and holding the queue until it succeeds.
// Starts the queue's worker process and starts it again if it dies; a dead worker's job is
// handed out again. Answers status requests. Single-threaded: Run() is its poll loop.
class Replica {
 public:
  // Opens the store, binds the control and worker ports and connects to the master.
  // REQUIRES: `context` and `clock` outlive it.
  static StatusOr<std::unique_ptr<Replica>> Create(zmq::context_t& context, ReplicaOptions options,
                                                   const Clock* clock);

  // Serves until `stop` is set or the context shuts down; then stops the workers, letting a
  // job in progress finish.
  Status Run(const std::atomic<bool>& stop);

  const std::string& control_endpoint() const { return control_endpoint_; }
  const std::string& worker_endpoint() const { return worker_endpoint_; }

 private:
  struct WorkerSession {
    std::string id;  // "W<n>", unique within this replication session
    int pid = 0;
    std::string queue;
    uint64_t current_job = 0;  // 0 when idle
    int64_t started_at_us = 0;
  };
  // A batch queue: its unfinished jobs in sequence order; the front is the next to run.
  struct BatchQueue {
    std::string name;
    int processes = 1;
    std::deque<Job> jobs;
    std::chrono::steady_clock::time_point retry_at{};  // the failed front job waits until then
  };

  Replica(zmq::context_t& context, ReplicaOptions options, const Clock* clock,
          std::unique_ptr<ReplicaStore> store);

  void HandleStream();
  void HandleWorkers();
  void HandleControl();
  void SayHello();
  void OnWorkerExited(int pid);
  void Dispatch(BatchQueue& queue);
  uint64_t LastAppliedSequence() const;
  StatusOr<wire::ReplicaStatus> CurrentStatus();

  ReplicaOptions options_;
  const Clock* clock_;
  std::unique_ptr<ReplicaStore> store_;
  zmq::socket_t stream_socket_;   // DEALER to the master's stream port
  zmq::socket_t worker_socket_;   // ROUTER for our workers
  zmq::socket_t control_socket_;  // ROUTER for status requests
  std::string control_endpoint_;
  std::string worker_endpoint_;
  std::string session_id_;  // this replication session, from the store
  BatchQueue replication_queue_;
  std::optional<WorkerSupervisor> supervisor_;
  std::map<std::string, WorkerSession> sessions_;  // by ZeroMQ identity
  uint64_t next_session_number_ = 1;
  std::chrono::steady_clock::time_point last_heard_from_master_{};
  std::chrono::steady_clock::time_point last_hello_{};
  std::string last_error_;  // the newest job error
};

}  // namespace ferry

#endif  // FERRY_REPLICA_REPLICA_H_
