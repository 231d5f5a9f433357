// Process-level tests of the batch queues: the real master, one replica site and its worker
// processes (plus workers started by hand) on 127.0.0.1. What the queues promise is read
// from the replica's own records: every attempt with the worker's own start and end times.
#include <gmock/gmock.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "common/catalog.h"
#include "common/child_process.h"
#include "common/cpus.h"
#include "common/site_rows.h"
#include "common/sqlite.h"
#include "common/workload.h"
#include "e2e/deployment.h"
#include "test_util.h"

namespace ferry {
namespace {

using testing::Change;
using testing::Deployment;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::Transaction;

constexpr char kSite[] = "SITE-A";

struct AttemptRow {
  uint64_t job_id;
  std::string queue;
  int attempt;
  int pid;
  int64_t started_at_us;
  int64_t finished_at_us;
  std::string outcome;
  std::string error;
};

// Every recorded attempt, read from the replica database.
std::vector<AttemptRow> Attempts(const std::string& db_path) {
  std::vector<AttemptRow> rows;
  auto db = sqlite::Db::Open(db_path, {.create = false});
  EXPECT_OK(db.status());
  if (!db.ok()) return rows;
  auto statement = db->Prepare(
      "SELECT a.job_id, j.queue, a.attempt, a.pid, a.started_at_us, a.finished_at_us, a.outcome, "
      "COALESCE(a.error, '') FROM ferry_job_attempts a JOIN ferry_jobs j USING (job_id) "
      "ORDER BY a.job_id, a.attempt");
  EXPECT_OK(statement.status());
  while (statement.ok()) {
    auto step = statement->Step();
    if (!step.ok() || *step == sqlite::Statement::StepResult::kDone) break;
    rows.push_back({static_cast<uint64_t>(statement->ColumnInt(0)), statement->ColumnText(1),
                    static_cast<int>(statement->ColumnInt(2)),
                    static_cast<int>(statement->ColumnInt(3)), statement->ColumnInt(4),
                    statement->ColumnInt(5), statement->ColumnText(6), statement->ColumnText(7)});
  }
  return rows;
}

// The most attempts of `queue` that were executing at one moment.
int MaxOverlap(const std::vector<AttemptRow>& attempts, const std::string& queue) {
  std::vector<std::pair<int64_t, int>> events;  // (time, +1 start / -1 end); ends sort first
  for (const auto& a : attempts) {
    if (a.queue != queue) continue;
    events.emplace_back(a.started_at_us, +1);
    events.emplace_back(a.finished_at_us, -1);
  }
  std::sort(events.begin(), events.end());
  int now = 0, most = 0;
  for (const auto& [time, delta] : events) most = std::max(most, now += delta);
  return most;
}

class QueuesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto catalog = Catalog::Load(testing::DeployedMasterConfiguration());
    ASSERT_OK(catalog.status());
    catalog_ = *catalog;
    ASSERT_OK(deployment_.StartMaster());
  }

  // The replica's rows equal the master's rows routed to it.
  void ExpectRowsEqualMaster() {
    testing::ExpectRowsEqualMaster(*catalog_, deployment_.master_db(), deployment_.db(kSite),
                                   kSite);
  }

  // Runs SQL on the site's database by hand, as an operator (or an accident) would.
  void ExecAtSite(const std::string& sql) {
    auto db = sqlite::Db::Open(deployment_.db(kSite), {.create = false});
    ASSERT_OK(db.status());
    ASSERT_OK(db->Exec(sql));
  }

