// The replica's SQLite store: storing a contiguous stream of replication messages as jobs (one
// per message, configurations included), applying a job whole or not at all (a configuration
// job installs the LU tables, a message job its LU changes), applying a batch of jobs in one
// transaction that stops at the first failing job, the attempts recorded for each job (the
// node numbers them; the store keeps the highest), the operators' job actions and queue
// settings, listing and pruning jobs, sessions, and reopening.
#include "replica/replica_store.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/catalog.h"
#include "common/lu_tables.h"
#include "common/sqlite.h"
#include "test_util.h"

namespace ferry {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kMessageQueue[] = "REPLICATION";
constexpr char kConfigurationQueue[] = "DEFAULT";
constexpr char kSession[] = "R7";
constexpr int kPid = 4242;
constexpr int64_t kNowUs = 1'700'000'000'000'000;

// Receive_Configuration to kConfigurationQueue, everything else to kMessageQueue.
std::string QueueFor(wire::MessageClass message_class) {
  return message_class == wire::RECEIVE_CONFIGURATION ? kConfigurationQueue : kMessageQueue;
}

using testing::Change;

wire::LuChange NewCompany(const std::string& id) {
  return Change("Company", wire::NEW, {{"company_id", id}}, {{"name", "Company " + id}});
}

wire::LuChange NewSite(const std::string& id, const std::string& company) {
  return Change("Site", wire::NEW, {{"site_id", id}}, {{"company_id", company}});
}

wire::LuChange NewCustomer(const std::string& id, const std::string& company) {
  return Change("Customer", wire::NEW, {{"customer_id", id}},
                {{"company_id", company}, {"credit_limit", "5000"}});
}

// A clock that moves on 10 µs at every reading and calls `watch` first, e.g. to look at the
// database from another connection while the store is inside its transaction.
class WatchingClock : public Clock {
 public:
  WatchingClock(int64_t start_us, std::function<void()> watch)
      : now_us_(start_us), watch_(std::move(watch)) {}
  int64_t NowMicros() const override {
    watch_();
    now_us_ += 10;
    return now_us_;
  }
  std::chrono::steady_clock::time_point Steady() const override {
    return std::chrono::steady_clock::time_point(std::chrono::microseconds(now_us_));
  }
  // The last reading.
  int64_t last_us() const { return now_us_; }

 private:
  mutable int64_t now_us_;
  std::function<void()> watch_;
};

bool SameConfiguration(const config::MasterConfiguration& a, const config::MasterConfiguration& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

class ReplicaStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto catalog = Catalog::Load(testing::DeployedMasterConfiguration());
    ASSERT_OK(catalog.status());
    catalog_ = *catalog;
    path_ = dir_.File("replica.db");
    Reopen();
  }

  void Reopen() {
    store_.reset();
    auto store = OpenSqliteReplicaStore(path_, {.create = true});
    ASSERT_OK(store.status());
    store_ = std::move(store).value();
  }

  wire::ReplicationMessage Configuration(uint64_t sequence) const {
    return Configuration(sequence, catalog_->proto());
  }

  static wire::ReplicationMessage Configuration(uint64_t sequence,
                                                const config::MasterConfiguration& proto) {
    wire::ReplicationMessage message;
    message.set_site("SITE-A");
    message.set_sequence(sequence);
    message.set_message_class(wire::RECEIVE_CONFIGURATION);
    message.set_origin_site("MASTER");
    *message.mutable_configuration() = proto;
    return message;
  }

  static wire::ReplicationMessage Changes(uint64_t sequence, std::vector<wire::LuChange> changes) {
    wire::ReplicationMessage message;
    message.set_site("SITE-A");
    message.set_sequence(sequence);
    message.set_message_class(wire::RECEIVE_MESSAGE);
    message.set_origin_site("MASTER");
    message.set_transaction_id(sequence);
    message.set_commit_time_us(kNowUs);
    for (auto& change : changes) *message.add_changes() = std::move(change);
    return message;
  }

  // `messages` as the stream brings them.
  static std::vector<ReceivedMessage> Received(
      const std::vector<wire::ReplicationMessage>& messages) {
    std::vector<ReceivedMessage> received;
    for (const auto& message : messages) received.push_back(AsReceived(message));
    return received;
  }

  // Stores `messages` and returns the jobs posted; fails the test if storing fails.
  std::vector<Job> Store(const std::vector<wire::ReplicationMessage>& messages) {
    auto jobs = store_->StoreMessages(Received(messages), QueueFor, kNowUs);
    EXPECT_OK(jobs.status());
    return jobs.ok() ? *jobs : std::vector<Job>();
  }

  // The configuration (sequence 1) then one message per change, sequences 2, 3, ...; keeps the
  // configuration's job in configuration_job_ and returns the jobs of the changes in order.
  std::vector<Job> StoreConfigurationAnd(std::vector<wire::LuChange> changes) {
    std::vector<wire::ReplicationMessage> messages = {Configuration(1)};
    for (auto& change : changes) {
      messages.push_back(Changes(messages.size() + 1, {std::move(change)}));
    }
    std::vector<Job> jobs = Store(messages);
    if (jobs.empty()) return {};
    configuration_job_ = jobs.front();
    return std::vector<Job>(jobs.begin() + 1, jobs.end());
  }

  // As StoreConfigurationAnd, with the configuration's job applied.
  std::vector<Job> InstallConfigurationAnd(std::vector<wire::LuChange> changes) {
    std::vector<Job> jobs = StoreConfigurationAnd(std::move(changes));
    EXPECT_OK(Apply(configuration_job_.id));
    return jobs;
  }

  static ReplicaStore::Attempt MakeAttempt(uint64_t job_id, int attempt = 1,
                                           int64_t started_at_us = kNowUs) {
    ReplicaStore::Attempt a;
    a.job_id = job_id;
    a.attempt = attempt;
    a.session_id = kSession;
    a.pid = kPid;
    a.started_at_us = started_at_us;
    return a;
  }

  // The next attempt's number at `job_id`: 1, 2, 3 ..., as the replica node numbers them.
  int NextAttempt(uint64_t job_id) { return ++attempts_[job_id]; }

  // One attempt at `job_id` by a worker that took it at `now_us`.
  Status Apply(uint64_t job_id, int attempt = 1, int64_t now_us = kNowUs) {
    return store_->ApplyJob(MakeAttempt(job_id, attempt, now_us), testing::FixedClock(now_us));
  }

  // Every row of `lu`, read through a connection of our own.
  std::vector<Row> Rows(const std::string& lu) {
    auto db = sqlite::Db::Open(path_, {.create = false});
    EXPECT_OK(db.status());
    if (!db.ok()) return {};
    LuTables tables(*db, catalog_);
    auto rows = tables.ReadAll(*catalog_->FindLu(lu));
    EXPECT_OK(rows.status());
    return rows.ok() ? *rows : std::vector<Row>();
  }

  // The first column of every row `sql` returns, as text, through a connection of our own.
  std::vector<std::string> Query(const std::string& sql) {
    auto db = sqlite::Db::Open(path_, {.create = false});
    EXPECT_OK(db.status());
    if (!db.ok()) return {};
    auto statement = db->Prepare(sql);
    EXPECT_OK(statement.status());
    if (!statement.ok()) return {};
    std::vector<std::string> out;
    while (true) {
      auto step = statement->Step();
      EXPECT_OK(step.status());
      if (!step.ok() || *step == sqlite::Statement::StepResult::kDone) break;
      out.push_back(statement->ColumnText(0));
    }
    return out;
  }

  std::vector<std::string> LuTableNames() {
    return Query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'lu\\_%' ESCAPE '\\' "
        "ORDER BY name");
  }

  std::map<uint64_t, JobState> Unfinished() {
    std::map<uint64_t, JobState> out;
    for (const Job& job : UnfinishedJobs()) out[job.id] = job.state;
    return out;
  }

  std::map<uint64_t, Job> UnfinishedById() {
    std::map<uint64_t, Job> out;
    for (Job& job : UnfinishedJobs()) out[job.id] = std::move(job);
    return out;
  }

  std::vector<Job> UnfinishedJobs() {
    auto jobs = store_->UnfinishedJobs();
    EXPECT_OK(jobs.status());
    return jobs.ok() ? *jobs : std::vector<Job>();
  }

  std::map<std::string, std::map<std::string, uint64_t>> Counts() {
    auto counts = store_->CountJobs();
    EXPECT_OK(counts.status());
    return counts.ok() ? *counts : std::map<std::string, std::map<std::string, uint64_t>>();
  }

  std::vector<wire::JobRecord> List(const std::string& queue = "", const std::string& state = "",
                                    uint64_t job_id = 0, size_t limit = 100) {
    auto records = store_->ListJobs(queue, state, job_id, limit);
    EXPECT_OK(records.status());
    return records.ok() ? *records : std::vector<wire::JobRecord>();
  }

  // The record of `job_id`; an empty record (job_id 0) if there is none.
  wire::JobRecord Record(uint64_t job_id) {
    std::vector<wire::JobRecord> records = List("", "", job_id);
    EXPECT_EQ(records.size(), 1u) << "job " << job_id;
    return records.size() == 1 ? records[0] : wire::JobRecord();
  }

  static std::vector<uint64_t> Sequences(const std::vector<wire::JobRecord>& records) {
    std::vector<uint64_t> out;
    for (const auto& record : records) out.push_back(record.sequence());
    return out;
  }

  static std::vector<std::string> Outcomes(const wire::JobRecord& record) {
    std::vector<std::string> out;
    for (const auto& attempt : record.attempt_log()) out.push_back(attempt.outcome());
    return out;
  }

  testing::TempDir dir_;
  std::string path_;
  std::shared_ptr<const Catalog> catalog_;
  std::unique_ptr<ReplicaStore> store_;
  Job configuration_job_;             // set by StoreConfigurationAnd
  std::map<uint64_t, int> attempts_;  // by job id: the last attempt NextAttempt numbered
};

// ---- Storing messages.

