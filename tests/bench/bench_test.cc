// ferry-bench's memory figures: a process's peak read only while its pid still names that
// process, the most per kind of process kept for the table, and a note naming the run and the
// process for each peak over the 50 MB target.
#include <gmock/gmock.h>
#include <unistd.h>

#include <fstream>

#include "bench/local_deployment.h"
#include "bench/orders_bench.h"
#include "test_util.h"

namespace ferry {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// This test process's name as /proc says it.
std::string OwnName() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Name:", 0) == 0) return line.substr(line.find_first_not_of(" \t", 5));
  }
  return {};
}

TEST(PeakResidentMbTest, ReadsOnlyWhileThePidNamesTheProcess) {
  const std::string name = OwnName();
  ASSERT_FALSE(name.empty());
  EXPECT_GT(PeakResidentMb(getpid(), name), 0.0);
  // The same pid under another name: a later process that reused a Ferry process's pid.
  EXPECT_EQ(PeakResidentMb(getpid(), "ferry-master"), 0.0);
  EXPECT_EQ(PeakResidentMb(-1, name), 0.0);  // no such process
}

TEST(RecordPeakMemoryTest, KeepsTheMostPerKindAndNotesEachPeakOverTheTarget) {
  BenchResult result;
  RecordPeakMemory("e2e-1",
                   {{"ferry-master", 14.9},
                    {"ferry-replica BENCH", 16.5},
                    {"ferry-worker BENCH REPLICATION", 12.5},
                    {"ferry-worker BENCH DEFAULT", 11.0}},
                   &result);
  RecordPeakMemory("e2e-n", {{"ferry-master", 56.9}, {"ferry-replica BENCH", 593.7}}, &result);
  EXPECT_EQ(result.peak_memory_mb["ferry-master"], 56.9);
  EXPECT_EQ(result.peak_memory_mb["ferry-replica"], 593.7);
  EXPECT_EQ(result.peak_memory_mb["ferry-worker"], 12.5);
  EXPECT_THAT(result.notes,
              ElementsAre("e2e-n: ferry-master peaked at 56.9 MB (VmHWM), over the 50 MB target",
                          "e2e-n: ferry-replica BENCH peaked at 593.7 MB (VmHWM), over the 50 MB "
                          "target"));
  // The table says them too.
  BenchOptions options;
  EXPECT_THAT(FormatTable(options, result), HasSubstr("  ! e2e-n: ferry-replica BENCH peaked"));
}

TEST(FormatTableTest, EachRunHasARowOfItsOwn) {
  BenchOptions options;
  BenchResult result;
  result.throughput = {{"e2e-1", 2000}, {"e2e-n", 5000}};
  EXPECT_THAT(FormatTable(options, result), HasSubstr("end-to-end, 8 clients  "));
  // With one client for e2e-n as well, its row is not e2e-1's again.
  options.clients = 1;
  const std::string table = FormatTable(options, result);
  EXPECT_THAT(table, HasSubstr("end-to-end, 1 client                           2000 tx/s"));
  EXPECT_THAT(table, HasSubstr("end-to-end, 1 client (the e2e-n run)           5000 tx/s"));
}

}  // namespace
}  // namespace ferry
