// Process-level: the real ferry-master and two ferry-replica executables (each starting its
// ferry-worker) on 127.0.0.1. Transactions of the reference workload go in at the master;
// each site must end up holding exactly the master's rows routed to it, row by row.
#include <gmock/gmock.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include "common/catalog.h"
#include "common/site_rows.h"
#include "common/workload.h"
#include "e2e/deployment.h"
#include "test_util.h"

namespace ferry {
namespace {

// The pid of `site`'s REPLICATION worker, or 0.
int ReplicationWorkerPid(const wire::ReplicaStatus& status) {
  for (const auto& worker : status.workers()) {
    if (worker.queue() == "REPLICATION") return worker.pid();
  }
  return 0;
}

using testing::Deployment;
using testing::Executable;
using ::testing::HasSubstr;
using testing::TempDir;

class TwoSitesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto catalog = Catalog::Load(testing::DeployedMasterConfiguration());
    ASSERT_OK(catalog.status());
    catalog_ = *catalog;
    ASSERT_OK(deployment_.StartMaster());
    for (const std::string site : {"SITE-A", "SITE-B"}) ASSERT_OK(deployment_.StartReplica(site));
  }

  void Submit(uint64_t from, uint64_t to, bool setup) {
    ASSERT_OK(deployment_.SubmitWorkload(workload_, from, to, setup));
  }

  // Every LU of `site` equals the master's rows routed to it; returns the rows compared.
  size_t ExpectSiteEqualsMaster(const std::string& site) {
    return testing::ExpectRowsEqualMaster(*catalog_, dir_.File("master.db"),
                                          dir_.File(site + ".db"), site);
  }

  TempDir dir_;
  std::shared_ptr<const Catalog> catalog_;
  Deployment deployment_{dir_};
  OrdersWorkload workload_;
};

TEST_F(TwoSitesTest, ThousandTransactionsReachEachSiteExactly) {
  Submit(1, 1000, /*setup=*/true);
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(120)))
      << "replicas did not catch up; logs in " << dir_.path();
  const size_t a = ExpectSiteEqualsMaster("SITE-A");
  const size_t b = ExpectSiteEqualsMaster("SITE-B");
  // Together the sites hold every master row but the other company's: nothing is lost and
  // nothing crosses over (each site's count excludes the other's rows).
  EXPECT_GT(a, 1000u);
  EXPECT_GT(b, 1000u);

  auto status = deployment_.ReplicaStatus("SITE-A");
  ASSERT_OK(status.status());
  EXPECT_TRUE(status->running());
  EXPECT_FALSE(status->session_id().empty());
  EXPECT_TRUE(status->master_connected());
  // One worker process per queue slot: DEFAULT (the configuration) and REPLICATION.
  std::multiset<std::string> queues;
  for (const auto& worker : status->workers()) queues.insert(worker.queue());
  EXPECT_EQ(queues, (std::multiset<std::string>{"DEFAULT", "REPLICATION"}));
  EXPECT_EQ(status->last_error(), "");
  uint64_t ready = 0;
  for (const auto& queue : status->queues()) {
    for (const auto& count : queue.jobs()) {
      if (count.state() == "Ready")
        ready += count.count();
      else
        ADD_FAILURE() << queue.name() << " has " << count.count() << " " << count.state();
    }
  }
  EXPECT_EQ(ready, status->last_received_sequence());
}

TEST_F(TwoSitesTest, AKilledWorkerIsRestartedAndNothingIsLost) {
  Submit(1, 200, /*setup=*/true);
  int pid = 0;  // the replica starts its workers after it is ready: wait for the one
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto before = deployment_.ReplicaStatus("SITE-B");
        return before.ok() && (pid = ReplicationWorkerPid(*before)) != 0;
      },
      std::chrono::seconds(20)))
      << "SITE-B has no REPLICATION worker";
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  Submit(201, 400, /*setup=*/false);
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto now = deployment_.ReplicaStatus("SITE-B");
        return now.ok() && ReplicationWorkerPid(*now) != 0 && ReplicationWorkerPid(*now) != pid;
      },
      std::chrono::seconds(20)))
      << "no new worker after SIGKILL";
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(120)));
  ExpectSiteEqualsMaster("SITE-A");
  ExpectSiteEqualsMaster("SITE-B");
}

