#include "common/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace ferry {
namespace {

std::mutex log_mutex;
std::string log_program = "ferry";

void Log(const char* level, const std::string& message) {
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc;
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
  std::lock_guard<std::mutex> lock(log_mutex);
  std::fprintf(stderr, "%s.%03lldZ %s %s: %s\n", stamp, static_cast<long long>(millis),
               log_program.c_str(), level, message.c_str());
}

}  // namespace

void SetLogProgram(const std::string& program) {
  std::lock_guard<std::mutex> lock(log_mutex);
  log_program = program;
}
void LogInfo(const std::string& message) { Log("info", message); }
void LogWarning(const std::string& message) { Log("warning", message); }
void LogError(const std::string& message) { Log("error", message); }

}  // namespace ferry