TEST_F(ReplicaStoreTest, StoreMessagesPostsAJobForEveryMessageOnItsClassQueue) {
  std::vector<wire::MessageClass> asked;
  auto jobs = store_->StoreMessages(
      Received(
          {Configuration(1), Changes(2, {NewCompany("C1")}), Changes(3, {NewSite("C1-S1", "C1")})}),
      [&asked](wire::MessageClass message_class) {
        asked.push_back(message_class);
        return QueueFor(message_class);
      },
      kNowUs);

  ASSERT_OK(jobs.status());
  EXPECT_THAT(asked, ElementsAre(wire::RECEIVE_CONFIGURATION, wire::RECEIVE_MESSAGE,
                                 wire::RECEIVE_MESSAGE));
  ASSERT_EQ(jobs->size(), 3u);
  EXPECT_EQ((*jobs)[0].sequence, 1u);
  EXPECT_EQ((*jobs)[0].queue, kConfigurationQueue);
  EXPECT_EQ((*jobs)[1].sequence, 2u);
  EXPECT_EQ((*jobs)[2].sequence, 3u);
  for (size_t i = 1; i < jobs->size(); ++i) EXPECT_EQ((*jobs)[i].queue, kMessageQueue);
  // The inbox holds each message as it arrived.
  auto configuration = store_->ReadJobMessage((*jobs)[0].id);
  ASSERT_OK(configuration.status());
  EXPECT_EQ(configuration->message_class(), wire::RECEIVE_CONFIGURATION);
  EXPECT_TRUE(SameConfiguration(configuration->configuration(), catalog_->proto()));
  auto site = store_->ReadJobMessage((*jobs)[2].id);
  ASSERT_OK(site.status());
  EXPECT_EQ(site->sequence(), 3u);
  ASSERT_EQ(site->changes_size(), 1);
  EXPECT_EQ(site->changes(0).lu(), "Site");
  for (const Job& job : *jobs) {
    EXPECT_EQ(job.state, JobState::kPosted);
    EXPECT_EQ(job.attempts, 0);
    EXPECT_EQ(job.released_attempts, 0);
  }
  EXPECT_NE((*jobs)[0].id, (*jobs)[1].id);
  EXPECT_NE((*jobs)[1].id, (*jobs)[2].id);
  EXPECT_NE((*jobs)[0].id, (*jobs)[2].id);
  // Nothing is applied on storing: the configuration's job waits on its queue too.
  std::map<std::string, std::map<std::string, uint64_t>> expected = {
      {kConfigurationQueue, {{"Posted", 1}}},
      {kMessageQueue, {{"Posted", 2}}},
  };
  EXPECT_EQ(Counts(), expected);
  EXPECT_TRUE(LuTableNames().empty());
}

TEST_F(ReplicaStoreTest, UnfinishedJobsCarryTheirMessagesBySequence) {
  std::vector<Job> jobs = StoreConfigurationAnd({NewCompany("C1"), NewSite("C1-S1", "C1")});
  ASSERT_EQ(jobs.size(), 2u);

  std::vector<Job> unfinished = UnfinishedJobs();

  ASSERT_EQ(unfinished.size(), 3u);
  EXPECT_EQ(unfinished[0].id, configuration_job_.id);
  EXPECT_EQ(unfinished[0].queue, kConfigurationQueue);
  EXPECT_EQ(unfinished[0].message.message_class(), wire::RECEIVE_CONFIGURATION);
  EXPECT_EQ(unfinished[1].id, jobs[0].id);
  EXPECT_EQ(unfinished[2].id, jobs[1].id);
  EXPECT_EQ(unfinished[2].sequence, 3u);
  EXPECT_EQ(unfinished[2].queue, kMessageQueue);
  ASSERT_EQ(unfinished[2].message.changes_size(), 1);
  EXPECT_EQ(unfinished[2].message.changes(0).keys().at("site_id"), "C1-S1");
}

TEST_F(ReplicaStoreTest, LastReceivedSequenceAdvances) {
  EXPECT_EQ(store_->LastReceivedSequence(), 0u);
  Store({Configuration(1)});
  EXPECT_EQ(store_->LastReceivedSequence(), 1u);
  Store({Changes(2, {NewCompany("C1")}), Changes(3, {NewCompany("C2")})});
  EXPECT_EQ(store_->LastReceivedSequence(), 3u);
}

// Storing writes no counter (the inbox says the newest sequence), so a store writes fewer
// pages; a sync writes it, and it survives a reopen either way.
TEST_F(ReplicaStoreTest, TheNewestSequenceSurvivesAReopenWithoutASync) {
  Store({Configuration(1)});
  std::vector<Job> jobs = Store({Changes(2, {NewCompany("C1")}), Changes(3, {NewCompany("C2")})});
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_THAT(Query("SELECT key FROM ferry_meta WHERE key = 'last_received_sequence'"),
              ElementsAre())
      << "a store wrote a counter";
  Reopen();
  EXPECT_EQ(store_->LastReceivedSequence(), 3u);
  std::vector<Job> next = Store({Changes(4, {NewSite("C1-S1", "C1")})});
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].id, 4u);

  ASSERT_OK(store_->Sync());
  EXPECT_THAT(Query("SELECT key || '=' || value FROM ferry_meta WHERE key = "
                    "'last_received_sequence'"),
              ElementsAre("last_received_sequence=4"));
}

// A job's id is its message's sequence, so whoever stores the message first (the node, or the
// worker it was handed to) posts the same job, and no id is used twice, even when pruning took
// every job: no sequence is received twice. The newest sequence is written before the rows
// that say it go.
TEST_F(ReplicaStoreTest, AJobsIdIsItsSequenceAndNeverUsedTwice) {
  std::vector<Job> jobs = StoreConfigurationAnd({NewCompany("C1")});
  EXPECT_EQ(configuration_job_.id, 1u);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].id, 2u);
  ASSERT_OK(Apply(configuration_job_.id, 1, kNowUs + 10));
  ASSERT_OK(Apply(jobs[0].id, 1, kNowUs + 10));
  auto pruned = store_->PruneFinished(kNowUs + 20, nullptr);
  ASSERT_OK(pruned.status());
  ASSERT_EQ(*pruned, 2u);
  ASSERT_THAT(Query("SELECT COUNT(*) FROM ferry_jobs"), ElementsAre("0"));
  ASSERT_THAT(Query("SELECT COUNT(*) FROM ferry_inbox"), ElementsAre("0"));

  Reopen();
  EXPECT_EQ(store_->LastReceivedSequence(), 2u);
  std::vector<Job> next = Store({Changes(3, {NewCompany("C2")})});
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].id, 3u);
}

// Jobs stored before job ids were sequences keep their ids; those are never above their
// sequences (one id a message, counted from 1), so a new job's id is free.
TEST_F(ReplicaStoreTest, AJobFromBeforeKeepsItsIdAndTheNextTakesItsSequence) {
  store_.reset();
  {
    auto db = sqlite::Db::Open(path_, {.create = false});
    ASSERT_OK(db.status());
    std::string bytes;
    ASSERT_TRUE(Changes(5, {NewCompany("C1")}).SerializeToString(&bytes));
    auto insert = db->Prepare("INSERT INTO ferry_inbox VALUES (5, 1, 5, 0, 0, ?)");
    ASSERT_OK(insert.status());
    ASSERT_OK(insert->BindBlob(1, bytes).Run());
    ASSERT_OK(db->Exec(
        "INSERT INTO ferry_jobs (job_id, sequence, queue, message_class, state, posted_at_us) "
        "VALUES (2, 5, 'REPLICATION', 1, 'Posted', 0);"
        "INSERT INTO ferry_meta VALUES ('last_received_sequence', '5');"));
  }
  Reopen();
  EXPECT_EQ(store_->LastReceivedSequence(), 5u);
  auto unfinished = store_->UnfinishedJobs();
  ASSERT_OK(unfinished.status());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ((*unfinished)[0].id, 2u);
  EXPECT_EQ((*unfinished)[0].sequence, 5u);
  std::vector<Job> next = Store({Changes(6, {NewCompany("C2")})});
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].id, 6u);
}

// Only unfinished jobs are indexed by their state, so a job's Ready mark takes it out of one
// index page rather than moving it between two; a database from before loses its index of
// every job by state when the replica opens it.
TEST_F(ReplicaStoreTest, OnlyUnfinishedJobsAreIndexedByState) {
  const std::string indexes =
      "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ferry_jobs' AND sql "
      "IS NOT NULL ORDER BY name";
  EXPECT_THAT(Query(indexes), ElementsAre("ferry_jobs_unfinished"));
  std::vector<Job> jobs = StoreConfigurationAnd({NewCompany("C1"), NewCompany("C2")});
  ASSERT_OK(Apply(configuration_job_.id));
  ASSERT_OK(Apply(jobs[0].id));
  EXPECT_THAT(Query("SELECT sequence FROM ferry_jobs INDEXED BY ferry_jobs_unfinished "
                    "WHERE state NOT IN ('Ready', 'Skipped') ORDER BY sequence"),
              ElementsAre(std::to_string(jobs[1].sequence)));

  store_.reset();
  {
    auto db = sqlite::Db::Open(path_, {.create = false});
    ASSERT_OK(db.status());
    ASSERT_OK(db->Exec("CREATE INDEX ferry_jobs_state ON ferry_jobs (state, sequence)"));
  }
  Reopen();
  EXPECT_THAT(Query(indexes), ElementsAre("ferry_jobs_unfinished"));
  auto unfinished = store_->UnfinishedJobs();
  ASSERT_OK(unfinished.status());
  EXPECT_EQ(unfinished->size(), 1u);
}

TEST_F(ReplicaStoreTest, AttemptsAreOneBTreeAndARowidTableFromBeforeWorksTheSame) {
  auto indexes = [&] {
    return Query(
        "SELECT COUNT(*) FROM sqlite_master WHERE tbl_name = 'ferry_job_attempts' AND "
        "type = 'index'");
  };
  // Applies the configuration and one company: one Ready attempt each is recorded.
  auto expect_attempts_recorded = [&] {
    std::vector<Job> jobs = StoreConfigurationAnd({NewCompany("C1")});
    ASSERT_OK(Apply(configuration_job_.id));
    ASSERT_OK(Apply(jobs[0].id));
    EXPECT_THAT(Query("SELECT job_id || '|' || attempt || '|' || outcome FROM "
                      "ferry_job_attempts ORDER BY job_id"),
                ElementsAre(std::to_string(configuration_job_.id) + "|1|Ready",
                            std::to_string(jobs[0].id) + "|1|Ready"));
  };
  EXPECT_THAT(indexes(), ElementsAre("0")) << "the key kept in an index beside the table";
  expect_attempts_recorded();

  // A database from before has a rowid table, with its key's index.
  store_.reset();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_ + suffix);
  {
    auto db = sqlite::Db::Open(path_, {});
    ASSERT_OK(db.status());
    ASSERT_OK(db->Exec(
        "CREATE TABLE ferry_job_attempts (job_id INTEGER NOT NULL, attempt INTEGER NOT NULL, "
        "session TEXT NOT NULL, pid INTEGER NOT NULL, started_at_us INTEGER NOT NULL, "
        "finished_at_us INTEGER NOT NULL, outcome TEXT NOT NULL, error TEXT, "
        "PRIMARY KEY (job_id, attempt))"));
  }
  Reopen();
  EXPECT_THAT(indexes(), ElementsAre("1"));
  expect_attempts_recorded();
}

