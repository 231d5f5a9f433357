#ifndef FERRY_COMMON_CHILD_PROCESS_H_
#define FERRY_COMMON_CHILD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace ferry {

// A child process that this object owns: destroying it stops the child (SIGTERM, then
// SIGKILL after a grace period) and reaps it. The child also gets SIGTERM if its parent dies,
// so no worker outlives its replica. Not thread-safe.
class ChildProcess {
 public:
  // Starts argv[0] (a path) with `argv`. With `log_path`, the child's stdout and stderr are
  // appended to that file; otherwise they are the parent's.
  static StatusOr<ChildProcess> Start(const std::vector<std::string>& argv,
                                      const std::string& log_path = {});

  ChildProcess(ChildProcess&& other) noexcept
      : pid_(other.pid_), how_it_ended_(std::move(other.how_it_ended_)) {
    other.pid_ = -1;
  }
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess() { Stop(std::chrono::seconds(5)); }

  pid_t pid() const { return pid_; }
  // Whether the child is still running; reaps it if it has exited.
  bool Running();
  // How the child ended ("exit code 2", "signal 9"), once Running() returned false.
  const std::string& how_it_ended() const { return how_it_ended_; }
  // Sends `signal` (SIGKILL, SIGTERM, ...) without waiting.
  void Signal(int signal);
  // SIGTERM, waits up to `grace`, then SIGKILL; returns the wait status (or -1 if none).
  int Stop(std::chrono::milliseconds grace);

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;  // -1 once reaped
  std::string how_it_ended_;
};

}  // namespace ferry

#endif  // FERRY_COMMON_CHILD_PROCESS_H_
