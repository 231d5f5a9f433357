#include "common/node_main.h"

#include <signal.h>

#include <cstdio>
#include <fstream>

namespace ferry {
namespace {
std::atomic<bool> stop_requested{false};
void OnStopSignal(int) { stop_requested.store(true); }
}  // namespace

const std::atomic<bool>& StopFlagOnSignals() {
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return stop_requested;
}

Status WriteReadyFile(const std::string& path, const std::vector<std::string>& lines) {
  if (path.empty()) return Status::Ok();
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    for (const auto& line : lines) out << line << "\n";
    if (!out) return Status::IoError("cannot write ready file " + temporary);
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    return Status::IoError("cannot rename " + temporary + " to " + path);
  }
  return Status::Ok();
}

}  // namespace ferry
