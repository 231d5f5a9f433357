#include "common/node_main.h"

#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/log.h"

namespace ferry {

std::string BesideThisExecutable(const std::string& name) {
  std::error_code error;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? name : (self.parent_path() / name).string();
}

namespace {
std::atomic<bool> stop_requested{false};
void OnStopSignal(int) { stop_requested.store(true); }
}  // namespace

int ExitCode(const Status& status) {
  if (status.ok()) return 0;
  LogError(status.message());
  return 1;
}

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

std::map<std::string, std::string> ReadReadyFile(const std::string& path,
                                                 std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!std::filesystem::exists(path) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::map<std::string, std::string> values;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) values[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return values;
}

}  // namespace ferry