TEST_F(ReplicaStoreTest, NonContiguousBatchIsRejectedAndStoresNothing) {
  std::vector<Job> configuration = Store({Configuration(1)});
  ASSERT_EQ(configuration.size(), 1u);

  auto jobs = store_->StoreMessages(
      Received({Changes(2, {NewCompany("C1")}), Changes(4, {NewCompany("C2")})}), QueueFor, kNowUs);

  ASSERT_FALSE(jobs.ok());
  EXPECT_THAT(jobs.status().message(), HasSubstr("4"));
  EXPECT_EQ(store_->LastReceivedSequence(), 1u);
  std::map<uint64_t, JobState> unfinished = Unfinished();
  ASSERT_EQ(unfinished.size(), 1u);  // the configuration's job only
  EXPECT_EQ(unfinished.begin()->first, configuration[0].id);
  EXPECT_EQ(Counts()[kMessageQueue].size(), 0u);
  // Sequence 2 was not kept: it can be stored now.
  EXPECT_EQ(Store({Changes(2, {NewCompany("C1")})}).size(), 1u);
  EXPECT_EQ(store_->LastReceivedSequence(), 2u);
}

TEST_F(ReplicaStoreTest, BatchThatSkipsTheNextSequenceIsRejected) {
  Store({Configuration(1)});
  auto jobs = store_->StoreMessages(Received({Changes(3, {NewCompany("C1")})}), QueueFor, kNowUs);
  ASSERT_FALSE(jobs.ok());
  EXPECT_EQ(store_->LastReceivedSequence(), 1u);
  EXPECT_EQ(Counts()[kMessageQueue].size(), 0u);
}

TEST_F(ReplicaStoreTest, ReadJobMessageReturnsTheStoredMessage) {
  std::vector<Job> jobs = StoreConfigurationAnd({NewCompany("C1")});
  ASSERT_EQ(jobs.size(), 1u);

  auto configuration = store_->ReadJobMessage(configuration_job_.id);
  ASSERT_OK(configuration.status());
  EXPECT_EQ(configuration->sequence(), 1u);
  EXPECT_EQ(configuration->message_class(), wire::RECEIVE_CONFIGURATION);
  EXPECT_TRUE(SameConfiguration(configuration->configuration(), catalog_->proto()));

  auto message = store_->ReadJobMessage(jobs[0].id);
  ASSERT_OK(message.status());
  EXPECT_EQ(message->sequence(), 2u);
  EXPECT_EQ(message->message_class(), wire::RECEIVE_MESSAGE);
  ASSERT_EQ(message->changes_size(), 1);
  EXPECT_EQ(message->changes(0).keys().at("company_id"), "C1");

  auto missing = store_->ReadJobMessage(12345);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("12345"));
}

// ---- The configuration.

TEST_F(ReplicaStoreTest, NewestConfigurationOfAnEmptyStoreIsNone) {
  auto newest = store_->NewestConfiguration();
  ASSERT_OK(newest.status());
  EXPECT_FALSE(newest->has_value());
}

TEST_F(ReplicaStoreTest, NewestConfigurationIsTheNewestReceivedBeforeItIsApplied) {
  Store({Configuration(1)});

  auto first = store_->NewestConfiguration();
  ASSERT_OK(first.status());
  ASSERT_TRUE(first->has_value());
  EXPECT_TRUE(SameConfiguration(**first, catalog_->proto()));

  config::MasterConfiguration changed = catalog_->proto();
  ASSERT_GT(changed.replicas_size(), 0);
  changed.mutable_replicas(0)->add_sites("C1-S9");
  Store({Changes(2, {NewCompany("C1")}), Configuration(3, changed), Changes(4, {})});
  ASSERT_OK(Apply(UnfinishedJobs().front().id));  // the first configuration only

  auto newest = store_->NewestConfiguration();
  ASSERT_OK(newest.status());
  ASSERT_TRUE(newest->has_value());
  EXPECT_TRUE(SameConfiguration(**newest, changed)) << (*newest)->DebugString();
}

TEST_F(ReplicaStoreTest, MessageJobFailsUntilTheConfigurationIsApplied) {
  std::vector<Job> jobs = StoreConfigurationAnd({NewCompany("C1")});
  ASSERT_EQ(jobs.size(), 1u);

  Status applied = Apply(jobs[0].id);

  ASSERT_FALSE(applied.ok());
  EXPECT_THAT(applied.message(), HasSubstr("no master configuration has been applied"));
  EXPECT_THAT(applied.message(), HasSubstr("job " + std::to_string(jobs[0].id)));
  EXPECT_EQ(Unfinished()[jobs[0].id], JobState::kError);
  EXPECT_EQ(Unfinished()[configuration_job_.id], JobState::kPosted);

  ASSERT_OK(Apply(configuration_job_.id));
  ASSERT_OK(Apply(jobs[0].id, /*attempt=*/2));

  EXPECT_EQ(Rows("Company").size(), 1u);
  EXPECT_TRUE(Unfinished().empty());
  EXPECT_THAT(Outcomes(Record(jobs[0].id)), ElementsAre("Error", "Ready"));
}

TEST_F(ReplicaStoreTest, ApplyingTheConfigurationJobCreatesTheLuTables) {
  std::vector<Job> jobs = StoreConfigurationAnd({});
  EXPECT_TRUE(LuTableNames().empty());

  ASSERT_OK(Apply(configuration_job_.id));

  EXPECT_THAT(LuTableNames(), ElementsAre("lu_Company", "lu_Customer", "lu_CustomerOrder",
                                          "lu_CustomerOrderLine", "lu_Item", "lu_Site"));
  EXPECT_TRUE(Rows("Company").empty());
  EXPECT_TRUE(Unfinished().empty());
  EXPECT_EQ(Counts()[kConfigurationQueue]["Ready"], 1u);
  wire::JobRecord record = Record(configuration_job_.id);
  EXPECT_EQ(record.message_class(), "Receive_Configuration");
  EXPECT_THAT(Outcomes(record), ElementsAre("Ready"));
  auto newest = store_->NewestConfiguration();
  ASSERT_OK(newest.status());
  ASSERT_TRUE(newest->has_value());
  EXPECT_TRUE(SameConfiguration(**newest, catalog_->proto()));
}

// ---- Applying jobs.

TEST_F(ReplicaStoreTest, ApplyJobAppliesChangesAndMarksReady) {
  std::vector<Job> jobs = InstallConfigurationAnd({NewCompany("C1"), NewSite("C1-S1", "C1")});
  ASSERT_EQ(jobs.size(), 2u);

  ASSERT_OK(Apply(jobs[0].id));
  ASSERT_OK(Apply(jobs[1].id));

  std::vector<Row> companies = Rows("Company");
  ASSERT_EQ(companies.size(), 1u);
  EXPECT_EQ(companies[0].at("company_id"), "C1");
  EXPECT_EQ(companies[0].at("name"), "Company C1");
  std::vector<Row> sites = Rows("Site");
  ASSERT_EQ(sites.size(), 1u);
  EXPECT_EQ(sites[0].at("site_id"), "C1-S1");
  EXPECT_EQ(sites[0].at("company_id"), "C1");
  EXPECT_TRUE(Unfinished().empty());
  EXPECT_EQ(Counts()[kMessageQueue]["Ready"], 2u);
}

TEST_F(ReplicaStoreTest, ApplyJobOfAReadyJobRecordsAlreadyReadyAndChangesNothing) {
  std::vector<Job> jobs = InstallConfigurationAnd({NewCompany("C1")});
  ASSERT_EQ(jobs.size(), 1u);
  ASSERT_OK(Apply(jobs[0].id, /*attempt=*/1, kNowUs));

  // Applying the NEW again would fail on the existing row: it must not be applied.
  ASSERT_OK(Apply(jobs[0].id, /*attempt=*/2, kNowUs + 1000));

  EXPECT_EQ(Rows("Company").size(), 1u);
  EXPECT_TRUE(Unfinished().empty());
  EXPECT_EQ(Counts()[kMessageQueue]["Ready"], 1u);
  wire::JobRecord record = Record(jobs[0].id);
  EXPECT_EQ(record.state(), "Ready");
  ASSERT_EQ(record.attempt_log_size(), 2);
  EXPECT_EQ(record.attempt_log(0).outcome(), "Ready");
  EXPECT_EQ(record.attempt_log(1).attempt(), 2u);
  EXPECT_EQ(record.attempt_log(1).outcome(), "AlreadyReady");
  EXPECT_EQ(record.attempt_log(1).started_at_us(), kNowUs + 1000);
  EXPECT_EQ(record.attempt_log(1).error(), "");
}

// A worker whose replica was killed finishes its batch, and the restarted replica hands the
// same jobs out again under the same attempt numbers: neither attempt overwrites the other.
TEST_F(ReplicaStoreTest, AnAttemptNumberRecordedAlreadyIsNotOverwritten) {
  std::vector<Job> jobs = InstallConfigurationAnd({NewCompany("C1")});
  ASSERT_EQ(jobs.size(), 1u);
  ASSERT_OK(Apply(jobs[0].id, /*attempt=*/1, kNowUs));
  ASSERT_OK(Apply(jobs[0].id, /*attempt=*/1, kNowUs + 1000));

  wire::JobRecord record = Record(jobs[0].id);
  EXPECT_THAT(Outcomes(record), ElementsAre("Ready", "AlreadyReady"));
  ASSERT_EQ(record.attempt_log_size(), 2);
  EXPECT_EQ(record.attempt_log(0).attempt(), 1u);
  EXPECT_EQ(record.attempt_log(0).started_at_us(), kNowUs);
  EXPECT_EQ(record.attempt_log(1).attempt(), 2u);
  EXPECT_EQ(record.attempt_log(1).started_at_us(), kNowUs + 1000);
  EXPECT_EQ(Rows("Company").size(), 1u);
}

// A batch applies whole or, when anything in it fails (here the second job's attempt number,
// recorded already), again job by job: the first job's rows are written once, not twice.
TEST_F(ReplicaStoreTest, BatchWithAnAttemptNumberRecordedAlreadyAppliesEveryJobOnce) {
  std::vector<Job> jobs = InstallConfigurationAnd({NewCompany("C1"), NewCompany("C2")});
  ASSERT_EQ(jobs.size(), 2u);
  ASSERT_OK(Apply(jobs[1].id, /*attempt=*/1, kNowUs));

  std::vector<Status> results = store_->ApplyJobs(
      {MakeAttempt(jobs[0].id, 1, kNowUs + 100), MakeAttempt(jobs[1].id, 1, kNowUs + 100)},
      testing::FixedClock(kNowUs + 500));

  ASSERT_EQ(results.size(), 2u);
  EXPECT_OK(results[0]);
  EXPECT_OK(results[1]);
  EXPECT_EQ(Rows("Company").size(), 2u);
  EXPECT_THAT(Outcomes(Record(jobs[0].id)), ElementsAre("Ready"));
  wire::JobRecord second = Record(jobs[1].id);
  EXPECT_THAT(Outcomes(second), ElementsAre("Ready", "AlreadyReady"));
  EXPECT_EQ(second.attempt_log(1).attempt(), 2u);
}