  // Company C1 and its site C1-S1, applied.
  void SubmitCompanyAndSite() {
    ASSERT_OK(deployment_
                  .Submit(Transaction(
                      {Change("Company", wire::NEW, {{"company_id", "C1"}}),
                       Change("Site", wire::NEW, {{"site_id", "C1-S1"}}, {{"company_id", "C1"}})}))
                  .status());
    ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(30)));
  }

  // The Ready and Skipped counts of the site's status equal those of its jobs table.
  void ExpectStatusCountsFinishedJobsAsTheStore() {
    std::map<std::string, uint64_t> stored;  // "queue state" -> count
    {
      auto db = sqlite::Db::Open(deployment_.db(kSite), {.create = false});
      ASSERT_OK(db.status());
      auto count = db->Prepare(
          "SELECT queue || ' ' || state, COUNT(*) FROM ferry_jobs "
          "WHERE state IN ('Ready', 'Skipped') GROUP BY queue, state");
      ASSERT_OK(count.status());
      while (true) {
        auto step = count->Step();
        ASSERT_OK(step.status());
        if (*step == sqlite::Statement::StepResult::kDone) break;
        stored[count->ColumnText(0)] = count->ColumnInt(1);
      }
    }
    auto status = deployment_.ReplicaStatus(kSite);
    ASSERT_OK(status.status());
    std::map<std::string, uint64_t> reported;
    for (const auto& queue : status->queues()) {
      for (const auto& count : queue.jobs()) {
        if (count.state() == "Ready" || count.state() == "Skipped") {
          reported[queue.name() + " " + count.state()] = count.count();
        }
      }
    }
    EXPECT_EQ(reported, stored);
  }

  // Customer CU-1 of C1, applied, then removed at the site by hand: the master's next update
  // of it (the reply returned) makes a job that cannot apply there.
  StatusOr<wire::SubmitReply> UpdateACustomerRemovedAtTheSite() {
    auto created =
        deployment_.Submit(Transaction({Change("Customer", wire::NEW, {{"customer_id", "CU-1"}},
                                               {{"company_id", "C1"}, {"name", "One"}})}));
    if (!created.ok()) return created.status();
    if (!deployment_.WaitUntilApplied(std::chrono::seconds(30))) {
      return Status::Unavailable("CU-1 was not applied at the site in 30 s");
    }
    ExecAtSite("DELETE FROM lu_Customer WHERE customer_id = 'CU-1'");
    return deployment_.Submit(Transaction(
        {Change("Customer", wire::MODIFY, {{"customer_id", "CU-1"}}, {{"name", "Renamed"}})}));
  }

  wire::JobList Jobs(const std::string& state = "") {
    wire::Envelope request;
    request.mutable_job_query()->set_state(state);
    request.mutable_job_query()->set_limit(1000);
    auto reply = deployment_.Control(kSite, request);
    EXPECT_OK(reply.status());
    return reply.ok() ? reply->job_list() : wire::JobList();
  }

  StatusOr<wire::Envelope> JobCommand(wire::JobCommand::Action action, uint64_t job_id) {
    wire::Envelope request;
    request.mutable_job_command()->set_action(action);
    request.mutable_job_command()->set_job_id(job_id);
    return deployment_.Control(kSite, request);
  }

  // Whether `job_id` failed its last allowed attempt and is held, within 10 s.
  bool WaitUntilHeld(uint64_t job_id) {
    return testing::WaitFor(
        [&] {
          auto why = JobCommand(wire::JobCommand::WHY, job_id);
          return why.ok() &&
                 why->job_why().summary().find("last allowed attempt") != std::string::npos;
        },
        std::chrono::seconds(10));
  }

  StatusOr<wire::Envelope> QueueCommand(wire::QueueCommand::Action action, uint32_t processes = 0) {
    wire::Envelope request;
    request.mutable_queue_command()->set_queue("REPLICATION");
    request.mutable_queue_command()->set_action(action);
    request.mutable_queue_command()->set_processes(processes);
    return deployment_.Control(kSite, request);
  }

  // The job that applies the message at `sequence`. The message reaches the site after the
  // master's reply, so its job may not exist yet.
  uint64_t JobAt(uint64_t sequence) {
    uint64_t id = 0;
    auto find = [&] {
      const wire::JobList list = Jobs();
      for (const auto& job : list.jobs()) {
        if (job.sequence() == sequence) id = job.job_id();
      }
      return id != 0;
    };
    if (!testing::WaitFor(find, std::chrono::seconds(30))) {
      ADD_FAILURE() << "no job for sequence " << sequence << " in 30 s";
    }
    return id;
  }

  int ReplicationWorkers() {
    auto status = deployment_.ReplicaStatus(kSite);
    if (!status.ok()) return -1;
    return static_cast<int>(
        std::count_if(status->workers().begin(), status->workers().end(),
                      [](const auto& w) { return w.queue() == "REPLICATION"; }));
  }

  TempDir dir_;
  std::shared_ptr<const Catalog> catalog_;
  Deployment deployment_{dir_};
  OrdersWorkload workload_;
};

TEST_F(QueuesTest, ProcessLimitHoldsWhateverTheNumberOfConnectedWorkers) {
  ASSERT_OK(deployment_.StartReplica(
      kSite, {"--queue", "REPLICATION.processes=2", "--queue", "REPLICATION.ordering=dependency",
              "--worker-arg=--apply-delay=*=40"}));
  // Three more workers for the same queue, started by hand: five connected in all.
  std::vector<ChildProcess> extra;
  for (int i = 0; i < 3; ++i) {
    auto worker = ChildProcess::Start(
        {testing::Executable("ferry-worker"), "--replica", deployment_.worker_endpoint(kSite),
         "--db", deployment_.db(kSite), "--queue", "REPLICATION", "--apply-delay=*=40"},
        dir_.File("extra-workers.log"));
    ASSERT_OK(worker.status());
    extra.push_back(std::move(worker).value());
  }
  ASSERT_TRUE(testing::WaitFor([&] { return ReplicationWorkers() == 5; }, std::chrono::seconds(10)))
      << "connected REPLICATION workers: " << ReplicationWorkers();
  ASSERT_OK(deployment_.SubmitWorkload(workload_, 1, 150, /*setup=*/true));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(120)));

  // SITE-A gets about half the transactions: still dozens of jobs on five workers.
  auto attempts = Attempts(deployment_.db(kSite));
  ASSERT_GT(attempts.size(), 60u);
  EXPECT_EQ(MaxOverlap(attempts, "REPLICATION"), 2) << "the queue has 2 processes";
  std::set<int> pids;
  for (const auto& a : attempts) {
    if (a.queue == "REPLICATION") pids.insert(a.pid);
  }
  EXPECT_GT(pids.size(), 2u) << "jobs went to more than two of the five workers";
  ExpectRowsEqualMaster();
}

TEST_F(QueuesTest, NoneModeLetsADependentJobFailUntilItsParentCommits) {
  ASSERT_OK(deployment_.StartReplica(
      kSite,
      {"--queue", "REPLICATION.processes=2", "--queue", "REPLICATION.ordering=none", "--queue",
       "REPLICATION.retry-delay-ms=150", "--queue", "REPLICATION.retry-multiplier=1", "--queue",
       "REPLICATION.retry-attempts=50", "--worker-arg=--apply-delay=Customer=3000"}));
  SubmitCompanyAndSite();
  // Both workers up, so the order runs while the customer's job sleeps (3 s: room for a slow
  // machine to start the order's first attempt before the customer commits).
  ASSERT_TRUE(
      testing::WaitFor([&] { return ReplicationWorkers() == 2; }, std::chrono::seconds(10)));
  // A customer (slow to apply), then an order that references it.
  auto customer = deployment_.Submit(Transaction(
      {Change("Customer", wire::NEW, {{"customer_id", "CU-X"}}, {{"company_id", "C1"}})}));
  ASSERT_OK(customer.status());
  auto order = deployment_.Submit(Transaction(
      {Change("CustomerOrder", wire::NEW, {{"order_no", "O-X"}},
              {{"customer_id", "CU-X"}, {"site_id", "C1-S1"}, {"status", "Planned"}})}));
  ASSERT_OK(order.status());
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(30)));

  const uint64_t order_job = JobAt(order->published(0).sequence());
  std::vector<AttemptRow> order_attempts;
  for (const auto& a : Attempts(deployment_.db(kSite))) {
    if (a.job_id == order_job) order_attempts.push_back(a);
  }
  ASSERT_GE(order_attempts.size(), 2u) << "the order's job should have failed first";
  EXPECT_EQ(order_attempts.front().outcome, "Error");
  EXPECT_THAT(order_attempts.front().error, HasSubstr("CustomerOrder[order_no=O-X]"));
  EXPECT_THAT(order_attempts.front().error,
              HasSubstr("references Customer[customer_id=CU-X], which does not exist"));
  EXPECT_EQ(order_attempts.back().outcome, "Ready");
  ExpectRowsEqualMaster();
  EXPECT_THAT(
      testing::ReadFile(deployment_.log(kSite)),
      HasSubstr("queue REPLICATION runs Receive_Message with 2 processes and ordering 'none'"));
}

