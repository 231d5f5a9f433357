#ifndef FERRY_COMMON_NODE_MAIN_H_
#define FERRY_COMMON_NODE_MAIN_H_

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace ferry {

// What every node's main() shares: a stop flag set by SIGTERM or SIGINT, and the ready file
// through which a node started on "tcp://127.0.0.1:*" tells tests and scripts its ports.

// The path of program `name` in this executable's folder: Ferry's executables are built and
// installed side by side. Just `name` (found on PATH) if /proc does not say where we are.
std::string BesideThisExecutable(const std::string& name);

// Installs the handlers (once) and returns the flag they set.
const std::atomic<bool>& StopFlagOnSignals();

// Writes `lines` ("name=endpoint") to `path` atomically (write, then rename), so a reader
// never sees half a file. Does nothing when `path` is empty.
Status WriteReadyFile(const std::string& path, const std::vector<std::string>& lines);

// main()'s exit code for how a node ended: 0 if `status` is ok, else 1 after logging its
// message.
int ExitCode(const Status& status);

// Waits up to `timeout` for a ready file and returns its name=value lines (empty if none).
std::map<std::string, std::string> ReadReadyFile(const std::string& path,
                                                 std::chrono::milliseconds timeout);

}  // namespace ferry

#endif  // FERRY_COMMON_NODE_MAIN_H_
