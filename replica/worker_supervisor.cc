#include "replica/worker_supervisor.h"

#include <signal.h>

#include <algorithm>

#include "common/log.h"

namespace ferry {

std::vector<pid_t> WorkerSupervisor::Tick(std::chrono::steady_clock::time_point now) {
  std::vector<pid_t> exited;
  for (auto& child : children_) {
    pid_t pid = child.pid();
    if (!child.Running()) {
      LogWarning("worker " + std::to_string(pid) + " of queue " + options_.queue + " ended (" +
                 child.how_it_ended() + "); starting another");
      exited.push_back(pid);
    }
  }
  for (auto& child : stopping_) {
    pid_t pid = child.pid();
    if (!child.Running()) exited.push_back(pid);
  }
  std::erase_if(children_, [](ChildProcess& child) { return child.pid() < 0; });
  std::erase_if(stopping_, [](ChildProcess& child) { return child.pid() < 0; });
  const bool restarting = !exited.empty();
  while (static_cast<int>(children_.size()) < options_.processes && now >= next_start_) {
    std::vector<std::string> argv = {options_.program, "--replica",      options_.replica_endpoint,
                                     "--db",           options_.db_path, "--queue",
                                     options_.queue};
    argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
    auto child = ChildProcess::Start(argv, options_.log_path);
    if (!child.ok()) {
      LogError("cannot start a worker for queue " + options_.queue + ": " +
               child.status().message());
      next_start_ = now + options_.restart_delay;
      break;
    }
    children_.push_back(std::move(child).value());
    if (restarting) next_start_ = now + options_.restart_delay;
  }
  return exited;
}

std::vector<pid_t> WorkerSupervisor::SetProcesses(int processes, const std::set<pid_t>& busy) {
  options_.processes = processes;
  std::vector<pid_t> asked;
  // Idle workers go first; stable_partition keeps the rest in start order.
  std::stable_partition(children_.begin(), children_.end(),
                        [&busy](const ChildProcess& child) { return busy.count(child.pid()) > 0; });
  while (static_cast<int>(children_.size()) > processes) {
    ChildProcess child = std::move(children_.back());
    children_.pop_back();
    child.Signal(SIGTERM);
    asked.push_back(child.pid());
    stopping_.push_back(std::move(child));
  }
  return asked;
}

bool WorkerSupervisor::Owns(pid_t pid) const {
  auto has = [pid](const std::vector<ChildProcess>& list) {
    return std::any_of(list.begin(), list.end(),
                       [pid](const ChildProcess& child) { return child.pid() == pid; });
  };
  return has(children_) || has(stopping_);
}

}  // namespace ferry