// A held job stays listed under its state however many jobs finished after it (the list is
// not the newest jobs, filtered).
TEST_F(QueuesTest, AJobInErrorIsListedHoweverManyFinishedAfterIt) {
  ASSERT_OK(deployment_.StartReplica(kSite, {"--queue", "REPLICATION.ordering=dependency",
                                             "--queue", "REPLICATION.retry-attempts=1"}));
  SubmitCompanyAndSite();
  auto doomed = UpdateACustomerRemovedAtTheSite();
  ASSERT_OK(doomed.status());
  const uint64_t doomed_job = JobAt(doomed->published(0).sequence());
  // Twenty independent transactions after it: a dependency queue applies them all.
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK(deployment_
                  .Submit(Transaction(
                      {Change("Customer", wire::NEW, {{"customer_id", "CU-N" + std::to_string(i)}},
                              {{"company_id", "C1"}})}))
                  .status());
  }
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto jobs = Jobs();
        return jobs.jobs_size() > 0 && jobs.jobs(0).state() == "Ready";  // the newest
      },
      std::chrono::seconds(30)));
  wire::Envelope request;
  request.mutable_job_query()->set_state("Error");
  request.mutable_job_query()->set_limit(5);
  auto reply = deployment_.Control(kSite, request);
  ASSERT_OK(reply.status());
  ASSERT_EQ(reply->job_list().jobs_size(), 1);
  EXPECT_EQ(reply->job_list().jobs(0).job_id(), doomed_job);
  EXPECT_EQ(reply->job_list().jobs(0).state(), "Error");
}

TEST_F(QueuesTest, DependencyModeRunsTheSameWithoutAnyFailure) {
  ASSERT_OK(deployment_.StartReplica(
      kSite, {"--queue", "REPLICATION.processes=2", "--queue", "REPLICATION.ordering=dependency",
              "--worker-arg=--apply-delay=Customer=4000"}));
  SubmitCompanyAndSite();
  auto customer = deployment_.Submit(Transaction(
      {Change("Customer", wire::NEW, {{"customer_id", "CU-X"}}, {{"company_id", "C1"}})}));
  ASSERT_OK(customer.status());
  auto order = deployment_.Submit(Transaction(
      {Change("CustomerOrder", wire::NEW, {{"order_no", "O-X"}},
              {{"customer_id", "CU-X"}, {"site_id", "C1-S1"}, {"status", "Planned"}})}));
  ASSERT_OK(order.status());
  // While the customer's job is slow (4 s: room for a slow machine), the order's job says
  // what it waits for.
  auto why = JobCommand(wire::JobCommand::WHY, JobAt(order->published(0).sequence()));
  ASSERT_OK(why.status());
  EXPECT_EQ(why->job_why().state(), "Waiting");
  EXPECT_THAT(why->job_why().summary(), HasSubstr("Customer/CU-X"));
  ASSERT_EQ(why->job_why().blockers_size(), 1);
  EXPECT_EQ(why->job_why().blockers(0).job_id(), JobAt(customer->published(0).sequence()));

  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(30)));
  for (const auto& a : Attempts(deployment_.db(kSite))) {
    EXPECT_NE(a.outcome, "Error") << "job " << a.job_id << ": " << a.error;
  }
  ExpectRowsEqualMaster();
}

TEST_F(QueuesTest, DependencyModeRunsIndependentJobsAtTheSameTime) {
  ASSERT_OK(deployment_.StartReplica(
      kSite, {"--queue", "REPLICATION.processes=2", "--queue", "REPLICATION.ordering=dependency",
              "--worker-arg=--apply-delay=Customer=1500"}));
  SubmitCompanyAndSite();
  ASSERT_TRUE(
      testing::WaitFor([&] { return ReplicationWorkers() == 2; }, std::chrono::seconds(10)));
  for (const std::string id : {"CU-1", "CU-2"}) {
    ASSERT_OK(deployment_
                  .Submit(Transaction({Change("Customer", wire::NEW, {{"customer_id", id}},
                                              {{"company_id", "C1"}})}))
                  .status());
  }
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(30)));
  EXPECT_EQ(MaxOverlap(Attempts(deployment_.db(kSite)), "REPLICATION"), 2);
  ExpectRowsEqualMaster();
}

