#ifndef FERRY_REPLICA_BATCH_QUEUES_H_
#define FERRY_REPLICA_BATCH_QUEUES_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/catalog.h"
#include "common/status.h"
#include "proto/ferry.pb.h"
#include "replica/queue_config.h"

namespace ferry {

// The rows a job writes and the rows it references, as row ids ("Customer/CU-5"): what
// `dependency` ordering compares. Every change also references its LU's row set
// ("CustomerOrder/*"), and a REMOVE writes the row sets of the LUs that reference its LU: a
// removed customer waits for every earlier job that changed an order, whatever it changed.
// `everything` when the rows cannot be known (no catalog): such a job is ordered like a
// configuration change, after and before everything.
struct Footprint {
  std::vector<std::string> writes;
  std::vector<std::string> references;
  bool everything = false;
};

// The footprint of `message` under `catalog` (may be null). A configuration message changes
// what every later job means: it is a barrier, reported by `everything`.
Footprint FootprintOf(const Catalog* catalog, const wire::ReplicationMessage& message);

// The scheduling state of every unfinished job of a replica's batch queues, and the one
// decision of what may start now. Pure bookkeeping: no I/O, no clock of its own (callers pass
// `now`), so it can be tested and measured alone. Not thread-safe.
//
// A job may start when nothing it waits for is unfinished, it is not backing off after a
// failure or held after its last allowed attempt, its queue is not paused, and its queue has
// fewer jobs executing than its process count. What a job waits for:
//   strict      the previous job of its queue;
//   dependency  each earlier unfinished job that writes a row it writes or references, or
//               references a row it writes;
//   none        nothing;
// and in every mode an earlier unfinished barrier (configuration) job, while a barrier waits
// for every earlier unfinished job.
class BatchQueues {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  enum class State { kPosted, kWaiting, kExecuting, kError };
  static const char* StateName(State state);

  struct NewJob {
    uint64_t id = 0;
    uint64_t sequence = 0;
    std::string queue;
    bool barrier = false;
    Footprint footprint;
    int failures = 0;     // failed attempts since it was last released
    bool failed = false;  // the last attempt failed (state Error)
    int attempts = 0;     // attempts so far, of any outcome
  };

  // What a waiting job waits for.
  struct Blocker {
    uint64_t job_id;
    std::string reason;  // "writes Customer/CU-5", "strict order", "configuration"
  };

  explicit BatchQueues(const QueueSet& queues);

  // Adds an unfinished job. REQUIRES: jobs are added in sequence order; its queue exists.
  void Add(NewJob job);

  // Up to `max` jobs of `queue` that may start now, oldest first: RunnableBatches of single
  // jobs. Does not start them.
  std::vector<uint64_t> Runnable(const std::string& queue, TimePoint now, size_t max) const;
  // Up to `max_batches` batches of `queue` that may start now, each for one worker to apply
  // in order, at most `max_size` jobs long. The jobs that may start now are shared out among
  // the batches; a strict queue's batch goes on with the jobs that follow it in order. A
  // `none` queue's batches are single jobs: its jobs run in parallel, as its mode says.
  // Does not start them.
  std::vector<std::vector<uint64_t>> RunnableBatches(const std::string& queue, TimePoint now,
                                                     size_t max_batches, size_t max_size) const;
  // The number the next attempt at a job will have (1 for the first); Started counts it.
  int NextAttempt(uint64_t job_id) const;
  // The earliest moment a backing-off job of any queue may start again, if any.
  std::optional<TimePoint> NextRetry() const;

  // The job, or the batch of jobs, is handed to one worker: it counts as one process, and
  // as an attempt at each job.
  void Started(uint64_t job_id) { Started(std::vector<uint64_t>{job_id}); }
  void Started(const std::vector<uint64_t>& batch);
  // The job's attempt succeeded: it is finished, and what waited for it may go.
  void Succeeded(uint64_t job_id);
  // The job's attempt failed: it backs off per its queue's retry policy, or, after the last
  // allowed attempt, is held until an operator retries or skips it. Returns whether held.
  bool Failed(uint64_t job_id, TimePoint now);
  // The job's worker went away mid-attempt: the job may start again at once.
  void Lost(uint64_t job_id);