TEST_F(ReplicaStoreTest, ApplyJobAppliesEveryChangeOfItsMessage) {
  InstallConfigurationAnd({});
  std::vector<Job> jobs =
      Store({Changes(2, {NewCompany("C1"), NewSite("C1-S1", "C1"), NewCustomer("CU-1", "C1")})});
  ASSERT_EQ(jobs.size(), 1u);

  ASSERT_OK(Apply(jobs[0].id));

  EXPECT_EQ(Rows("Company").size(), 1u);
  EXPECT_EQ(Rows("Site").size(), 1u);
  std::vector<Row> customers = Rows("Customer");
  ASSERT_EQ(customers.size(), 1u);
  EXPECT_EQ(customers[0].at("credit_limit"), "5000");
}

TEST_F(ReplicaStoreTest, JobAppliedBeforeItsParentFailsNamingBothRows) {
  std::vector<Job> jobs = InstallConfigurationAnd({NewCompany("C1"), NewSite("C1-S1", "C1")});
  ASSERT_EQ(jobs.size(), 2u);

  Status applied = Apply(jobs[1].id);  // the Site before its Company

  ASSERT_FALSE(applied.ok());
  EXPECT_THAT(applied.message(), HasSubstr("Site[site_id=C1-S1]"));
  EXPECT_THAT(applied.message(), HasSubstr("Company[company_id=C1]"));
  EXPECT_THAT(applied.message(), HasSubstr("does not exist"));
  EXPECT_THAT(applied.message(), HasSubstr("job " + std::to_string(jobs[1].id)));
  EXPECT_TRUE(Rows("Site").empty());
  std::map<uint64_t, JobState> unfinished = Unfinished();
  ASSERT_TRUE(unfinished.count(jobs[1].id));
  EXPECT_EQ(unfinished[jobs[1].id], JobState::kError);
  EXPECT_EQ(unfinished[jobs[0].id], JobState::kPosted);
}

TEST_F(ReplicaStoreTest, FailedJobSucceedsOnceItsParentIsApplied) {
  std::vector<Job> jobs = InstallConfigurationAnd({NewCompany("C1"), NewSite("C1-S1", "C1")});
  ASSERT_EQ(jobs.size(), 2u);
  ASSERT_FALSE(Apply(jobs[1].id).ok());

  ASSERT_OK(Apply(jobs[0].id));
  ASSERT_OK(Apply(jobs[1].id, /*attempt=*/2));

  EXPECT_EQ(Rows("Site").size(), 1u);
  EXPECT_TRUE(Unfinished().empty());
}

TEST_F(ReplicaStoreTest, FailedJobLeavesNothingApplied) {
  InstallConfigurationAnd({});
  // The first change is fine; the second references a company that does not exist.
  std::vector<Job> jobs = Store({Changes(2, {NewCompany("C2"), NewSite("C1-S1", "C1")})});
  ASSERT_EQ(jobs.size(), 1u);

  Status applied = Apply(jobs[0].id);

  ASSERT_FALSE(applied.ok());
  EXPECT_THAT(applied.message(), HasSubstr("change 2"));
  EXPECT_THAT(applied.message(), HasSubstr("Company[company_id=C1]"));
  EXPECT_TRUE(Rows("Company").empty()) << "the first change was not rolled back";
  EXPECT_TRUE(Rows("Site").empty());
  EXPECT_EQ(Unfinished()[jobs[0].id], JobState::kError);
}

// The replica stores a message as it arrived, reading only its header: changes that do not
// decode are found by the worker, which fails the job saying so and changes nothing.
TEST_F(ReplicaStoreTest, JobWhoseStoredChangesDoNotDecodeFailsSayingSo) {
  InstallConfigurationAnd({});
  ReceivedMessage garbled;
  garbled.header.set_site("SITE-A");
  garbled.header.set_sequence(store_->LastReceivedSequence() + 1);
  garbled.header.set_message_class(wire::RECEIVE_MESSAGE);
  garbled.header.add_changes("\x0a\xff");  // a change whose LU name runs past its end
  garbled.bytes = garbled.header.SerializeAsString();
  auto jobs = store_->StoreMessages({garbled}, QueueFor, kNowUs);
  ASSERT_OK(jobs.status());
  ASSERT_EQ(jobs->size(), 1u);

  Status applied = Apply((*jobs)[0].id);

  ASSERT_FALSE(applied.ok());
  EXPECT_EQ(applied.code(), Status::Code::kMalformed);
  EXPECT_THAT(applied.message(), HasSubstr("its stored message does not decode"));
  EXPECT_EQ(Record((*jobs)[0].id).state(), "Error");
}

TEST_F(ReplicaStoreTest, ApplyJobOfUnknownJobIsNotFound) {
  InstallConfigurationAnd({});
  Status applied = Apply(12345);
  ASSERT_FALSE(applied.ok());
  EXPECT_EQ(applied.code(), Status::Code::kNotFound);
  EXPECT_THAT(applied.message(), HasSubstr("12345"));
}

TEST_F(ReplicaStoreTest, ApplyJobOfUnknownJobRecordsNoAttempt) {
  InstallConfigurationAnd({});
  const uint64_t unknown = configuration_job_.id + 1;  // the id the next job will get

  ASSERT_FALSE(Apply(unknown).ok());

  EXPECT_TRUE(
      Query("SELECT job_id FROM ferry_job_attempts WHERE job_id = " + std::to_string(unknown))
          .empty());
  // A job posted later must not show an attempt it never had.
  std::vector<Job> jobs = Store({Changes(2, {NewCompany("C1")})});
  ASSERT_EQ(jobs.size(), 1u);
  wire::JobRecord record = Record(jobs[0].id);
  EXPECT_EQ(record.attempt_log_size(), 0) << record.DebugString();
}

// ---- Applying a batch of jobs.

TEST_F(ReplicaStoreTest, ApplyJobsAppliesEveryJobOfTheBatch) {
  std::vector<Job> jobs = InstallConfigurationAnd(
      {NewCompany("C1"), NewSite("C1-S1", "C1"), NewCustomer("CU-1", "C1")});
  ASSERT_EQ(jobs.size(), 3u);
  std::vector<ReplicaStore::Attempt> batch;
  for (const Job& job : jobs) batch.push_back(MakeAttempt(job.id, NextAttempt(job.id), kNowUs));

  std::vector<Status> results = store_->ApplyJobs(batch, testing::FixedClock(kNowUs + 500));

  ASSERT_EQ(results.size(), 3u);
  for (const Status& result : results) EXPECT_OK(result);
  EXPECT_EQ(Rows("Company").size(), 1u);
  EXPECT_EQ(Rows("Site").size(), 1u);
  EXPECT_EQ(Rows("Customer").size(), 1u);
  EXPECT_TRUE(Unfinished().empty());
  EXPECT_EQ(Counts()[kMessageQueue], (std::map<std::string, uint64_t>{{"Ready", 3}}));
  for (size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE("job " + std::to_string(i));
    wire::JobRecord record = Record(jobs[i].id);
    EXPECT_EQ(record.state(), "Ready");
    EXPECT_EQ(record.attempts(), 1u);
    EXPECT_EQ(record.session_id(), kSession);
    EXPECT_EQ(record.finished_at_us(), kNowUs + 500);  // the batch's commit
    EXPECT_EQ(record.error(), "");
    ASSERT_EQ(record.attempt_log_size(), 1);
    const wire::AttemptRecord& logged = record.attempt_log(0);
    EXPECT_EQ(logged.attempt(), 1u);
    EXPECT_EQ(logged.session_id(), kSession);
    EXPECT_EQ(logged.pid(), kPid);
    EXPECT_EQ(logged.outcome(), "Ready");
    EXPECT_EQ(logged.finished_at_us(), kNowUs + 500);
    // The first attempt starts when the worker took the batch, the others when they begin.
    EXPECT_EQ(logged.started_at_us(), i == 0 ? kNowUs : kNowUs + 500);
    EXPECT_EQ(record.started_at_us(), logged.started_at_us());
  }
}

// A batch whose transaction cannot get the write lock (another process holds it past the busy
// timeout) fails whole, with the lock named, and leaves every job as it was to run again.
TEST_F(ReplicaStoreTest, ApplyJobsThatCannotGetTheWriteLockFailWholeAndRunLater) {
  std::vector<Job> jobs = InstallConfigurationAnd({NewCompany("C1"), NewSite("C1-S1", "C1")});
  ASSERT_EQ(jobs.size(), 2u);
  std::vector<ReplicaStore::Attempt> batch;
  for (const Job& job : jobs) batch.push_back(MakeAttempt(job.id, NextAttempt(job.id), kNowUs));
  store_.reset();
  auto store = OpenSqliteReplicaStore(path_, {.create = false, .busy_timeout_ms = 100});
  ASSERT_OK(store.status());
  store_ = std::move(store).value();
  {
    auto other = sqlite::Db::Open(path_, {.create = false});
    ASSERT_OK(other.status());
    ASSERT_OK(other->Exec("BEGIN IMMEDIATE"));  // another writer, holding the lock

    std::vector<Status> results = store_->ApplyJobs(batch, testing::FixedClock(kNowUs + 500));

    ASSERT_EQ(results.size(), 1u) << "one error for the batch";
    EXPECT_FALSE(results[0].ok());
    EXPECT_THAT(results[0].message(), HasSubstr("locked"));
    ASSERT_OK(other->Exec("ROLLBACK"));
  }
  EXPECT_TRUE(Rows("Company").empty());
  EXPECT_EQ(Unfinished().size(), 2u) << "both jobs wait to run again";
  EXPECT_EQ(Record(jobs[0].id).attempt_log_size(), 0) << "no attempt recorded";

  std::vector<Status> again = store_->ApplyJobs(batch, testing::FixedClock(kNowUs + 900));
  ASSERT_EQ(again.size(), 2u);
  for (const Status& result : again) EXPECT_OK(result);
  EXPECT_EQ(Rows("Site").size(), 1u);
}