TEST_F(QueuesTest, StrictFailureHoldsTheQueueUntilRetriedOrSkipped) {
  ASSERT_OK(deployment_.StartReplica(
      kSite, {"--queue", "REPLICATION.retry-attempts=2", "--queue", "REPLICATION.retry-delay-ms=50",
              "--db-lock-timeout-ms", "200"}));
  SubmitCompanyAndSite();
  // Someone removes the customer at the site by hand: the next update of it cannot apply.
  auto modify = UpdateACustomerRemovedAtTheSite();
  ASSERT_OK(modify.status());
  auto unrelated = deployment_.Submit(Transaction(
      {Change("Customer", wire::NEW, {{"customer_id", "CU-2"}}, {{"company_id", "C1"}})}));
  ASSERT_OK(unrelated.status());

  const uint64_t failed_job = JobAt(modify->published(0).sequence());
  // Two attempts, then held; the unrelated job behind it waits (strict order).
  ASSERT_TRUE(WaitUntilHeld(failed_job));
  auto errors = Jobs("Error");
  ASSERT_EQ(errors.jobs_size(), 1);
  EXPECT_EQ(errors.jobs(0).job_id(), failed_job);
  EXPECT_EQ(errors.jobs(0).attempts(), 2u);
  EXPECT_THAT(errors.jobs(0).error(), HasSubstr("Customer[customer_id=CU-1] does not exist"));
  ASSERT_EQ(errors.jobs(0).attempt_log_size(), 2);
  EXPECT_THAT(errors.jobs(0).attempt_log(0).error(), HasSubstr("does not exist"));
  const uint64_t waiting_job = JobAt(unrelated->published(0).sequence());
  auto why = JobCommand(wire::JobCommand::WHY, waiting_job);
  ASSERT_OK(why.status());
  EXPECT_EQ(why->job_why().state(), "Waiting");
  EXPECT_THAT(why->job_why().summary(),
              HasSubstr("job " + std::to_string(failed_job) + " (strict order)"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto status = deployment_.ReplicaStatus(kSite);
  ASSERT_OK(status.status());
  EXPECT_LT(status->last_applied_sequence(), modify->published(0).sequence())
      << "the queue must hold";
  EXPECT_THAT(status->last_error(), HasSubstr("does not exist"));

  // The operator puts the row back and retries: both jobs go through.
  ExecAtSite(
      "INSERT INTO lu_Customer (customer_id, company_id, name) VALUES ('CU-1', 'C1', 'One')");
  auto retried = JobCommand(wire::JobCommand::RETRY, failed_job);
  ASSERT_OK(retried.status());
  EXPECT_THAT(retried->command_reply().message(), HasSubstr("will run again"));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(30)));
  ExpectRowsEqualMaster();

  // Another failure, skipped this time: the queue goes on without it.
  ExecAtSite("DELETE FROM lu_Customer WHERE customer_id = 'CU-2'");
  auto doomed = deployment_.Submit(Transaction(
      {Change("Customer", wire::MODIFY, {{"customer_id", "CU-2"}}, {{"name", "Two"}})}));
  ASSERT_OK(doomed.status());
  auto after = deployment_.Submit(Transaction(
      {Change("Customer", wire::NEW, {{"customer_id", "CU-3"}}, {{"company_id", "C1"}})}));
  ASSERT_OK(after.status());
  const uint64_t doomed_job = JobAt(doomed->published(0).sequence());
  EXPECT_FALSE(JobCommand(wire::JobCommand::SKIP, JobAt(after->published(0).sequence())).ok())
      << "only a job in Error can be skipped";
  // A retry whose record cannot be stored (another connection holds the database's write
  // lock) says so: it holds for this session only. The job fails again, and is skipped below.
  ASSERT_TRUE(WaitUntilHeld(doomed_job));
  {
    auto lock = sqlite::Db::Open(deployment_.db(kSite), {.create = false});
    ASSERT_OK(lock.status());
    ASSERT_OK(lock->Exec("BEGIN IMMEDIATE"));
    auto unkept = JobCommand(wire::JobCommand::RETRY, doomed_job);
    ASSERT_OK(unkept.status());
    EXPECT_THAT(unkept->command_reply().message(),
                HasSubstr("will run again (not kept across a restart: "));
    ASSERT_OK(lock->Exec("ROLLBACK"));
  }
  ASSERT_TRUE(testing::WaitFor([&] { return JobCommand(wire::JobCommand::SKIP, doomed_job).ok(); },
                               std::chrono::seconds(10)));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(30)));
  auto skipped = Jobs("Skipped");
  ASSERT_EQ(skipped.jobs_size(), 1);
  EXPECT_EQ(skipped.jobs(0).job_id(), doomed_job);
  ExpectStatusCountsFinishedJobsAsTheStore();
  // A new session counts what the last one finished.
  ASSERT_OK(deployment_.StartReplica(kSite));
  ExpectStatusCountsFinishedJobsAsTheStore();
  // The site now lacks exactly what was removed by hand and skipped: CU-2.
  auto comparisons =
      CompareSiteRows(*catalog_, deployment_.master_db(), deployment_.db(kSite), kSite);
  ASSERT_OK(comparisons.status());
  for (const auto& c : *comparisons) {
    if (c.lu == "Customer") {
      EXPECT_EQ(c.missing, 1u);
      EXPECT_THAT(c.first_difference, HasSubstr("Customer[customer_id=CU-2]"));
    } else {
      EXPECT_TRUE(c.equal()) << c.lu << ": " << c.first_difference;
    }
  }
}

