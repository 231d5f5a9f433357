#ifndef FERRY_WORKER_WORKER_H_
#define FERRY_WORKER_WORKER_H_

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <zmq.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "replica/replica_store.h"

namespace ferry {

struct WorkerOptions {
  std::string replica_endpoint;       // the replica's worker port; required
  std::string db_path;                // the replica's SQLite database; required
  std::string queue = "REPLICATION";  // the batch queue this process serves
  // Before applying a job that changes LU `first` ("*": any), wait `second`: a slow apply,
  // for showing what each ordering mode does with it. Empty in production.
  std::map<std::string, std::chrono::milliseconds> apply_delays;
  std::chrono::milliseconds hello_interval{2000};  // an idle worker's keepalive hello
};

// Parses an --apply-delay value "LU=MS" ("*=MS" for every LU).
Status ParseApplyDelay(const std::string& text, WorkerOptions* options);

// ferry-worker: a background process bound to one batch queue of a replica. It says hello to
// the replica's worker port, then applies each batch of jobs it is assigned (every job's LU
// changes and its Ready mark, in order, in one transaction with a savepoint per job) and
// reports each job's outcome. The replica
// decides what runs when; a worker never picks a job itself. Single-threaded.
class Worker {
 public:
  // REQUIRES: `context` and `clock` outlive it.
  static StatusOr<std::unique_ptr<Worker>> Create(zmq::context_t& context, WorkerOptions options,
                                                  const Clock* clock);
  // Serves until `stop` is set or the context shuts down; a job in progress is finished first.
  Status Run(const std::atomic<bool>& stop);

 private:
  Worker(zmq::context_t& context, WorkerOptions options, const Clock* clock,
         std::unique_ptr<ReplicaStore> store);
  Status SayHello();
  // Applies an assignment's jobs in one transaction and reports each attempted one.
  void RunBatch(const wire::JobAssignment& assignment);
  // The configured delay for `job`'s changes (the longest that applies).
  std::chrono::milliseconds ApplyDelay(const wire::AssignedJob& job);

  WorkerOptions options_;
  const Clock* clock_;
  std::unique_ptr<ReplicaStore> store_;
  zmq::socket_t socket_;  // DEALER to the replica's worker port
};

}  // namespace ferry

#endif  // FERRY_WORKER_WORKER_H_