TEST_F(ReplicaStoreTest, ApplyJobsCommitsTheBatchOnceWithOneFinishTime) {
  std::vector<Job> jobs = InstallConfigurationAnd(
      {NewCompany("C1"), NewSite("C1-S1", "C1"), NewCustomer("CU-1", "C1")});
  ASSERT_EQ(jobs.size(), 3u);
  const std::string states_sql = "SELECT state FROM ferry_jobs WHERE job_id IN (" +
                                 std::to_string(jobs[0].id) + "," + std::to_string(jobs[1].id) +
                                 "," + std::to_string(jobs[2].id) + ") ORDER BY job_id";
  // At every reading of the clock, what another connection sees: committed states only.
  std::vector<std::vector<std::string>> seen;
  WatchingClock clock(kNowUs + 1000, [&] { seen.push_back(Query(states_sql)); });
  std::vector<ReplicaStore::Attempt> batch;
  for (const Job& job : jobs) batch.push_back(MakeAttempt(job.id, NextAttempt(job.id), kNowUs));

  std::vector<Status> results = store_->ApplyJobs(batch, clock);

  ASSERT_EQ(results.size(), 3u);
  for (const Status& result : results) EXPECT_OK(result);
  // Nothing was committed before the end, the last reading (just before the COMMIT) included.
  ASSERT_FALSE(seen.empty());
  for (const auto& states : seen) EXPECT_THAT(states, ElementsAre("Posted", "Posted", "Posted"));
  EXPECT_THAT(Query(states_sql), ElementsAre("Ready", "Ready", "Ready"));
  // Every job finished at the batch's commit: the clock's last reading. Each attempt has its
  // own start and end, in order.
  const int64_t commit_us = clock.last_us();
  int64_t previous_end_us = kNowUs;
  for (size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE("job " + std::to_string(i));
    wire::JobRecord record = Record(jobs[i].id);
    EXPECT_EQ(record.finished_at_us(), commit_us);
    ASSERT_EQ(record.attempt_log_size(), 1);
    const wire::AttemptRecord& logged = record.attempt_log(0);
    if (i == 0) {
      EXPECT_EQ(logged.started_at_us(), kNowUs);  // the worker's
    } else {
      EXPECT_GE(logged.started_at_us(), previous_end_us);
    }
    EXPECT_GT(logged.finished_at_us(), logged.started_at_us());
    EXPECT_LE(logged.finished_at_us(), commit_us);
    EXPECT_EQ(record.started_at_us(), logged.started_at_us());
    previous_end_us = logged.finished_at_us();
  }
}

TEST_F(ReplicaStoreTest, ApplyJobsStopsAtAFailingJobAndKeepsTheJobsBeforeIt) {
  // The second job's Site names a company that does not exist.
  std::vector<Job> jobs = InstallConfigurationAnd(
      {NewCompany("C1"), NewSite("C2-S1", "C2"), NewCustomer("CU-1", "C1")});
  ASSERT_EQ(jobs.size(), 3u);
  std::vector<ReplicaStore::Attempt> batch;
  for (const Job& job : jobs) batch.push_back(MakeAttempt(job.id, NextAttempt(job.id), kNowUs));

  std::vector<Status> results = store_->ApplyJobs(batch, testing::FixedClock(kNowUs + 500));

  ASSERT_EQ(results.size(), 2u);  // the third job was not attempted
  EXPECT_OK(results[0]);
  ASSERT_FALSE(results[1].ok());
  EXPECT_THAT(results[1].message(), HasSubstr("Site[site_id=C2-S1]"));
  EXPECT_THAT(results[1].message(), HasSubstr("Company[company_id=C2]"));
  EXPECT_THAT(results[1].message(), HasSubstr("job " + std::to_string(jobs[1].id)));
  // The first job is applied and Ready, at the batch's commit.
  std::vector<Row> companies = Rows("Company");
  ASSERT_EQ(companies.size(), 1u);
  EXPECT_EQ(companies[0].at("company_id"), "C1");
  wire::JobRecord first = Record(jobs[0].id);
  EXPECT_EQ(first.state(), "Ready");
  EXPECT_EQ(first.finished_at_us(), kNowUs + 500);
  EXPECT_THAT(Outcomes(first), ElementsAre("Ready"));
  // The second rolled back alone and is in Error with its attempt.
  EXPECT_TRUE(Rows("Site").empty());
  wire::JobRecord second = Record(jobs[1].id);
  EXPECT_EQ(second.state(), "Error");
  EXPECT_EQ(second.error(), results[1].message());
  EXPECT_EQ(second.attempts(), 1u);
  EXPECT_EQ(second.session_id(), kSession);
  ASSERT_EQ(second.attempt_log_size(), 1);
  EXPECT_EQ(second.attempt_log(0).attempt(), 1u);
  EXPECT_EQ(second.attempt_log(0).outcome(), "Error");
  EXPECT_EQ(second.attempt_log(0).error(), results[1].message());
  EXPECT_EQ(second.attempt_log(0).started_at_us(), kNowUs + 500);  // its own start
  EXPECT_EQ(second.attempt_log(0).finished_at_us(), kNowUs + 500);
  // The third is untouched.
  EXPECT_TRUE(Rows("Customer").empty());
  wire::JobRecord third = Record(jobs[2].id);
  EXPECT_EQ(third.state(), "Posted");
  EXPECT_EQ(third.attempts(), 0u);
  EXPECT_EQ(third.attempt_log_size(), 0);
  EXPECT_TRUE(
      Query("SELECT job_id FROM ferry_job_attempts WHERE job_id = " + std::to_string(jobs[2].id))
          .empty());
  std::map<uint64_t, JobState> unfinished = Unfinished();
  ASSERT_EQ(unfinished.size(), 2u);
  EXPECT_EQ(unfinished[jobs[1].id], JobState::kError);
  EXPECT_EQ(unfinished[jobs[2].id], JobState::kPosted);
  // The third applies on its own afterwards.
  ASSERT_OK(store_->ApplyJob(MakeAttempt(jobs[2].id, NextAttempt(jobs[2].id), kNowUs + 600),
                             testing::FixedClock(kNowUs + 700)));
  EXPECT_EQ(Rows("Customer").size(), 1u);
}

TEST_F(ReplicaStoreTest, ApplyJobsWhoseFirstJobFailsAttemptsNoOther) {
  std::vector<Job> jobs =
      InstallConfigurationAnd({NewSite("C2-S1", "C2"), NewCompany("C1"), NewCompany("C3")});
  ASSERT_EQ(jobs.size(), 3u);
  std::vector<ReplicaStore::Attempt> batch;
  for (const Job& job : jobs) batch.push_back(MakeAttempt(job.id, NextAttempt(job.id), kNowUs));

  std::vector<Status> results = store_->ApplyJobs(batch, testing::FixedClock(kNowUs + 500));

  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ok());
  EXPECT_TRUE(Rows("Site").empty());
  EXPECT_TRUE(Rows("Company").empty());
  std::map<uint64_t, JobState> unfinished = Unfinished();
  EXPECT_EQ(unfinished[jobs[0].id], JobState::kError);
  EXPECT_EQ(unfinished[jobs[1].id], JobState::kPosted);
  EXPECT_EQ(unfinished[jobs[2].id], JobState::kPosted);
  EXPECT_THAT(Outcomes(Record(jobs[0].id)), ElementsAre("Error"));
  EXPECT_EQ(Record(jobs[1].id).attempt_log_size(), 0);
  EXPECT_EQ(Record(jobs[2].id).attempt_log_size(), 0);
}

TEST_F(ReplicaStoreTest, ApplyJobsRecordsAlreadyReadyForAReadyJobAndAppliesTheOthers) {
  std::vector<Job> jobs =
      InstallConfigurationAnd({NewCompany("C1"), NewCompany("C2"), NewCompany("C3")});
  ASSERT_EQ(jobs.size(), 3u);
  // The middle job is applied already, e.g. by a worker that died before it could report.
  ASSERT_OK(store_->ApplyJob(MakeAttempt(jobs[1].id, NextAttempt(jobs[1].id), kNowUs),
                             testing::FixedClock(kNowUs + 10)));
  std::vector<ReplicaStore::Attempt> batch;
  for (const Job& job : jobs) {
    batch.push_back(MakeAttempt(job.id, NextAttempt(job.id), kNowUs + 100));
  }

  std::vector<Status> results = store_->ApplyJobs(batch, testing::FixedClock(kNowUs + 500));

  ASSERT_EQ(results.size(), 3u);
  for (const Status& result : results) EXPECT_OK(result);
  EXPECT_EQ(Rows("Company").size(), 3u);  // C2 once: its NEW was not applied again
  EXPECT_TRUE(Unfinished().empty());
  EXPECT_EQ(Counts()[kMessageQueue], (std::map<std::string, uint64_t>{{"Ready", 3}}));
  wire::JobRecord ready = Record(jobs[1].id);
  EXPECT_EQ(ready.state(), "Ready");
  ASSERT_EQ(ready.attempt_log_size(), 2);
  EXPECT_EQ(ready.attempt_log(0).outcome(), "Ready");
  EXPECT_EQ(ready.attempt_log(1).attempt(), 2u);
  EXPECT_EQ(ready.attempt_log(1).outcome(), "AlreadyReady");
  EXPECT_EQ(ready.attempt_log(1).started_at_us(), kNowUs + 500);  // not the first of the batch
  EXPECT_EQ(ready.attempt_log(1).error(), "");
  for (const Job& job : {jobs[0], jobs[2]}) {
    wire::JobRecord record = Record(job.id);
    EXPECT_EQ(record.state(), "Ready");
    EXPECT_EQ(record.finished_at_us(), kNowUs + 500);
    EXPECT_THAT(Outcomes(record), ElementsAre("Ready"));
  }
}

TEST_F(ReplicaStoreTest, ApplyingAFinishedJobAgainKeepsItsFinishTime) {
  std::vector<Job> jobs = InstallConfigurationAnd({NewCompany("C1"), NewCustomer("CU-1", "C9")});
  ASSERT_EQ(jobs.size(), 2u);
  ASSERT_OK(store_->ApplyJob(MakeAttempt(jobs[0].id, NextAttempt(jobs[0].id), kNowUs),
                             testing::FixedClock(kNowUs + 10)));  // Ready at +10
  ASSERT_FALSE(store_
                   ->ApplyJob(MakeAttempt(jobs[1].id, NextAttempt(jobs[1].id), kNowUs),
                              testing::FixedClock(kNowUs + 10))
                   .ok());                                  // Error: no company C9
  ASSERT_OK(store_->MarkSkipped(jobs[1].id, kNowUs + 20));  // Skipped at +20

  // A worker takes both again: nothing is applied, and neither job changes.
  std::vector<Status> results =
      store_->ApplyJobs({MakeAttempt(jobs[0].id, NextAttempt(jobs[0].id), kNowUs + 900),
                         MakeAttempt(jobs[1].id, NextAttempt(jobs[1].id), kNowUs + 900)},
                        testing::FixedClock(kNowUs + 1000));

  ASSERT_EQ(results.size(), 2u);
  EXPECT_OK(results[0]);
  EXPECT_OK(results[1]);
  EXPECT_EQ(Rows("Company").size(), 1u);
  EXPECT_TRUE(Rows("Customer").empty());
  wire::JobRecord ready = Record(jobs[0].id);
  EXPECT_EQ(ready.state(), "Ready");
  EXPECT_EQ(ready.finished_at_us(), kNowUs + 10) << "a Ready job's finish time moved";
  EXPECT_THAT(Outcomes(ready), ElementsAre("Ready", "AlreadyReady"));
  wire::JobRecord skipped = Record(jobs[1].id);
  EXPECT_EQ(skipped.state(), "Skipped");
  EXPECT_EQ(skipped.finished_at_us(), kNowUs + 20) << "a Skipped job's finish time moved";
  EXPECT_THAT(Outcomes(skipped), ElementsAre("Error", "AlreadyReady"));
}

// ---- Attempts.

