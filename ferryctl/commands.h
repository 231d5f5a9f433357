#ifndef FERRY_FERRYCTL_COMMANDS_H_
#define FERRY_FERRYCTL_COMMANDS_H_

#include <cstdint>
#include <iosfwd>
#include <string>

namespace ferry::ctl {

// ferryctl's commands. Each writes its result to `out`, problems to `err`, and returns the
// process exit code: 0 success, 1 the command failed, 2 bad usage.

// Reads transactions as JSON lines (ferry.wire.SubmitRequest in protobuf's JSON mapping;
// blank lines and lines starting with '#' are skipped) and submits each to the master.
// Keeps going after a rejected transaction; returns 1 if any was rejected.
struct SubmitOptions {
  std::string endpoint;  // the master's submit endpoint
  bool json = false;     // one SubmitReply (or {"error": ...}) JSON line per transaction
  int timeout_ms = 10000;
};
int Submit(const SubmitOptions& options, std::istream& in, std::ostream& out, std::ostream& err);

// Asks any node for its status and prints it.
struct StatusOptions {
  std::string endpoint;  // the master's submit endpoint or a replica's control endpoint
  bool json = false;
  int timeout_ms = 5000;
};
int PrintStatus(const StatusOptions& options, std::ostream& out, std::ostream& err);

// Prints the reference workload of shared/WORKLOAD.md as JSON lines: the set-up
// transactions (with `setup`), then transactions 1..`transactions`.
struct WorkloadOptions {
  bool setup = true;
  uint64_t transactions = 0;
};
int PrintWorkload(const WorkloadOptions& options, std::ostream& out);

// Compares a replica database with the master database's rows routed to the site.
// Returns 0 only if every LU is equal.
struct VerifyOptions {
  std::string master_config;
  std::string master_db;
  std::string replica_db;
  std::string site;
  bool json = false;
};
int Verify(const VerifyOptions& options, std::ostream& out, std::ostream& err);

// Operator commands on a replica's control port.
struct ReplicaCommandOptions {
  std::string endpoint;  // the replica's control endpoint
  bool json = false;
  int timeout_ms = 5000;
};
// ferryctl queue set-processes QUEUE N | pause QUEUE | resume QUEUE
int QueueCommand(const ReplicaCommandOptions& options, const std::string& action,
                 const std::string& queue, int processes, std::ostream& out, std::ostream& err);
// ferryctl job retry|skip|why ID
int JobCommand(const ReplicaCommandOptions& options, const std::string& action, uint64_t job_id,
               std::ostream& out, std::ostream& err);
// ferryctl jobs [--queue Q] [--state S] [--limit N] [--job ID]: newest first, with each
// attempt's outcome and full error text.
int ListJobs(const ReplicaCommandOptions& options, const std::string& queue,
             const std::string& state, uint32_t limit, uint64_t job_id, std::ostream& out,
             std::ostream& err);
// ferryctl sessions: the worker processes of a replica.
int ListSessions(const ReplicaCommandOptions& options, std::ostream& out, std::ostream& err);

}  // namespace ferry::ctl

#endif  // FERRY_FERRYCTL_COMMANDS_H_