  // Operator actions. Retry: a job in Error may start at once with a fresh retry budget.
  // Skip: a job in Error is finished without being applied; what waited for it may go.
  Status Retry(uint64_t job_id, TimePoint now);
  Status Skip(uint64_t job_id);

  Status SetProcesses(const std::string& queue, int processes);
  Status SetPaused(const std::string& queue, bool paused);

  bool Contains(uint64_t job_id) const { return jobs_.count(job_id) > 0; }
  State StateOf(uint64_t job_id) const;  // REQUIRES: Contains(job_id)
  // The unfinished jobs `job_id` waits for, and why; empty when it waits for none.
  std::vector<Blocker> WaitsFor(uint64_t job_id) const;
  // Whether the job is held (its last allowed attempt failed) or backing off until a time.
  bool Held(uint64_t job_id) const;
  std::optional<TimePoint> RetryAt(uint64_t job_id) const;

  struct QueueView {
    const QueueConfig* config;
    bool paused;
    int executing;
  };
  QueueView View(const std::string& queue) const;
  // The queue of job `job_id`. REQUIRES: Contains(job_id).
  const std::string& QueueOf(uint64_t job_id) const { return jobs_.at(job_id).info.queue; }
  // Unfinished jobs by queue and state name.
  std::map<std::string, std::map<std::string, uint64_t>> Counts() const;
  // Up to `max` unfinished jobs in state `state` named as StateName does (of `queue`, or of
  // every queue when it is empty), newest first.
  std::vector<uint64_t> NewestIn(const std::string& queue, const std::string& state,
                                 size_t max) const;
  // The oldest unfinished job's sequence, if any.
  std::optional<uint64_t> OldestUnfinishedSequence() const;
  size_t size() const { return jobs_.size(); }

 private:
  struct Job {
    NewJob info;
    int unfinished_waits = 0;          // entries of `waits_for` not yet finished
    std::vector<Blocker> waits_for;    // as they were when it was added
    std::vector<uint64_t> dependents;  // jobs whose waits_for names this one
    bool executing = false;
    uint64_t batch = 0;  // the first job of the batch it is executing in
    bool held = false;
    TimePoint retry_at{};
  };
  struct Queue {
    QueueConfig config;
    bool paused = false;
    int executing = 0;      // batches (one per worker) executing
    uint64_t last_job = 0;  // the newest unfinished job (strict order chains on it)
    std::set<std::pair<uint64_t, uint64_t>>
        free;  // (sequence, id): waits for nothing, not executing
  };
  // Readers and writer of one row among dependency-ordered jobs.
  struct RowUse {
    uint64_t writer = 0;                   // the newest unfinished job that writes it
    std::unordered_set<uint64_t> readers;  // unfinished jobs since `writer` that reference it
  };

  static State StateOf(const Job& job);
  // Makes `job` wait for `on` (if unfinished and not yet waited for, per `seen`).
  void Wait(Job& job, uint64_t on, std::string reason, std::unordered_set<uint64_t>& seen);
  // The job no longer executes; its batch's process is free once all of the batch is done.
  void StopExecuting(Job& job, Queue& queue);
  void Finish(uint64_t job_id);

  std::map<std::string, Queue> queues_;            // by name
  std::unordered_map<uint64_t, Job> jobs_;         // unfinished jobs by id
  std::set<std::pair<uint64_t, uint64_t>> order_;  // (sequence, id) of unfinished jobs
  std::unordered_map<std::string, RowUse> rows_;   // by row id
  uint64_t open_barrier_ = 0;                      // the newest unfinished barrier job
  std::unordered_map<uint64_t, int> batch_open_;   // executing jobs per batch, by first job
};

}  // namespace ferry

#endif  // FERRY_REPLICA_BATCH_QUEUES_H_
