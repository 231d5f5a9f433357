#ifndef FERRY_COMMON_CLOCK_H_
#define FERRY_COMMON_CLOCK_H_

#include <chrono>
#include <cstdint>

namespace ferry {

// Time comes in through a Clock so that tests of heartbeats, retries and timeouts can move
// it forward instead of sleeping. Thread-safety: implementations are safe to share.
class Clock {
 public:
  virtual ~Clock() = default;
  // Microseconds since the Unix epoch: the time stamped on commits and jobs.
  virtual int64_t NowMicros() const = 0;
  // A monotonic instant for deadlines (heartbeats, retries).
  virtual std::chrono::steady_clock::time_point Steady() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  std::chrono::steady_clock::time_point Steady() const override {
    return std::chrono::steady_clock::now();
  }
  // The process-wide instance; never destroyed.
  static const Clock* Default() {
    static const SystemClock* clock = new SystemClock();
    return clock;
  }
};

}  // namespace ferry

#endif  // FERRY_COMMON_CLOCK_H_