TEST_F(TwoSitesTest, ARestartedReplicaResumesWhereItStopped) {
  Submit(1, 100, /*setup=*/true);
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(60)));
  auto first = deployment_.ReplicaStatus("SITE-A");
  ASSERT_OK(first.status());
  ASSERT_OK(deployment_.StartReplica("SITE-A"));  // replaces (and so stops) the running one
  Submit(101, 300, /*setup=*/false);
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(60)));
  auto second = deployment_.ReplicaStatus("SITE-A");
  ASSERT_OK(second.status());
  EXPECT_NE(second->session_id(), first->session_id()) << "a restart starts a new session";
  ExpectSiteEqualsMaster("SITE-A");
  ExpectSiteEqualsMaster("SITE-B");
}

// The operator's commands, run as a person would: ferryctl's own executable.
TEST_F(TwoSitesTest, FerryctlSubmitsStatusAndVerifies) {
  const std::string ctl = Executable("ferryctl");
  auto run = [&](const std::string& args, const std::string& out) {
    return std::system(
        (ctl + " " + args + " > " + dir_.File(out) + " 2> " + dir_.File(out + ".err")).c_str());
  };
  auto read = [&](const std::string& file) { return testing::ReadFile(dir_.File(file)); };
  ASSERT_EQ(run("workload --transactions 100", "workload.jsonl"), 0);
  ASSERT_EQ(run("submit --endpoint " + deployment_.submit_endpoint() + " --file " +
                    dir_.File("workload.jsonl"),
                "submit.out"),
            0)
      << read("submit.out.err");
  EXPECT_THAT(read("submit.out.err"), HasSubstr("114 submitted, 0 rejected"));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(60)));

  ASSERT_EQ(
      run("status --json --endpoint " + deployment_.control_endpoint("SITE-A"), "status.json"), 0);
  EXPECT_THAT(read("status.json"), HasSubstr("\"session_id\""));
  EXPECT_THAT(read("status.json"), HasSubstr("\"last_applied_sequence\""));
  ASSERT_EQ(run("status --endpoint " + deployment_.submit_endpoint(), "master.txt"), 0);
  EXPECT_THAT(read("master.txt"), HasSubstr("SITE-B"));

  const std::string verify = "verify --master-config " + testing::DeployedMasterConfiguration() +
                             " --master-db " + dir_.File("master.db") +
                             " --site SITE-A --replica-db ";
  EXPECT_EQ(run(verify + dir_.File("SITE-A.db"), "verify.txt"), 0) << read("verify.txt");
  EXPECT_THAT(read("verify.txt"), HasSubstr("rows equal"));
  // SITE-B's database is not what SITE-A should hold.
  EXPECT_NE(run(verify + dir_.File("SITE-B.db"), "verify-b.txt"), 0);
  EXPECT_THAT(read("verify-b.txt"), HasSubstr("DIFFER"));

  // A rejected line is reported with its number, and the rest still go in.
  {
    std::ofstream bad(dir_.File("bad.jsonl"));
    bad << "{\"changes\":[{\"lu\":\"Nope\",\"action\":\"NEW\",\"keys\":{\"id\":\"1\"}}]}\n"
        << "not json\n";
  }
  EXPECT_NE(run("submit --endpoint " + deployment_.submit_endpoint() + " --file " +
                    dir_.File("bad.jsonl"),
                "bad.out"),
            0);
  EXPECT_THAT(read("bad.out.err"), HasSubstr("line 1: rejected: change 1: unknown LU 'Nope'"));
  EXPECT_THAT(read("bad.out.err"), HasSubstr("line 2: not a SubmitRequest in JSON"));
}

}  // namespace
}  // namespace ferry