TEST_F(ReplicaStoreTest, AttemptIsRecordedWithTheWorkersStartTimeAndOutcome) {
  std::vector<Job> jobs = InstallConfigurationAnd({NewCompany("C1")});
  ASSERT_EQ(jobs.size(), 1u);
  const int attempt = NextAttempt(jobs[0].id);
  ASSERT_EQ(attempt, 1);

  ASSERT_OK(store_->ApplyJob(MakeAttempt(jobs[0].id, attempt, kNowUs + 150),
                             testing::FixedClock(kNowUs + 300)));

  wire::JobRecord record = Record(jobs[0].id);
  EXPECT_EQ(record.sequence(), 2u);
  EXPECT_EQ(record.queue(), kMessageQueue);
  EXPECT_EQ(record.message_class(), "Receive_Message");
  EXPECT_EQ(record.state(), "Ready");
  EXPECT_EQ(record.attempts(), 1u);
  EXPECT_EQ(record.session_id(), kSession);
  EXPECT_EQ(record.posted_at_us(), kNowUs);
  EXPECT_EQ(record.started_at_us(), kNowUs + 150);  // the attempt's: the worker's
  EXPECT_EQ(record.finished_at_us(), kNowUs + 300);
  EXPECT_EQ(record.error(), "");
  ASSERT_EQ(record.attempt_log_size(), 1);
  const wire::AttemptRecord& logged = record.attempt_log(0);
  EXPECT_EQ(logged.attempt(), 1u);
  EXPECT_EQ(logged.session_id(), kSession);
  EXPECT_EQ(logged.pid(), kPid);
  EXPECT_EQ(logged.started_at_us(), kNowUs + 150);
  EXPECT_EQ(logged.finished_at_us(), kNowUs + 300);
  EXPECT_EQ(logged.outcome(), "Ready");
  EXPECT_EQ(logged.error(), "");
}

TEST_F(ReplicaStoreTest, ErrorAttemptKeepsTheFullErrorText) {
  std::vector<Job> jobs = InstallConfigurationAnd({NewCompany("C1"), NewSite("C1-S1", "C1")});
  ASSERT_EQ(jobs.size(), 2u);
  const int first = NextAttempt(jobs[1].id);

  Status applied = store_->ApplyJob(MakeAttempt(jobs[1].id, first, kNowUs + 10),
                                    testing::FixedClock(kNowUs + 20));

  ASSERT_FALSE(applied.ok());
  wire::JobRecord record = Record(jobs[1].id);
  EXPECT_EQ(record.state(), "Error");
  EXPECT_EQ(record.error(), applied.message());
  EXPECT_EQ(record.attempts(), 1u);
  EXPECT_EQ(record.session_id(), kSession);
  EXPECT_EQ(record.started_at_us(), kNowUs + 10);
  EXPECT_EQ(record.finished_at_us(), kNowUs + 20);
  ASSERT_EQ(record.attempt_log_size(), 1);
  const wire::AttemptRecord& failed = record.attempt_log(0);
  EXPECT_EQ(failed.outcome(), "Error");
  EXPECT_EQ(failed.error(), applied.message());
  EXPECT_THAT(failed.error(), HasSubstr("Site[site_id=C1-S1]"));
  EXPECT_THAT(failed.error(), HasSubstr("Company[company_id=C1]"));
  EXPECT_THAT(failed.error(), HasSubstr("does not exist"));
  EXPECT_EQ(failed.started_at_us(), kNowUs + 10);
  EXPECT_EQ(failed.finished_at_us(), kNowUs + 20);

  // The retry succeeds once the parent is there; the failure stays in the log.
  ASSERT_OK(Apply(jobs[0].id));
  const int second = NextAttempt(jobs[1].id);
  ASSERT_EQ(second, 2);
  ASSERT_OK(store_->ApplyJob(MakeAttempt(jobs[1].id, second, kNowUs + 30),
                             testing::FixedClock(kNowUs + 40)));
  record = Record(jobs[1].id);
  EXPECT_EQ(record.state(), "Ready");
  EXPECT_EQ(record.error(), "");
  EXPECT_EQ(record.attempts(), 2u);
  EXPECT_EQ(record.started_at_us(), kNowUs + 30);
  EXPECT_EQ(record.finished_at_us(), kNowUs + 40);
  EXPECT_THAT(Outcomes(record), ElementsAre("Error", "Ready"));
  EXPECT_EQ(record.attempt_log(0).error(), applied.message());
  EXPECT_EQ(record.attempt_log(1).error(), "");
}

TEST_F(ReplicaStoreTest, AttemptsIsTheHighestAttemptNumberRecorded) {
  std::vector<Job> jobs = InstallConfigurationAnd({NewCustomer("CU-1", "C9")});
  ASSERT_EQ(jobs.size(), 1u);
  // Taking a job stores nothing: it stays Posted, with no attempt, until a worker commits.
  EXPECT_EQ(UnfinishedById()[jobs[0].id].state, JobState::kPosted);
  EXPECT_EQ(UnfinishedById()[jobs[0].id].attempts, 0);

  // Attempt 1 died without committing; attempt 2 fails and is recorded.
  ASSERT_FALSE(Apply(jobs[0].id, /*attempt=*/2).ok());
  Job job = UnfinishedById()[jobs[0].id];
  EXPECT_EQ(job.state, JobState::kError);
  EXPECT_EQ(job.attempts, 2);
  // A late report of an older attempt does not lower it.
  ASSERT_FALSE(Apply(jobs[0].id, /*attempt=*/1).ok());
  EXPECT_EQ(UnfinishedById()[jobs[0].id].attempts, 2);
  ASSERT_FALSE(Apply(jobs[0].id, /*attempt=*/3).ok());
  EXPECT_EQ(UnfinishedById()[jobs[0].id].attempts, 3);

  wire::JobRecord record = Record(jobs[0].id);
  EXPECT_EQ(record.attempts(), 3u);
  ASSERT_EQ(record.attempt_log_size(), 3);
  EXPECT_EQ(record.attempt_log(0).attempt(), 1u);
  EXPECT_EQ(record.attempt_log(1).attempt(), 2u);
  EXPECT_EQ(record.attempt_log(2).attempt(), 3u);
  Reopen();
  EXPECT_EQ(UnfinishedById()[jobs[0].id].attempts, 3);
}

// ---- Job states and operator actions.

TEST_F(ReplicaStoreTest, MarkSkippedOnlyWorksOnAJobInError) {
  std::vector<Job> jobs = InstallConfigurationAnd(
      {NewCompany("C1"), NewCustomer("CU-1", "C9"), NewCustomer("CU-2", "C1")});
  ASSERT_EQ(jobs.size(), 3u);
  ASSERT_OK(Apply(jobs[0].id));          // Ready
  ASSERT_FALSE(Apply(jobs[1].id).ok());  // Error: no company C9
  // jobs[2] stays Posted.

  EXPECT_FALSE(store_->MarkSkipped(jobs[0].id, kNowUs).ok());
  EXPECT_FALSE(store_->MarkSkipped(jobs[2].id, kNowUs).ok());
  EXPECT_FALSE(store_->MarkSkipped(12345, kNowUs).ok());
  ASSERT_OK(store_->MarkSkipped(jobs[1].id, kNowUs + 50));

  std::map<uint64_t, JobState> unfinished = Unfinished();
  EXPECT_FALSE(unfinished.count(jobs[1].id));
  ASSERT_EQ(unfinished.size(), 1u);
  EXPECT_EQ(unfinished[jobs[2].id], JobState::kPosted);
  wire::JobRecord record = Record(jobs[1].id);
  EXPECT_EQ(record.state(), "Skipped");
  EXPECT_EQ(record.finished_at_us(), kNowUs + 50);
  EXPECT_EQ(Counts()[kMessageQueue]["Skipped"], 1u);
  EXPECT_TRUE(Rows("Customer").empty());
  // Skipped is not Error: it cannot be skipped again, and an attempt at it applies nothing.
  EXPECT_FALSE(store_->MarkSkipped(jobs[1].id, kNowUs).ok());
  ASSERT_OK(Apply(jobs[1].id, /*attempt=*/2));
  EXPECT_EQ(Record(jobs[1].id).state(), "Skipped");
  EXPECT_THAT(Outcomes(Record(jobs[1].id)), ElementsAre("Error", "AlreadyReady"));
  EXPECT_TRUE(Rows("Customer").empty());
}

TEST_F(ReplicaStoreTest, MarkReleasedSetsReleasedAttemptsToAttempts) {
  std::vector<Job> jobs = InstallConfigurationAnd({NewCustomer("CU-1", "C9")});
  ASSERT_EQ(jobs.size(), 1u);
  for (int i = 0; i < 2; ++i) ASSERT_FALSE(Apply(jobs[0].id, NextAttempt(jobs[0].id)).ok());
  Job job = UnfinishedById()[jobs[0].id];
  EXPECT_EQ(job.state, JobState::kError);
  EXPECT_EQ(job.attempts, 2);
  EXPECT_EQ(job.released_attempts, 0);

  ASSERT_OK(store_->MarkReleased(jobs[0].id));

  job = UnfinishedById()[jobs[0].id];
  EXPECT_EQ(job.state, JobState::kError);
  EXPECT_EQ(job.attempts, 2);
  EXPECT_EQ(job.released_attempts, 2);
  // Further attempts count on from there; the release stays where it was.
  ASSERT_FALSE(Apply(jobs[0].id, NextAttempt(jobs[0].id)).ok());
  job = UnfinishedById()[jobs[0].id];
  EXPECT_EQ(job.attempts, 3);
  EXPECT_EQ(job.released_attempts, 2);
  Reopen();
  job = UnfinishedById()[jobs[0].id];
  EXPECT_EQ(job.attempts, 3);
  EXPECT_EQ(job.released_attempts, 2);
}

TEST_F(ReplicaStoreTest, CountJobsCountsByQueueAndState) {
  std::vector<Job> jobs =
      InstallConfigurationAnd({NewCompany("C1"), NewCustomer("CU-1", "C9"),
                               NewCustomer("CU-2", "C1"), NewCustomer("CU-3", "C1")});
  ASSERT_EQ(jobs.size(), 4u);
  ASSERT_OK(Apply(jobs[0].id));          // Ready
  ASSERT_FALSE(Apply(jobs[1].id).ok());  // Error: no C9
  // jobs[2] and jobs[3] stay Posted: no job is stored as Executing.

  std::map<std::string, std::map<std::string, uint64_t>> expected = {
      {kConfigurationQueue, {{"Ready", 1}}},
      {kMessageQueue, {{"Ready", 1}, {"Error", 1}, {"Posted", 2}}},
  };
  EXPECT_EQ(Counts(), expected);
  std::map<uint64_t, JobState> unfinished = Unfinished();
  EXPECT_EQ(unfinished.size(), 3u);
  EXPECT_EQ(unfinished[jobs[1].id], JobState::kError);
  EXPECT_EQ(unfinished[jobs[2].id], JobState::kPosted);
  EXPECT_EQ(unfinished[jobs[3].id], JobState::kPosted);
}