// The operator's commands as a person runs them: the ferryctl executable against the
// replica's control endpoint, with its printed answers and its usage errors.
TEST_F(QueuesTest, FerryctlQueueAndJobCommands) {
  ASSERT_OK(deployment_.StartReplica(kSite, {"--queue", "REPLICATION.retry-attempts=1"}));
  SubmitCompanyAndSite();
  auto modify = UpdateACustomerRemovedAtTheSite();
  ASSERT_OK(modify.status());
  ASSERT_TRUE(
      testing::WaitFor([&] { return Jobs("Error").jobs_size() == 1; }, std::chrono::seconds(10)));
  const std::string job = std::to_string(JobAt(modify->published(0).sequence()));

  auto ferryctl_at = [&](const std::string& endpoint, const std::string& args) {
    const std::string out = dir_.File("ferryctl.out");
    int code = std::system((testing::Executable("ferryctl") + " " + args + " --endpoint " +
                            endpoint + " > " + out + " 2>&1")
                               .c_str());
    return std::make_pair(WEXITSTATUS(code), testing::ReadFile(out));
  };
  auto ferryctl = [&](const std::string& args) {
    return ferryctl_at(deployment_.control_endpoint(kSite), args);
  };
  auto [code, out] = ferryctl("jobs --state Error");
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, HasSubstr("Error"));
  EXPECT_THAT(out, HasSubstr("Customer[customer_id=CU-1] does not exist"));
  std::tie(code, out) = ferryctl("jobs --json --job " + job);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, HasSubstr("\"attempt_log\""));
  std::tie(code, out) = ferryctl("job why " + job);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, HasSubstr("failed its last allowed attempt"));
  std::tie(code, out) = ferryctl("sessions");
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, HasSubstr("REPLICATION"));
  EXPECT_THAT(out, HasSubstr("W"));

  std::tie(code, out) = ferryctl("queue set-processes REPLICATION 2");
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, HasSubstr("queue REPLICATION: 2 processes (was 1)"));
  std::tie(code, out) = ferryctl("queue pause REPLICATION");
  EXPECT_THAT(out, HasSubstr("paused"));
  std::tie(code, out) = ferryctl("status");
  EXPECT_THAT(out, HasSubstr("PAUSED"));
  std::tie(code, out) = ferryctl("queue resume REPLICATION");
  EXPECT_THAT(out, HasSubstr("resumed"));

  // Usage errors and refusals name what is wrong.
  std::tie(code, out) = ferryctl("queue set-processes REPLICATION");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("give the queue and the process count"));
  std::tie(code, out) = ferryctl("queue frobnicate REPLICATION");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("unknown action 'frobnicate'"));
  std::tie(code, out) = ferryctl("queue pause NO_SUCH_QUEUE");
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, HasSubstr("no queue named 'NO_SUCH_QUEUE'"));
  std::tie(code, out) = ferryctl("job retry 999999");
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, HasSubstr("job 999999 is not unfinished"));

  std::tie(code, out) = ferryctl("job skip " + job);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, HasSubstr("skipped"));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(10)));
  std::tie(code, out) = ferryctl("status");
  EXPECT_THAT(out, HasSubstr("Skipped 1"));

  // The master's status: its transactions and the fsyncs that made them durable.
  std::tie(code, out) = ferryctl_at(deployment_.submit_endpoint(), "status");
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, ::testing::ContainsRegex(
                       "last transaction [0-9]+; since start [0-9]+ submits made durable by "
                       "[1-9][0-9]* fsyncs"));
}

TEST_F(QueuesTest, ProcessCountChangesAtRunTimeAndSurvivesARestart) {
  ASSERT_OK(deployment_.StartReplica(
      kSite, {"--queue", "REPLICATION.ordering=dependency", "--worker-arg=--apply-delay=*=30"}));
  ASSERT_TRUE(
      testing::WaitFor([&] { return ReplicationWorkers() == 1; }, std::chrono::seconds(10)));
  ASSERT_OK(QueueCommand(wire::QueueCommand::SET_PROCESSES, 3).status());
  ASSERT_TRUE(
      testing::WaitFor([&] { return ReplicationWorkers() == 3; }, std::chrono::seconds(10)));

  ASSERT_OK(deployment_.StartReplica(
      kSite, {"--queue", "REPLICATION.ordering=dependency", "--worker-arg=--apply-delay=*=30"}));
  ASSERT_TRUE(testing::WaitFor([&] { return ReplicationWorkers() == 3; }, std::chrono::seconds(10)))
      << "the process count set by ferryctl must survive a restart";
  auto status = deployment_.ReplicaStatus(kSite);
  ASSERT_OK(status.status());
  EXPECT_EQ(status->queues(1).name(), "REPLICATION");
  EXPECT_EQ(status->queues(1).processes(), 3u);

  // Lowered while jobs run: they finish, and nothing is lost.
  std::thread load([&] { EXPECT_OK(deployment_.SubmitWorkload(workload_, 1, 60, true)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_OK(QueueCommand(wire::QueueCommand::SET_PROCESSES, 1).status());
  load.join();
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(60)));
  ASSERT_TRUE(
      testing::WaitFor([&] { return ReplicationWorkers() == 1; }, std::chrono::seconds(10)));
  for (const auto& a : Attempts(deployment_.db(kSite))) {
    EXPECT_NE(a.outcome, "Error") << "job " << a.job_id << ": " << a.error;
  }
  ExpectRowsEqualMaster();
}

TEST_F(QueuesTest, PauseStopsDispatchAndResumeRestartsIt) {
  // No sync for a minute: a job that waits is not stored until an operator looks at it.
  ASSERT_OK(deployment_.StartReplica(kSite, {"--sync-interval-ms", "60000"}));
  SubmitCompanyAndSite();
  auto paused = QueueCommand(wire::QueueCommand::PAUSE);
  ASSERT_OK(paused.status());
  EXPECT_THAT(paused->command_reply().message(), HasSubstr("paused"));
  auto customer = deployment_.Submit(Transaction(
      {Change("Customer", wire::NEW, {{"customer_id", "CU-1"}}, {{"company_id", "C1"}})}));
  ASSERT_OK(customer.status());
  const uint64_t sequence = customer->published(0).sequence();
  // Received and stored, but not applied while paused.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto s = deployment_.ReplicaStatus(kSite);
        return s.ok() && s->last_received_sequence() == sequence;
      },
      std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto status = deployment_.ReplicaStatus(kSite);
  ASSERT_OK(status.status());
  EXPECT_EQ(status->last_applied_sequence(), sequence - 1);
  EXPECT_TRUE(status->queues(1).paused());
  const wire::JobList posted = Jobs("Posted");
  ASSERT_EQ(posted.jobs_size(), 1) << "the waiting job is not listed";
  EXPECT_EQ(posted.jobs(0).sequence(), sequence);
  EXPECT_EQ(posted.jobs(0).job_id(), sequence) << "a job's id is its message's sequence";
  auto why = JobCommand(wire::JobCommand::WHY, JobAt(sequence));
  ASSERT_OK(why.status());
  EXPECT_THAT(why->job_why().summary(), HasSubstr("paused"));

  ASSERT_OK(QueueCommand(wire::QueueCommand::RESUME).status());
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(10)));
  ExpectRowsEqualMaster();

  // A pause and a resume keep no process count: the configuration's still counts.
  ASSERT_OK(deployment_.StartReplica(kSite, {"--queue", "REPLICATION.processes=3"}));
  status = deployment_.ReplicaStatus(kSite);
  ASSERT_OK(status.status());
  for (const auto& queue : status->queues()) {
    if (queue.name() == "REPLICATION") {
      EXPECT_EQ(queue.processes(), 3u);
      EXPECT_FALSE(queue.paused());
    }
  }
}

