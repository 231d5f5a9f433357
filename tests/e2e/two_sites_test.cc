// Process-level: the real ferry-master and two ferry-replica executables (each starting its
// ferry-worker) on 127.0.0.1. Transactions of the reference workload go in at the master;
// each site must end up holding exactly the master's rows routed to it, row by row.
#include <gmock/gmock.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/catalog.h"
#include "common/child_process.h"
#include "common/node_client.h"
#include "common/site_rows.h"
#include "common/workload.h"
#include "test_util.h"

namespace ferry {
namespace {

using testing::Executable;
using ::testing::HasSubstr;
using testing::TempDir;

// A master and two replica sites, each a real process, torn down by the destructor.
class Deployment {
 public:
  explicit Deployment(const TempDir& dir) : dir_(dir) {}

  void Start() {
    auto master = ChildProcess::Start(
        {Executable("ferry-master"), "--master-config", testing::DeployedMasterConfiguration(),
         "--db", dir_.File("master.db"), "--submit-endpoint", "tcp://127.0.0.1:*",
         "--stream-endpoint", "tcp://127.0.0.1:*", "--heartbeat-ms", "200", "--ready-file",
         dir_.File("master.ready")},
        dir_.File("master.log"));
    ASSERT_OK(master.status());
    master_.emplace(std::move(master).value());
    auto ready = testing::ReadReadyFile(dir_.File("master.ready"), std::chrono::seconds(10));
    ASSERT_EQ(ready.count("submit"), 1u)
        << "the master did not start; see " << dir_.File("master.log");
    submit_endpoint_ = ready["submit"];
    stream_endpoint_ = ready["stream"];
    for (const std::string site : {"SITE-A", "SITE-B"}) StartReplica(site);
  }

  void StartReplica(const std::string& site) {
    std::filesystem::remove(dir_.File(site + ".ready"));
    auto replica = ChildProcess::Start(
        {Executable("ferry-replica"), "--site", site, "--master", stream_endpoint_, "--db",
         dir_.File(site + ".db"), "--control-endpoint", "tcp://127.0.0.1:*", "--queue", "REPLICATION.retry-delay-ms=100",
         "--ready-file", dir_.File(site + ".ready"), "--worker-log",
         dir_.File(site + ".workers.log")},
        dir_.File(site + ".log"));
    ASSERT_OK(replica.status());
    replicas_.erase(site);
    replicas_.emplace(site, std::move(replica).value());
    auto ready = testing::ReadReadyFile(dir_.File(site + ".ready"), std::chrono::seconds(10));
    ASSERT_EQ(ready.count("control"), 1u)
        << site << " did not start; see " << dir_.File(site + ".log");
    control_endpoints_[site] = ready["control"];
  }

  StatusOr<wire::ReplicaStatus> ReplicaStatus(const std::string& site) {
    NodeClient client(context_, control_endpoints_.at(site), 2000);
    auto status = client.GetStatus();
    if (!status.ok()) return status.status();
    return status->replica();
  }

  StatusOr<wire::MasterStatus> MasterStatus() {
    NodeClient client(context_, submit_endpoint_, 2000);
    auto status = client.GetStatus();
    if (!status.ok()) return status.status();
    return status->master();
  }

  // Waits until every site has applied everything on its stream.
  bool WaitUntilApplied(std::chrono::seconds timeout) {
    return testing::WaitFor(
        [this] {
          auto master = MasterStatus();
          if (!master.ok()) return false;
          for (const auto& stream : master->streams()) {
            auto replica = ReplicaStatus(stream.site());
            if (!replica.ok() || replica->last_applied_sequence() != stream.latest_sequence()) {
              return false;
            }
          }
          return true;
        },
        timeout);
  }

  const std::string& submit_endpoint() const { return submit_endpoint_; }
  const std::string& control_endpoint(const std::string& site) { return control_endpoints_[site]; }
  zmq::context_t& context() { return context_; }

 private:
  const TempDir& dir_;
  zmq::context_t context_;
  std::optional<ChildProcess> master_;
  std::map<std::string, ChildProcess> replicas_;  // by site
  std::string submit_endpoint_, stream_endpoint_;
  std::map<std::string, std::string> control_endpoints_;  // by site
};

class TwoSitesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto catalog = Catalog::Load(testing::DeployedMasterConfiguration());
    ASSERT_OK(catalog.status());
    catalog_ = *catalog;
    deployment_.Start();
  }

  void Submit(uint64_t from, uint64_t to, bool setup) {
    NodeClient client(deployment_.context(), deployment_.submit_endpoint());
    if (setup) {
      for (const auto& request : workload_.SetUp()) ASSERT_OK(client.Submit(request).status());
    }
    for (uint64_t i = from; i <= to; ++i)
      ASSERT_OK(client.Submit(workload_.Transaction(i)).status());
  }

  // Every LU of `site` equals the master's rows routed to it; returns the rows compared.
  size_t ExpectSiteEqualsMaster(const std::string& site) {
    auto comparisons =
        CompareSiteRows(*catalog_, dir_.File("master.db"), dir_.File(site + ".db"), site);
    EXPECT_OK(comparisons.status());
    if (!comparisons.ok()) return 0;
    size_t rows = 0;
    for (const auto& c : *comparisons) {
      EXPECT_TRUE(c.equal()) << site << " " << c.lu << ": " << c.first_difference;
      EXPECT_EQ(c.master_rows, c.replica_rows) << site << " " << c.lu;
      EXPECT_GT(c.replica_rows, 0u) << site << " " << c.lu;
      rows += c.replica_rows;
    }
    return rows;
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
  ASSERT_EQ(status->workers_size(), 1);
  EXPECT_EQ(status->workers(0).queue(), "REPLICATION");
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
  auto before = deployment_.ReplicaStatus("SITE-B");
  ASSERT_OK(before.status());
  ASSERT_EQ(before->workers_size(), 1);
  const int pid = before->workers(0).pid();
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  Submit(201, 400, /*setup=*/false);
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto now = deployment_.ReplicaStatus("SITE-B");
        return now.ok() && now->workers_size() == 1 && now->workers(0).pid() != pid;
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
  deployment_.StartReplica("SITE-A");  // replaces (and so stops) the running one
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
  auto read = [&](const std::string& file) {
    std::ifstream in(dir_.File(file));
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
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