// ---- Queue settings and sessions.

TEST_F(ReplicaStoreTest, QueueSettingsRoundTripAndSurviveReopen) {
  auto none = store_->QueueSettings();
  ASSERT_OK(none.status());
  EXPECT_TRUE(none->empty());

  ASSERT_OK(store_->SaveQueueSetting(kMessageQueue, {.processes = 4, .paused = false}));
  ASSERT_OK(
      store_->SaveQueueSetting(kConfigurationQueue, {.processes = std::nullopt, .paused = true}));
  auto saved = store_->QueueSettings();
  ASSERT_OK(saved.status());
  ASSERT_EQ(saved->size(), 2u);
  EXPECT_EQ((*saved)[kMessageQueue].processes, std::optional<int>(4));
  EXPECT_FALSE((*saved)[kMessageQueue].paused);
  EXPECT_EQ((*saved)[kConfigurationQueue].processes, std::nullopt);
  EXPECT_TRUE((*saved)[kConfigurationQueue].paused);

  // Saving again replaces the queue's setting whole.
  ASSERT_OK(store_->SaveQueueSetting(kMessageQueue, {.processes = std::nullopt, .paused = true}));
  Reopen();

  auto reopened = store_->QueueSettings();
  ASSERT_OK(reopened.status());
  ASSERT_EQ(reopened->size(), 2u);
  EXPECT_EQ((*reopened)[kMessageQueue].processes, std::nullopt);
  EXPECT_TRUE((*reopened)[kMessageQueue].paused);
  EXPECT_EQ((*reopened)[kConfigurationQueue].processes, std::nullopt);
  EXPECT_TRUE((*reopened)[kConfigurationQueue].paused);
}

TEST_F(ReplicaStoreTest, BeginSessionReturnsANewIdEachTime) {
  auto first = store_->BeginSession(100, kNowUs);
  auto second = store_->BeginSession(101, kNowUs + 1);
  ASSERT_OK(first.status());
  ASSERT_OK(second.status());
  EXPECT_EQ(*first, "R1");
  EXPECT_EQ(*second, "R2");

  Reopen();
  auto third = store_->BeginSession(102, kNowUs + 2);
  ASSERT_OK(third.status());
  EXPECT_EQ(*third, "R3");
}

// ---- Listing and pruning.

TEST_F(ReplicaStoreTest, ListJobsFiltersNewestFirstWithLimit) {
  std::vector<Job> jobs = InstallConfigurationAnd(
      {NewCompany("C1"), NewCustomer("CU-1", "C9"), NewCustomer("CU-2", "C1")});
  ASSERT_EQ(jobs.size(), 3u);
  ASSERT_OK(Apply(jobs[0].id));          // Ready
  ASSERT_FALSE(Apply(jobs[1].id).ok());  // Error: no company C9
  // jobs[2] stays Posted.

  EXPECT_THAT(Sequences(List()), ElementsAre(4u, 3u, 2u, 1u));
  EXPECT_THAT(Sequences(List(kMessageQueue)), ElementsAre(4u, 3u, 2u));
  EXPECT_THAT(Sequences(List(kConfigurationQueue)), ElementsAre(1u));
  EXPECT_THAT(Sequences(List("", "Ready")), ElementsAre(2u, 1u));
  EXPECT_THAT(Sequences(List(kMessageQueue, "Ready")), ElementsAre(2u));
  EXPECT_THAT(Sequences(List("", "Posted")), ElementsAre(4u));
  EXPECT_TRUE(Sequences(List("", "Skipped")).empty());
  EXPECT_TRUE(Sequences(List("NO-SUCH-QUEUE")).empty());
  EXPECT_THAT(Sequences(List("", "", 0, 2)), ElementsAre(4u, 3u));
  EXPECT_THAT(Sequences(List(kMessageQueue, "", 0, 1)), ElementsAre(4u));
  EXPECT_TRUE(Sequences(List("", "", 12345)).empty());

  std::vector<wire::JobRecord> failed = List("", "", jobs[1].id);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].job_id(), jobs[1].id);
  EXPECT_EQ(failed[0].state(), "Error");
  EXPECT_THAT(failed[0].error(), HasSubstr("Company[company_id=C9]"));
  ASSERT_EQ(failed[0].attempt_log_size(), 1);
  EXPECT_EQ(failed[0].attempt_log(0).outcome(), "Error");
  EXPECT_EQ(failed[0].attempt_log(0).error(), failed[0].error());
  // Each record carries its own attempts only.
  std::vector<wire::JobRecord> all = List();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].attempt_log_size(), 0);  // Posted
  EXPECT_THAT(Outcomes(all[1]), ElementsAre("Error"));
  EXPECT_THAT(Outcomes(all[2]), ElementsAre("Ready"));
  EXPECT_THAT(Outcomes(all[3]), ElementsAre("Ready"));
  EXPECT_EQ(all[3].message_class(), "Receive_Configuration");
}

TEST_F(ReplicaStoreTest, PruneFinishedRemovesOnlyJobsFinishedBeforeTheTime) {
  std::vector<Job> jobs =
      StoreConfigurationAnd({NewCompany("C1"), NewCustomer("CU-1", "C9"), NewCustomer("CU-2", "C9"),
                             NewSite("C1-S1", "C1"), NewCompany("C2")});
  ASSERT_EQ(jobs.size(), 5u);
  ASSERT_OK(Apply(configuration_job_.id, 1, kNowUs + 10));  // Ready at +10
  ASSERT_OK(Apply(jobs[0].id, 1, kNowUs + 10));             // Ready at +10
  ASSERT_FALSE(Apply(jobs[1].id, 1, kNowUs + 10).ok());     // Error at +10: unfinished
  ASSERT_FALSE(Apply(jobs[2].id, 1, kNowUs + 10).ok());
  ASSERT_OK(store_->MarkSkipped(jobs[2].id, kNowUs + 20));  // Skipped at +20
  ASSERT_OK(Apply(jobs[3].id, 1, kNowUs + 40));             // Ready at +40
  // jobs[4] stays Posted.

  // Only what finished strictly before the time goes.
  auto none = store_->PruneFinished(kNowUs + 10, nullptr);
  ASSERT_OK(none.status());
  EXPECT_EQ(*none, 0u);
  EXPECT_EQ(List().size(), 6u);

  ReplicaStore::JobCounts removed;
  auto pruned = store_->PruneFinished(kNowUs + 30, &removed);

  ASSERT_OK(pruned.status());
  EXPECT_EQ(*pruned, 3u);  // the configuration, jobs[0] and the skipped jobs[2]
  EXPECT_EQ(removed, (ReplicaStore::JobCounts{{kConfigurationQueue, {{"Ready", 1}}},
                                              {kMessageQueue, {{"Ready", 1}, {"Skipped", 1}}}}));
  EXPECT_THAT(Sequences(List()), ElementsAre(6u, 5u, 3u));
  std::map<uint64_t, JobState> unfinished = Unfinished();
  ASSERT_EQ(unfinished.size(), 2u);
  EXPECT_EQ(unfinished[jobs[1].id], JobState::kError);
  EXPECT_EQ(unfinished[jobs[4].id], JobState::kPosted);
  EXPECT_THAT(Query("SELECT sequence FROM ferry_inbox ORDER BY sequence"),
              ElementsAre("3", "5", "6"));
  EXPECT_THAT(Query("SELECT DISTINCT job_id FROM ferry_job_attempts ORDER BY job_id"),
              ElementsAre(std::to_string(jobs[1].id), std::to_string(jobs[3].id)));
  auto gone = store_->ReadJobMessage(jobs[0].id);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), Status::Code::kNotFound);
  // The LU rows stay; so does the stream's position, also across a reopen.
  EXPECT_EQ(Rows("Company").size(), 1u);
  EXPECT_EQ(Rows("Site").size(), 1u);
  EXPECT_EQ(store_->LastReceivedSequence(), 6u);
  Reopen();
  EXPECT_EQ(store_->LastReceivedSequence(), 6u);
  EXPECT_EQ(Unfinished().size(), 2u);

  // The installed configuration outlives its pruned job: it is still the newest, and the
  // remaining jobs and the next message still apply with it.
  auto newest = store_->NewestConfiguration();
  ASSERT_OK(newest.status());
  ASSERT_TRUE(newest->has_value());
  EXPECT_TRUE(SameConfiguration(**newest, catalog_->proto()));
  ASSERT_OK(Apply(jobs[4].id));
  std::vector<Job> next = Store({Changes(7, {NewCustomer("CU-3", "C2")})});
  ASSERT_EQ(next.size(), 1u);
  ASSERT_OK(Apply(next[0].id));
  EXPECT_EQ(Rows("Customer").size(), 1u);
  EXPECT_EQ(store_->LastReceivedSequence(), 7u);
}

TEST_F(ReplicaStoreTest, PruneFinishedOfAnEmptyStoreRemovesNothing) {
  auto pruned = store_->PruneFinished(kNowUs, nullptr);
  ASSERT_OK(pruned.status());
  EXPECT_EQ(*pruned, 0u);
  EXPECT_EQ(store_->LastReceivedSequence(), 0u);
}

// ---- Reopening, and the worker's connection.

TEST_F(ReplicaStoreTest, ReopenedStoreKeepsLastReceivedSequenceAndJobs) {
  std::vector<Job> jobs = InstallConfigurationAnd({NewCompany("C1"), NewSite("C1-S1", "C1")});
  ASSERT_EQ(jobs.size(), 2u);
  ASSERT_OK(Apply(jobs[0].id));

  Reopen();

  EXPECT_EQ(store_->LastReceivedSequence(), 3u);
  std::map<uint64_t, JobState> unfinished = Unfinished();
  ASSERT_EQ(unfinished.size(), 1u);
  EXPECT_EQ(unfinished.begin()->first, jobs[1].id);
  // The reopened store applies with the stored configuration and takes the next sequence.
  ASSERT_OK(Apply(jobs[1].id));
  EXPECT_EQ(Rows("Site").size(), 1u);
  EXPECT_EQ(Store({Changes(4, {NewCustomer("CU-1", "C1")})}).size(), 1u);
}

TEST_F(ReplicaStoreTest, WorkerOpenOfMissingDatabaseFailsNamingThePath) {
  const std::string missing = dir_.File("missing.db");

  auto store = OpenSqliteReplicaStore(missing, {.create = false});

  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(missing));
  EXPECT_FALSE(std::filesystem::exists(missing));
}

