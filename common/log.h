#ifndef FERRY_COMMON_LOG_H_
#define FERRY_COMMON_LOG_H_

#include <string>

namespace ferry {

// One line to stderr: "<UTC time> <program> <level>: <message>". Thread-safe.
void SetLogProgram(const std::string& program);
void LogInfo(const std::string& message);
void LogWarning(const std::string& message);
void LogError(const std::string& message);

}  // namespace ferry

#endif  // FERRY_COMMON_LOG_H_
