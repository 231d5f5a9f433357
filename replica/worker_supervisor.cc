#include "replica/worker_supervisor.h"

#include <algorithm>

#include "common/log.h"

namespace ferry {

std::vector<pid_t> WorkerSupervisor::Tick(std::chrono::steady_clock::time_point now) {
  std::vector<pid_t> exited;
  for (auto& child : children_) {
    pid_t pid = child.pid();
    if (!child.Running()) {
      LogWarning("worker " + std::to_string(pid) + " of queue " + options_.queue +
                 " exited; starting another");
      exited.push_back(pid);
    }
  }
  std::erase_if(children_, [](ChildProcess& child) { return child.pid() < 0; });
  while (static_cast<int>(children_.size()) < options_.processes && now >= next_start_) {
    auto child = ChildProcess::Start({options_.program, "--replica", options_.replica_endpoint,
                                      "--db", options_.db_path, "--queue", options_.queue},
                                     options_.log_path);
    if (!child.ok()) {
      LogError("cannot start a worker for queue " + options_.queue + ": " +
               child.status().message());
      next_start_ = now + options_.restart_delay;
      break;
    }
    children_.push_back(std::move(child).value());
    if (!exited.empty()) next_start_ = now + options_.restart_delay;
  }
  return exited;
}

}  // namespace ferry