TEST_F(ReplicaStoreTest, WorkerOpenOfExistingDatabaseAppliesItsJobs) {
  std::vector<Job> jobs = StoreConfigurationAnd({NewCompany("C1")});
  ASSERT_EQ(jobs.size(), 1u);

  auto worker = OpenSqliteReplicaStore(path_, {.create = false});
  ASSERT_OK(worker.status());
  auto message = (*worker)->ReadJobMessage(jobs[0].id);
  ASSERT_OK(message.status());
  EXPECT_EQ(message->sequence(), 2u);
  ASSERT_OK((*worker)->ApplyJob(MakeAttempt(configuration_job_.id), testing::FixedClock(kNowUs)));
  ASSERT_OK((*worker)->ApplyJob(MakeAttempt(jobs[0].id), testing::FixedClock(kNowUs)));

  EXPECT_EQ(Rows("Company").size(), 1u);
  EXPECT_TRUE(Unfinished().empty());  // seen by the node's own connection
  EXPECT_THAT(Outcomes(Record(jobs[0].id)), ElementsAre("Ready"));
}

// ---- Messages handed over to a worker before the node stored them.

class HandedOverTest : public ReplicaStoreTest {
 protected:
  // Opens the worker's connection and installs the configuration (sequence 1), which the
  // node stored.
  void SetUp() override {
    ReplicaStoreTest::SetUp();
    StoreConfigurationAnd({});
    auto worker = OpenSqliteReplicaStore(path_, {.create = false});
    ASSERT_OK(worker.status());
    worker_ = std::move(worker).value();
    ASSERT_OK(worker_->ApplyJob(MakeAttempt(configuration_job_.id), testing::FixedClock(kNowUs)));
  }

  // The worker's attempt at the job of `message`, handed over with its bytes (kept in bytes_).
  ReplicaStore::Attempt HandedOver(const wire::ReplicationMessage& message) {
    std::string& bytes = bytes_.emplace_back();
    EXPECT_TRUE(message.SerializeToString(&bytes));
    ReplicaStore::Attempt attempt = MakeAttempt(message.sequence());
    attempt.message = bytes;
    attempt.queue = kMessageQueue;
    attempt.received_at_us = kNowUs - 5;
    return attempt;
  }

  std::vector<Status> WorkerApplies(const std::vector<ReplicaStore::Attempt>& attempts) {
    return worker_->ApplyJobs(attempts, testing::FixedClock(kNowUs));
  }

  // The pages of the frames written to the WAL from byte `from` on (a frame boundary).
  std::set<uint32_t> WalPagesFrom(uint64_t from) {
    std::ifstream in(path_ + "-wal", std::ios::binary);
    std::stringstream read;
    read << in.rdbuf();
    const std::string wal = read.str();
    auto be32 = [&](size_t at) {
      return uint32_t{static_cast<unsigned char>(wal[at])} << 24 |
             uint32_t{static_cast<unsigned char>(wal[at + 1])} << 16 |
             uint32_t{static_cast<unsigned char>(wal[at + 2])} << 8 |
             uint32_t{static_cast<unsigned char>(wal[at + 3])};
    };
    std::set<uint32_t> pages;
    if (wal.size() < 32) return pages;
    const size_t frame = 24 + be32(8);  // a frame header, then the page (header: page size)
    for (size_t at = from; at + frame <= wal.size(); at += frame) pages.insert(be32(at));
    return pages;
  }

  // The pages of the table or index `name` (SQLite's dbstat table).
  std::set<uint32_t> PagesOf(const std::string& name) {
    std::set<uint32_t> pages;
    for (const std::string& page : Query("SELECT pageno FROM dbstat WHERE name = '" + name + "'")) {
      pages.insert(static_cast<uint32_t>(std::stoul(page)));
    }
    return pages;
  }

  std::unique_ptr<ReplicaStore> worker_;
  std::list<std::string> bytes_;  // what the attempts' messages point into
};

// The worker stores the message and its job with the batch; the node's later store of the
// same message leaves them as they are (the job stays Ready) and moves its sequence on.
TEST_F(HandedOverTest, TheWorkerStoresTheMessageAndItsJobWithTheBatch) {
  std::vector<Status> results = WorkerApplies({HandedOver(Changes(2, {NewCompany("C1")})),
                                               HandedOver(Changes(3, {NewSite("C1-S1", "C1")}))});
  ASSERT_EQ(results.size(), 2u);
  ASSERT_OK(results[0]);
  ASSERT_OK(results[1]);
  EXPECT_EQ(Rows("Site").size(), 1u);
  EXPECT_THAT(Query("SELECT sequence || ' ' || received_at_us FROM ferry_inbox WHERE sequence > 1"),
              ElementsAre("2 " + std::to_string(kNowUs - 5), "3 " + std::to_string(kNowUs - 5)));
  EXPECT_THAT(Query("SELECT job_id || ' ' || sequence || ' ' || queue || ' ' || state FROM "
                    "ferry_jobs WHERE sequence > 1"),
              ElementsAre("2 2 REPLICATION Ready", "3 3 REPLICATION Ready"));
  EXPECT_EQ(store_->LastReceivedSequence(), 1u) << "the node has not stored them";

  std::vector<Job> jobs =
      Store({Changes(2, {NewCompany("C1")}), Changes(3, {NewSite("C1-S1", "C1")})});
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].id, 2u);
  EXPECT_EQ(store_->LastReceivedSequence(), 3u);
  EXPECT_THAT(Query("SELECT state FROM ferry_jobs WHERE sequence > 1"),
              ElementsAre("Ready", "Ready"));
  EXPECT_THAT(Query("SELECT COUNT(*) FROM ferry_job_attempts WHERE job_id > 1"), ElementsAre("2"));
}

// A job handed over with its message, in a batch that applies whole, is posted Ready at
// once: its commit writes no page of the index of unfinished jobs.
TEST_F(HandedOverTest, AJobAppliedWholeIsPostedReadyAndWritesNoPageOfTheUnfinishedIndex) {
  const uint64_t before = std::filesystem::file_size(path_ + "-wal");
  std::vector<Status> results = WorkerApplies({HandedOver(Changes(2, {NewCompany("C1")}))});
  ASSERT_EQ(results.size(), 1u);
  ASSERT_OK(results[0]);
  const std::set<uint32_t> written = WalPagesFrom(before);
  const std::set<uint32_t> jobs = PagesOf("ferry_jobs");
  ASSERT_FALSE(jobs.empty());
  EXPECT_TRUE(written.count(*jobs.begin())) << "the commit wrote the job: frames read wrongly";
  const std::set<uint32_t> unfinished = PagesOf("ferry_jobs_unfinished");
  ASSERT_FALSE(unfinished.empty());
  for (uint32_t page : unfinished) EXPECT_EQ(written.count(page), 0u) << "page " << page;
  EXPECT_THAT(Outcomes(Record(2)), ElementsAre("Ready"));
}

// The node stored the message first (its sync came before the batch): the worker applies
// the stored job.
TEST_F(HandedOverTest, AMessageTheNodeStoredFirstIsAppliedOnce) {
  std::vector<Job> jobs = Store({Changes(2, {NewCompany("C1")})});
  ASSERT_EQ(jobs.size(), 1u);
  std::vector<Status> results = WorkerApplies({HandedOver(Changes(2, {NewCompany("C1")}))});
  ASSERT_EQ(results.size(), 1u);
  ASSERT_OK(results[0]);
  EXPECT_EQ(Rows("Company").size(), 1u);
  EXPECT_THAT(Outcomes(Record(2)), ElementsAre("Ready"));
  EXPECT_THAT(Query("SELECT COUNT(*) FROM ferry_inbox"), ElementsAre("2"));
}

// A job that fails keeps its message and is recorded as an Error; the jobs after it in the
// batch are stored, not attempted.
TEST_F(HandedOverTest, AFailingJobKeepsItsStoredMessageAndError) {
  std::vector<Status> results = WorkerApplies({HandedOver(Changes(2, {NewSite("S-X", "NO-SUCH")})),
                                               HandedOver(Changes(3, {NewCompany("C1")}))});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ok());
  EXPECT_THAT(Query("SELECT job_id || ' ' || state FROM ferry_jobs WHERE sequence > 1"),
              ElementsAre("2 Error", "3 Posted"));
  EXPECT_THAT(Query("SELECT COUNT(*) FROM ferry_inbox WHERE sequence > 1"), ElementsAre("2"));
  EXPECT_TRUE(Rows("Company").empty());
}

TEST_F(HandedOverTest, AMessageThatDoesNotDecodeIsRefusedNamingItsJob) {
  ReplicaStore::Attempt attempt = HandedOver(Changes(2, {NewCompany("C1")}));
  const std::string garbled = "\xff\xff\xff";
  attempt.message = garbled;
  std::vector<Status> results = WorkerApplies({attempt});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_THAT(results[0].message(),
              HasSubstr("job 2: the message handed over with it does not decode"));
  EXPECT_THAT(Query("SELECT COUNT(*) FROM ferry_inbox"), ElementsAre("1")) << "stored nothing";
}

TEST_F(HandedOverTest, AMessageOfAnotherSequenceThanItsJobIsRefusedNamingBoth) {
  ReplicaStore::Attempt attempt = HandedOver(Changes(3, {NewCompany("C1")}));
  attempt.job_id = 2;
  std::vector<Status> results = WorkerApplies({attempt});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_THAT(results[0].message(),
              HasSubstr("job 2 was handed over with the message of sequence 3"));
  EXPECT_THAT(Query("SELECT COUNT(*) FROM ferry_inbox"), ElementsAre("1"));
}

// After a crash the inbox may hold what workers stored beyond a gap (their queues' jobs ran
// before another queue's job was stored). The store's newest sequence stops at the gap, so
// the master sends the rest again; what is stored beyond it is named, so that the node posts
// no job for it again, and pruning leaves it until the node stored the gap.
TEST_F(HandedOverTest, AfterACrashWhatWorkersStoredBeyondAGapIsNamedAndKept) {
  ASSERT_OK(WorkerApplies({HandedOver(Changes(3, {NewCompany("C1")}))})[0]);
  ASSERT_OK(WorkerApplies({HandedOver(Changes(4, {NewCompany("C2")}))})[0]);
  ASSERT_OK(store_->PruneFinished(kNowUs + 1'000'000, nullptr).status());
  EXPECT_THAT(Query("SELECT sequence FROM ferry_inbox"), ElementsAre("3", "4"))
      << "pruned what the node has not stored";

  Reopen();  // sequence 2 was lost with the node

  EXPECT_EQ(store_->LastReceivedSequence(), 1u);
  EXPECT_THAT(store_->StoredBeyondLastReceived(), ElementsAre(3u, 4u));
  std::vector<Job> jobs = Store({Changes(2, {NewCompany("C0")}), Changes(3, {NewCompany("C1")}),
                                 Changes(4, {NewCompany("C2")})});
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(store_->LastReceivedSequence(), 4u);
  EXPECT_THAT(Query("SELECT job_id || ' ' || state FROM ferry_jobs WHERE sequence > 1"),
              ElementsAre("2 Posted", "3 Ready", "4 Ready"));

  ASSERT_OK(store_->Sync());
  Reopen();
  EXPECT_EQ(store_->LastReceivedSequence(), 4u);
  EXPECT_TRUE(store_->StoredBeyondLastReceived().empty());
}

}  // namespace
}  // namespace ferry
