#ifndef FERRY_REPLICA_WORKER_SUPERVISOR_H_
#define FERRY_REPLICA_WORKER_SUPERVISOR_H_

#include <sys/types.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "common/child_process.h"

namespace ferry {

// Keeps `processes` ferry-worker processes of one batch queue running: starts them, notices
// when one exits, and starts a replacement (at most one start per `restart_delay`, so a
// worker that dies at once does not spin). Destroying it stops them all, each finishing its
// job first. Not thread-safe.
class WorkerSupervisor {
 public:
  struct Options {
    std::string program;                  // path of ferry-worker
    std::string queue;                    // the queue its workers serve
    std::string replica_endpoint;         // the replica's worker port
    std::string db_path;                  // the replica database
    std::string log_path;                 // workers' stdout/stderr; empty: the replica's
    std::vector<std::string> extra_args;  // appended to each worker's command line
    int processes = 1;
    std::chrono::milliseconds restart_delay{500};
  };
  explicit WorkerSupervisor(Options options) : options_(std::move(options)) {}

  // Reaps exited workers (their pids are returned, so their jobs can be handed out again) and
  // starts workers up to the process count.
  std::vector<pid_t> Tick(std::chrono::steady_clock::time_point now);

  // Changes the process count. Lowering it asks surplus workers to stop (SIGTERM: a worker
  // finishes its job first), idle ones before those in `busy`; returns the pids asked.
  std::vector<pid_t> SetProcesses(int processes, const std::set<pid_t>& busy);

  // Whether `pid` is one of ours, running or stopping.
  bool Owns(pid_t pid) const;
  const std::string& queue() const { return options_.queue; }

 private:
  Options options_;
  std::vector<ChildProcess> children_;  // running, counted against `processes`
  std::vector<ChildProcess> stopping_;  // asked to stop, finishing their job
  std::chrono::steady_clock::time_point next_start_{};
};

}  // namespace ferry

#endif  // FERRY_REPLICA_WORKER_SUPERVISOR_H_