TEST_F(QueuesTest, KilledWorkersLoseNothingAndApplyEachJobOnce) {
  ASSERT_OK(deployment_.StartReplica(
      kSite, {"--queue", "REPLICATION.processes=2", "--queue", "REPLICATION.ordering=dependency",
              "--queue", "REPLICATION.retry-delay-ms=50"}));
  std::atomic<bool> loaded{false};
  std::thread load([&] {
    EXPECT_OK(deployment_.SubmitWorkload(workload_, 1, 1500, true));
    loaded = true;
  });
  std::mt19937 random(42);
  int kills = 0;
  // Kills go on while the load runs, and past it until there were five (a fast machine
  // submits the load in a second).
  while ((!loaded || kills < 5) && kills < 20) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + random() % 150));
    auto status = deployment_.ReplicaStatus(kSite);
    if (!status.ok() || status->workers().empty()) continue;
    const auto& victim = status->workers(random() % status->workers_size());
    if (kill(victim.pid(), SIGKILL) == 0) ++kills;
  }
  load.join();
  EXPECT_GE(kills, 5) << "too few kills to mean anything";
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(120)));
  ExpectRowsEqualMaster();
  // Applied exactly once: one attempt that applied (Ready) per job; re-runs of a job a dead
  // worker had committed say AlreadyReady.
  std::map<uint64_t, int> applied;
  for (const auto& a : Attempts(deployment_.db(kSite))) {
    if (a.outcome == "Ready") ++applied[a.job_id];
  }
  auto status = deployment_.ReplicaStatus(kSite);
  ASSERT_OK(status.status());
  EXPECT_EQ(applied.size(), status->last_received_sequence());
  for (const auto& [job, count] : applied) EXPECT_EQ(count, 1) << "job " << job;
}

TEST_F(QueuesTest, FinishedJobsArePrunedAfterTheRetention) {
  ASSERT_OK(deployment_.StartReplica(kSite, {"--job-retention-s", "0"}));
  ASSERT_OK(deployment_.SubmitWorkload(workload_, 1, 20, true));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(30)));
  ASSERT_TRUE(testing::WaitFor([&] { return Jobs().jobs_size() == 0; }, std::chrono::seconds(10)))
      << Jobs().jobs_size() << " jobs left";
  auto before = deployment_.ReplicaStatus(kSite);
  ASSERT_OK(before.status());
  EXPECT_GT(before->last_received_sequence(), 20u);
  ExpectStatusCountsFinishedJobsAsTheStore();  // none left to count
  // The stream position outlives the pruned inbox: a restarted replica goes on from there.
  ASSERT_OK(deployment_.StartReplica(kSite, {"--job-retention-s", "0"}));
  ASSERT_OK(deployment_.SubmitWorkload(workload_, 21, 40, false));
  ASSERT_TRUE(deployment_.WaitUntilApplied(std::chrono::seconds(30)));
  ExpectRowsEqualMaster();
}

TEST_F(QueuesTest, BrokenQueueConfigurationStopsStartUpNamingTheKey) {
  const std::string replica = testing::Executable("ferry-replica");
  auto start = [&](const std::string& args) {
    const std::string err = dir_.File("broken.err");
    int code = std::system((replica + " --site SITE-A --master tcp://127.0.0.1:1 --db " +
                            dir_.File("broken.db") + " " + args + " 2> " + err + " > /dev/null")
                               .c_str());
    return std::make_pair(WEXITSTATUS(code), testing::ReadFile(err));
  };
  auto [code, err] = start("--queue REPLICATION.processes=zero");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(err, HasSubstr("queue.REPLICATION.processes: 'zero' is not a number from 1 to 64"));

  {
    std::ofstream ini(dir_.File("broken.ini"));
    ini << "[queue.FAST]\nordering = quick\n";
  }
  std::tie(code, err) = start("--config " + dir_.File("broken.ini"));
  EXPECT_EQ(code, 2);
  EXPECT_THAT(err, HasSubstr("queue.FAST.ordering: 'quick' is not strict, dependency or none"));

  {
    std::ofstream ini(dir_.File("typo.ini"));
    ini << "proceses = 2\n";
  }
  std::tie(code, err) = start("--config " + dir_.File("typo.ini"));
  EXPECT_EQ(code, 2);
  EXPECT_THAT(err, HasSubstr("unknown option 'proceses'"));
}

// ferry-bench pointed at a deployment that runs already: one run, rows checked at the end,
// and a deployment that is not empty any more refused, naming why.
TEST_F(QueuesTest, FerryBenchMeasuresARunningDeployment) {
  ASSERT_OK(deployment_.StartReplica(kSite));
  auto run = [&](const std::string& args) {
    const std::string out = dir_.File("bench.out");
    const std::string command =
        testing::Executable("ferry-bench") + " --master " + deployment_.submit_endpoint() +
        " --master-db " + deployment_.master_db() + " --site " + kSite + " --replica " +
        deployment_.control_endpoint(kSite) + " --replica-db " + deployment_.db(kSite) +
        " --master-config " + testing::DeployedMasterConfiguration() + " --dir " +
        dir_.File("bench") + " " + args + " > " + out + " 2>&1";
    int code = std::system(command.c_str());
    return std::make_pair(WEXITSTATUS(code), testing::ReadFile(out));
  };
  auto [code, out] = run("--runs e2e-1 -T 300 --json");
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("\"e2e-1\":"));
  EXPECT_THAT(out, HasSubstr("\"ferry-replica\":"));  // memory, by the pid its status gives
  // CPU per transaction, by the same pids, and the bench's own (its client)
  EXPECT_THAT(out, HasSubstr("\"cpu_us_per_tx\":{\"e2e-1\":{\"ferry-bench\":"));
  EXPECT_THAT(out, HasSubstr("\"ferry-worker\":"));
  EXPECT_THAT(out, HasSubstr("\"master_sync_poll_cpu_us_per_tx\":{\"e2e-1\":"));
  EXPECT_THAT(out, HasSubstr("\"converged\":true"));
  ExpectRowsEqualMaster();

  std::tie(code, out) = run("--runs e2e-1 -T 300");
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("transactions already: the workload's keys are fixed"));
  std::tie(code, out) = run("--runs e2e-1,latency");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("name one run with --runs"));
  std::tie(code, out) = run("--runs e2e-1 --placement shared");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("--placement places the processes ferry-bench starts"));
}

