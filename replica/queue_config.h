#ifndef FERRY_REPLICA_QUEUE_CONFIG_H_
#define FERRY_REPLICA_QUEUE_CONFIG_H_

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "proto/ferry.pb.h"

namespace ferry {

// How a batch queue with several processes orders its jobs.
enum class Ordering {
  kStrict,      // one at a time, in sequence order
  kDependency,  // in parallel, but never before an earlier unfinished job it conflicts with
  kNone,        // plain parallel: a job may fail because what it references is not there yet
};
const char* OrderingName(Ordering ordering);  // "strict", "dependency", "none"

// How a failed job is tried again: after `initial_delay`, then each delay times `multiplier`
// up to `max_delay`; after `attempts` failed attempts the job stays in Error until an
// operator retries or skips it.
struct RetryPolicy {
  int attempts = 5;                               // attempts before the job is held
  std::chrono::milliseconds initial_delay{1000};  // before the second attempt
  std::chrono::milliseconds max_delay{60000};     // no wait is longer
  double multiplier = 2.0;
  // The wait after the `failures`-th failed attempt (1, 2, ...).
  std::chrono::milliseconds DelayAfter(int failures) const;
};

struct QueueConfig {
  std::string name;
  int processes = 1;  // jobs of this queue that may execute at once
  Ordering ordering = Ordering::kStrict;
  RetryPolicy retry;
  std::vector<wire::MessageClass> classes;  // message classes routed to this queue
};

inline constexpr char kReplicationQueue[] = "REPLICATION";  // Receive_Message by default
inline constexpr char kDefaultQueue[] = "DEFAULT";  // Receive_Configuration and the unrouted

// "Receive_Message" for RECEIVE_MESSAGE, and back.
std::string MessageClassName(wire::MessageClass message_class);
bool ParseMessageClass(const std::string& name, wire::MessageClass* message_class);

// The replica's queues: the defaults (REPLICATION: 1 process, strict, Receive_Message;
// DEFAULT: 1 process, strict, Receive_Configuration and any class without a route), changed
// and extended by `settings`: ("queue.<NAME>.<key>", value) pairs from the INI file, with keys
//   processes = 1..64
//   ordering = strict | dependency | none
//   classes = Receive_Message, Receive_Configuration   (comma-separated)
//   retry-attempts = 1..1000, retry-delay-ms = 1.., retry-max-delay-ms = 1..,
//   retry-multiplier = 1.0..10.0
// A class routed to two queues, an unknown key, or a bad value is an error that names the key.
class QueueSet {
 public:
  // The defaults alone.
  QueueSet();
  static StatusOr<QueueSet> FromSettings(
      const std::vector<std::pair<std::string, std::string>>& settings);

  const std::vector<QueueConfig>& queues() const { return queues_; }
  QueueConfig* Find(const std::string& name);
  const QueueConfig* Find(const std::string& name) const;
  // The queue that `message_class` is routed to: its own route, else DEFAULT.
  const QueueConfig& QueueFor(wire::MessageClass message_class) const;
  // Warnings an operator should see at start-up, e.g. Receive_Message on a parallel `none`
  // queue, which lets a dependent update run before what it references has committed.
  std::vector<std::string> Warnings() const;

 private:
  std::vector<QueueConfig> queues_;  // DEFAULT and REPLICATION first, then by first mention
};

}  // namespace ferry

#endif  // FERRY_REPLICA_QUEUE_CONFIG_H_
