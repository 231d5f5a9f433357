// ferry-bench's memory and CPU figures: a process's peak and CPU time read only while its pid
// still names that process, the most memory per kind of process kept for the table, a note
// naming the run and the process for each peak over the 50 MB target, and the CPU rows.
#include <gmock/gmock.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "bench/local_deployment.h"
#include "bench/orders_bench.h"
#include "test_util.h"

namespace ferry {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

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

TEST(CpuSecondsTest, ReadsOnlyWhileThePidNamesTheProcess) {
  const std::string name = OwnName();
  ASSERT_FALSE(name.empty());
  // Some CPU time of our own first: /proc counts it in clock ticks.
  volatile uint64_t spin = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  while (std::chrono::steady_clock::now() < until) spin = spin + 1;
  auto used = CpuSeconds(getpid(), name);
  ASSERT_TRUE(used.has_value());
  EXPECT_GT(*used, 0.0);
  EXPECT_FALSE(CpuSeconds(getpid(), "ferry-master").has_value());
  EXPECT_FALSE(CpuSeconds(-1, name).has_value());
}

// The CPU rows: each kind of process, and what the cores allow with the CPU a transaction
// needs, which leaves out the master's polling (it yields the CPU to any thread).
TEST(FormatTableTest, CpuPerTransactionAndWhatTheCoresAllow) {
  BenchOptions options;
  BenchResult result;
  result.cpu_us_per_tx["e2e-1"] = {
      {"ferry-bench", 100}, {"ferry-master", 700}, {"ferry-replica", 200}, {"ferry-worker", 200}};
  result.master_poll_us_per_tx["e2e-1"] = 300;
  const std::string table = FormatTable(options, result);
  EXPECT_THAT(table, HasSubstr("CPU per transaction, e2e-1                     bench 100, master "
                               "700 (300 polling), replica 200, worker 200 us"));
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  char allowed[64];
  std::snprintf(allowed, sizeof allowed, "at most %.0f tx/s (900 us needed a transaction)",
                cores * 1e6 / 900);
  EXPECT_THAT(table, HasSubstr(allowed));
  EXPECT_THAT(FormatJson(options, result),
              HasSubstr("\"cpu_us_per_tx\":{\"e2e-1\":{\"ferry-bench\":100,\"ferry-master\":700,"));
}

// Split, each side's CPUs bound the rate on their own: the master's side (master less its
// polling, and the clients) and the replica's side (replica and workers).
TEST(FormatTableTest, SplitSaysWhereEachProcessRanAndWhatEachSidesCpusAllow) {
  BenchOptions options;
  BenchResult result;
  result.master_cpus = "0";
  result.replica_cpus = "1-2";
  result.cpus_seen = {{"ferry-bench", "0"}, {"ferry-master", "0"}, {"ferry-replica", "1-2"}};
  result.cpu_us_per_tx["e2e-1"] = {
      {"ferry-bench", 100}, {"ferry-master", 700}, {"ferry-replica", 500}, {"ferry-worker", 700}};
  result.master_poll_us_per_tx["e2e-1"] = 300;
  const std::string table = FormatTable(options, result);
  EXPECT_THAT(table, HasSubstr("placement                                      split: master and "
                               "clients on CPUs 0, the replica site on CPUs 1-2 (seen: bench 0, "
                               "master 0, replica 1-2)"));
  // 500 us on one CPU: 2,000 tx/s; 1,200 us on two: 1,667 tx/s.
  EXPECT_THAT(table, HasSubstr("what each side's CPUs allow, e2e-1           at most 1667 tx/s (a "
                               "transaction needed 500 us of CPUs 0, 1200 of CPUs 1-2)"));
  EXPECT_THAT(FormatJson(options, result),
              HasSubstr("\"placement\":{\"mode\":\"split\",\"master_cpus\":\"0\","
                        "\"replica_cpus\":\"1-2\",\"disk_interrupt_cpu\":null,\"seen\":{"
                        "\"ferry-bench\":\"0\","));
  result.disk_interrupt_cpu = 0;
  EXPECT_THAT(FormatTable(options, result),
              HasSubstr("the replica site on CPUs 1-2; CPU 0 handles the disk's interrupts (seen"));
  EXPECT_THAT(FormatJson(options, result), HasSubstr("\"disk_interrupt_cpu\":0,"));
  result.master_cpus = result.replica_cpus = "";
  result.cpus_seen.clear();
  EXPECT_THAT(FormatTable(options, result), HasSubstr("shared: every process on any CPU\n"));
}

// The CPU that handled the most of the disk's interrupts, by /proc/interrupts: its IRQs' counts
// summed per CPU column, other IRQs and CPUs this process may not use left out.
TEST(BusiestCpuTest, CountsOnlyTheDisksInterruptsOnTheCpusAllowed) {
  const std::string interrupts =
      "           CPU0       CPU1       CPU2\n"
      " 34:       1276          0          0 PCI-MSIX-0000:00:05.0   1-edge      virtio4-input\n"
      " 35:          0          1          0 PCI-MSIX-0000:00:02.0   0-edge      virtio1-config\n"
      " 36:         10     147734    9000000 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0\n"
      "NMI:          0          0          0   Non-maskable interrupts\n";
  EXPECT_EQ(BusiestCpu(interrupts, {35, 36}, {0, 1, 2}), 2);
  EXPECT_EQ(BusiestCpu(interrupts, {35, 36}, {0, 1}), 1);  // CPU 2 not ours
  EXPECT_EQ(BusiestCpu(interrupts, {34}, {0, 1, 2}), 0);
  EXPECT_EQ(BusiestCpu(interrupts, {40}, {0, 1, 2}), std::nullopt);  // no such IRQ
  EXPECT_EQ(BusiestCpu("", {36}, {0, 1}), std::nullopt);
}

// A worker that exited during the run took its CPU time with it: its kind's total fell, and
// it gets no figure rather than one that is too small or below zero.
TEST(CpuMicrosPerTransactionTest, AKindWhoseTotalFellGetsNoFigure) {
  const std::map<std::string, double> before = {
      {"ferry-bench", 1.0}, {"ferry-master", 10.0}, {"ferry-worker", 5.0}};
  const std::map<std::string, double> after = {
      {"ferry-bench", 1.5}, {"ferry-master", 12.0}, {"ferry-worker", 4.0}, {"ferry-replica", 0.5}};
  EXPECT_THAT(CpuMicrosPerTransaction(before, after, 1000),
              ElementsAre(Pair("ferry-bench", 500.0), Pair("ferry-master", 2000.0),
                          Pair("ferry-replica", 500.0)));
  EXPECT_TRUE(CpuMicrosPerTransaction(before, after, 0).empty());
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