// The CPUs each thread of process `pid` may run on (/proc/PID/task/*/status), one list a thread.
std::vector<std::string> ThreadCpus(int pid) {
  std::vector<std::string> lists;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream status(task.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("Cpus_allowed_list:", 0) == 0) {
        lists.push_back(line.substr(line.find_first_not_of(" \t", 18)));
      }
    }
  }
  return lists;
}

// --cpus: every thread of the master (its poll loop, ZeroMQ's threads, the commit log's fsync
// thread) runs only on the CPUs it is given, and so does every thread of the replica and of
// the workers the replica starts. (With one CPU here both lists are that CPU.)
TEST(ExecutablesTest, NodesAndTheWorkersTheyStartRunOnlyOnTheirCpus) {
  const std::vector<int> cpus = AllowedCpus();
  ASSERT_FALSE(cpus.empty());
  const std::string first = std::to_string(cpus.front()), last = std::to_string(cpus.back());
  TempDir dir;
  Deployment deployment(dir);
  deployment.PlaceOnCpus(first, last);
  ASSERT_OK(deployment.StartMaster());
  ASSERT_OK(deployment.StartReplica(kSite));
  auto master = deployment.MasterStatus();
  ASSERT_OK(master.status());
  const std::vector<std::string> master_threads = ThreadCpus(master->pid());
  EXPECT_GE(master_threads.size(), 4u);  // loop, ZeroMQ's I/O and reaper threads, fsync
  for (const auto& list : master_threads) EXPECT_EQ(list, first);
  StatusOr<wire::ReplicaStatus> replica = Status::Unavailable("not asked yet");
  // The replica's workers, started at once, register when they have connected.
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        replica = deployment.ReplicaStatus(kSite);
        return replica.ok() && replica->workers_size() == 2;
      },
      std::chrono::seconds(10)));
  ASSERT_OK(replica.status());
  std::vector<int> pids = {static_cast<int>(replica->pid())};
  for (const auto& worker : replica->workers()) pids.push_back(static_cast<int>(worker.pid()));
  EXPECT_EQ(pids.size(), 3u);  // the replica, and the workers of REPLICATION and DEFAULT
  for (int pid : pids) {
    const std::vector<std::string> threads = ThreadCpus(pid);
    EXPECT_GE(threads.size(), 3u) << pid;
    for (const auto& list : threads) EXPECT_EQ(list, last) << pid;
  }
}

// ferry-bench's default placement puts the master and its own clients on one half of the CPUs
// (the half whose CPU handles the disk's interrupts, when the machine says which) and the
// replica site on the other; "shared" leaves every process on any; kept to one CPU, it cannot
// split, runs every process there and says why.
TEST(ExecutablesTest, FerryBenchPlacesTheSitesOnCpusOfTheirOwn) {
  const std::vector<int> cpus = AllowedCpus();
  ASSERT_FALSE(cpus.empty());
  const std::string all = FormatCpuList(cpus);
  TempDir dir;
  // `prefix` runs before ferry-bench (taskset), `args` after it.
  auto bench = [&](const std::string& prefix, const std::string& args) {
    const std::string out = dir.File("bench.out");
    const std::string command = prefix + testing::Executable("ferry-bench") +
                                " -T 200 --runs e2e-1 --dir " + dir.File("bench") + " " + args +
                                " > " + out + " 2>&1";
    int code = std::system(command.c_str());
    EXPECT_EQ(WEXITSTATUS(code), 0) << testing::ReadFile(out);
    return testing::ReadFile(out);
  };

  const std::string one = std::to_string(cpus.front());
  const std::string alone = bench("taskset -c " + one + " ", "");
  EXPECT_THAT(alone,
              HasSubstr("placement                                      shared: every "
                        "process on any CPU (seen: bench " +
                        one + ", master " + one + ", replica " + one + ", worker " + one + ")"));
  EXPECT_THAT(alone, HasSubstr("! placement split needs two CPUs, and this process may run on " +
                               one + " only: every process ran on any CPU"));

  EXPECT_THAT(bench("", "--json --placement shared"),
              HasSubstr("\"placement\":{\"mode\":\"shared\",\"master_cpus\":\"\","
                        "\"replica_cpus\":\"\",\"disk_interrupt_cpu\":null,\"seen\":{"
                        "\"ferry-bench\":\"" +
                        all + "\",\"ferry-master\":\"" + all + "\",\"ferry-replica\":\"" + all +
                        "\",\"ferry-worker\":\"" + all + "\"}}"));

  if (cpus.size() < 2) return;  // split needs two CPUs: the case above
  const auto half = cpus.begin() + static_cast<std::ptrdiff_t>(cpus.size() / 2);
  const std::string first = FormatCpuList({cpus.begin(), half});
  const std::string second = FormatCpuList({half, cpus.end()});
  const std::string split = bench("", "--json");
  std::smatch placed;
  ASSERT_TRUE(std::regex_search(
      split, placed,
      std::regex("\"placement\":\\{\"mode\":\"split\",\"master_cpus\":\"([0-9,-]+)\","
                 "\"replica_cpus\":\"([0-9,-]+)\",\"disk_interrupt_cpu\":(null|[0-9]+),")))
      << split;
  const std::string master = placed[1], replica = placed[2];
  EXPECT_TRUE((master == first && replica == second) || (master == second && replica == first))
      << master << " | " << replica;
  if (placed[3] != "null") {
    auto master_cpus = ParseCpuList(master);
    ASSERT_OK(master_cpus.status());
    EXPECT_EQ(std::count(master_cpus->begin(), master_cpus->end(), std::stoi(placed[3])), 1);
  }
  EXPECT_THAT(split, HasSubstr("\"seen\":{\"ferry-bench\":\"" + master + "\",\"ferry-master\":\"" +
                               master + "\",\"ferry-replica\":\"" + replica +
                               "\",\"ferry-worker\":\"" + replica + "\"}}"));
}

// The scripts check their arguments before they need anything installed (PostgreSQL, apt).
TEST(ExecutablesTest, ScriptsRefuseBadArgumentsNamingThem) {
  TempDir dir;
  auto run = [&](const std::string& script, const std::string& args) {
    const std::string out = dir.File("out");
    const std::string command =
        "bash " + std::string(FERRY_SOURCE_DIR) + "/" + script + " " + args + " > " + out + " 2>&1";
    int code = std::system(command.c_str());
    return std::make_pair(WEXITSTATUS(code), testing::ReadFile(out));
  };
  struct Case {
    std::string script, args;
    int code;
    std::string says;
  };
  const std::string postgres = "bench/postgres/run.sh";
  const std::vector<Case> cases = {
      {postgres, "--help", 0, "Usage: bench/postgres/run.sh [-T N]"},
      {postgres, "-T 0", 1, "-T wants a positive integer, not '0'"},
      {postgres, "--runs e2e-1,e2e-n", 1, "unknown run 'e2e-n' (e2e-1, catch-up, latency)"},
      {postgres, "--subscriber-synchronous-commit maybe", 1,
       "--subscriber-synchronous-commit: on or off"},
      {postgres, "--placement mixed", 1, "--placement: split or shared, not 'mixed'"},
      {postgres, "--fast", 1, "unknown argument: --fast"},
      {"scripts/setup.sh", "--with-oracle", 2,
       "setup: unknown option '--with-oracle' (--with-postgres)"},
  };
  for (const Case& c : cases) {
    auto [code, out] = run(c.script, c.args);
    EXPECT_EQ(code, c.code) << c.script << " " << c.args;
    EXPECT_THAT(out, HasSubstr(c.says)) << c.script << " " << c.args;
  }
}

TEST(ExecutablesTest, BadArgumentsAreRefusedNamingThem) {
  TempDir dir;
  auto run = [&](const std::string& command) {
    const std::string out = dir.File("out");
    int code = std::system((command + " > " + out + " 2>&1").c_str());
    return std::make_pair(WEXITSTATUS(code), testing::ReadFile(out));
  };
  auto [code, out] =
      run(testing::Executable("ferry-worker") + " --replica tcp://127.0.0.1:1 --db " +
          dir.File("x.db") + " --apply-delay Customer=soon");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out,
              HasSubstr("--apply-delay 'Customer=soon': 'soon' is not a number of milliseconds"));
  std::tie(code, out) = run(testing::Executable("ferry-bench") + " --runs e2e-1,fastest");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("unknown run 'fastest'"));
  std::tie(code, out) = run(testing::Executable("ferry-bench") + " --master tcp://127.0.0.1:1");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("needs all of --master, --master-db, --site, --replica"));
  std::tie(code, out) = run(testing::Executable("ferry-bench") + " --placement mixed");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("--placement is split or shared, not 'mixed'"));
  std::tie(code, out) =
      run(testing::Executable("ferry-master") + " --master-config " +
          testing::DeployedMasterConfiguration() + " --db " + dir.File("m.db") + " --cpus 1000");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("ferry-master: --cpus: '1000' names CPUs this process may not run "
                             "on: 1000 (this machine's online CPUs: "));
  std::tie(code, out) =
      run(testing::Executable("ferry-replica") + " --site SITE-A --master tcp://127.0.0.1:1 --db " +
          dir.File("r.db") + " --cpus 0-");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("ferry-replica: --cpus: '0-' is not a CPU list (like 0, 0-3 or "
                             "0,2-3): '0-' is not a CPU number below 1024 or a range of them"));
  std::tie(code, out) = run(testing::Executable("ferry-bench") + " -T 0");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("--transactions, --clients, --latency-rate and --latency-seconds "
                             "must be positive"));
  std::tie(code, out) = run(testing::Executable("ferry-master") + " --master-config " +
                            testing::DeployedMasterConfiguration() + " --db " + dir.File("m.db") +
                            " --outbox-quota 0");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out,
              HasSubstr("--heartbeat-ms, --stream-window and --outbox-quota must be positive"));
  std::tie(code, out) =
      run(testing::Executable("ferry-replica") + " --site SITE-A --master tcp://127.0.0.1:1 --db " +
          dir.File("r.db") + " --sync-interval-ms -1");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("--job-retention-s and --sync-interval-ms not negative"));
  std::tie(code, out) =
      run(testing::Executable("ferry-replica") + " --site SITE-A --master tcp://127.0.0.1:1 --db " +
          dir.File("r.db") + " --db-lock-timeout-ms 0");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("--master-timeout-ms and --db-lock-timeout-ms must be positive"));
  std::tie(code, out) = run(testing::Executable("ferry-master") + " --master-config " +
                            dir.File("missing.txtpb") + " --db " + dir.File("m.db"));
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("cannot read master configuration " + dir.File("missing.txtpb")));
  {
    std::ofstream ini(dir.File("master.ini"));
    ini << "hearbeat-ms = 100\n";
  }
  std::tie(code, out) =
      run(testing::Executable("ferry-master") + " --config " + dir.File("master.ini") +
          " --master-config " + testing::DeployedMasterConfiguration());
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr(dir.File("master.ini") + ": unknown option 'hearbeat-ms'\n(see "
                                                      "ferry-master --help)"));
}

}  // namespace
}  // namespace ferry
