// The replica's SQLite store: storing a contiguous stream of replication messages as jobs,
// applying a job's LU changes whole or not at all, job states and counts, and reopening.
#include "replica/replica_store.h"

#include <gmock/gmock.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/catalog.h"
#include "common/lu_tables.h"
#include "common/sqlite.h"
#include "test_util.h"

namespace ferry {
namespace {

using ::testing::HasSubstr;

constexpr char kQueue[] = "apply";
constexpr char kConfigurationQueue[] = "configuration";
constexpr int64_t kNowUs = 1'700'000'000'000'000;

wire::LuChange Change(const std::string& lu, wire::ChangeAction action,
                      std::map<std::string, std::string> keys,
                      std::map<std::string, std::string> attributes = {}) {
  wire::LuChange change;
  change.set_lu(lu);
  change.set_action(action);
  change.mutable_keys()->insert(keys.begin(), keys.end());
  change.mutable_attributes()->insert(attributes.begin(), attributes.end());
  return change;
}

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
    wire::ReplicationMessage message;
    message.set_site("SITE-A");
    message.set_sequence(sequence);
    message.set_message_class(wire::RECEIVE_CONFIGURATION);
    message.set_origin_site("MASTER");
    *message.mutable_configuration() = catalog_->proto();
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

  // Stores `messages` and returns the jobs posted; fails the test if storing fails.
  std::vector<Job> Store(const std::vector<wire::ReplicationMessage>& messages) {
    auto jobs = store_->StoreMessages(messages, kQueue, kConfigurationQueue, kNowUs);
    EXPECT_OK(jobs.status());
    return jobs.ok() ? *jobs : std::vector<Job>();
  }

  // The configuration (sequence 1) then one message per change, sequences 2, 3, ...; returns
  // the jobs of the changes in order.
  std::vector<Job> StoreConfigurationAnd(std::vector<wire::LuChange> changes) {
    std::vector<wire::ReplicationMessage> messages = {Configuration(1)};
    for (auto& change : changes) {
      messages.push_back(Changes(messages.size() + 1, {std::move(change)}));
    }
    return Store(messages);
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

  std::map<uint64_t, JobState> Unfinished() {
    auto jobs = store_->UnfinishedJobs();
    EXPECT_OK(jobs.status());
    std::map<uint64_t, JobState> out;
    if (jobs.ok()) {
      for (const Job& job : *jobs) out[job.id] = job.state;
    }
    return out;
  }

  std::map<std::string, std::map<std::string, uint64_t>> Counts() {
    auto counts = store_->CountJobs();
    EXPECT_OK(counts.status());
    return counts.ok() ? *counts : std::map<std::string, std::map<std::string, uint64_t>>();
  }

  testing::TempDir dir_;
  std::string path_;
  std::shared_ptr<const Catalog> catalog_;
  std::unique_ptr<ReplicaStore> store_;
};

TEST_F(ReplicaStoreTest, StoreMessagesPostsJobsOnlyForReceiveMessage) {
  std::vector<Job> jobs = StoreConfigurationAnd({NewCompany("C1"), NewSite("C1-S1", "C1")});

  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].sequence, 2u);
  EXPECT_EQ(jobs[1].sequence, 3u);
  EXPECT_NE(jobs[0].id, jobs[1].id);
  for (const Job& job : jobs) {
    EXPECT_EQ(job.queue, kQueue);
    EXPECT_EQ(job.state, JobState::kPosted);
  }
  // The configuration's job is recorded Ready on its own queue.
  EXPECT_EQ(Counts()[kConfigurationQueue]["Ready"], 1u);
}

TEST_F(ReplicaStoreTest, LastReceivedSequenceAdvances) {
  EXPECT_EQ(store_->LastReceivedSequence(), 0u);
  Store({Configuration(1)});
  EXPECT_EQ(store_->LastReceivedSequence(), 1u);
  Store({Changes(2, {NewCompany("C1")}), Changes(3, {NewCompany("C2")})});
  EXPECT_EQ(store_->LastReceivedSequence(), 3u);
}

TEST_F(ReplicaStoreTest, NonContiguousBatchIsRejectedAndStoresNothing) {
  Store({Configuration(1)});

  auto jobs =
      store_->StoreMessages({Changes(2, {NewCompany("C1")}), Changes(4, {NewCompany("C2")})},
                            kQueue, kConfigurationQueue, kNowUs);

  ASSERT_FALSE(jobs.ok());
  EXPECT_THAT(jobs.status().message(), HasSubstr("4"));
  EXPECT_EQ(store_->LastReceivedSequence(), 1u);
  EXPECT_TRUE(Unfinished().empty());
  EXPECT_EQ(Counts()[kQueue].size(), 0u);
  // Sequence 2 was not kept: it can be stored now.
  EXPECT_EQ(Store({Changes(2, {NewCompany("C1")})}).size(), 1u);
  EXPECT_EQ(store_->LastReceivedSequence(), 2u);
}

TEST_F(ReplicaStoreTest, BatchThatSkipsTheNextSequenceIsRejected) {
  Store({Configuration(1)});
  auto jobs =
      store_->StoreMessages({Changes(3, {NewCompany("C1")})}, kQueue, kConfigurationQueue, kNowUs);
  ASSERT_FALSE(jobs.ok());
  EXPECT_EQ(store_->LastReceivedSequence(), 1u);
}

TEST_F(ReplicaStoreTest, ApplyJobAppliesChangesAndMarksReady) {
  std::vector<Job> jobs = StoreConfigurationAnd({NewCompany("C1"), NewSite("C1-S1", "C1")});
  ASSERT_EQ(jobs.size(), 2u);

  ASSERT_OK(store_->ApplyJob(jobs[0].id, kNowUs));
  ASSERT_OK(store_->ApplyJob(jobs[1].id, kNowUs));

  std::vector<Row> companies = Rows("Company");
  ASSERT_EQ(companies.size(), 1u);
  EXPECT_EQ(companies[0].at("company_id"), "C1");
  EXPECT_EQ(companies[0].at("name"), "Company C1");
  std::vector<Row> sites = Rows("Site");
  ASSERT_EQ(sites.size(), 1u);
  EXPECT_EQ(sites[0].at("site_id"), "C1-S1");
  EXPECT_EQ(sites[0].at("company_id"), "C1");
  EXPECT_TRUE(Unfinished().empty());
  EXPECT_EQ(Counts()[kQueue]["Ready"], 2u);
}

TEST_F(ReplicaStoreTest, ApplyJobTwiceChangesNothingTheSecondTime) {
  std::vector<Job> jobs = StoreConfigurationAnd({NewCompany("C1")});
  ASSERT_EQ(jobs.size(), 1u);
  ASSERT_OK(store_->ApplyJob(jobs[0].id, kNowUs));

  ASSERT_OK(store_->ApplyJob(jobs[0].id, kNowUs));

  EXPECT_EQ(Rows("Company").size(), 1u);
  EXPECT_TRUE(Unfinished().empty());
  EXPECT_EQ(Counts()[kQueue]["Ready"], 1u);
}

TEST_F(ReplicaStoreTest, ApplyJobAppliesEveryChangeOfItsMessage) {
  Store({Configuration(1)});
  std::vector<Job> jobs =
      Store({Changes(2, {NewCompany("C1"), NewSite("C1-S1", "C1"), NewCustomer("CU-1", "C1")})});
  ASSERT_EQ(jobs.size(), 1u);

  ASSERT_OK(store_->ApplyJob(jobs[0].id, kNowUs));

  EXPECT_EQ(Rows("Company").size(), 1u);
  EXPECT_EQ(Rows("Site").size(), 1u);
  std::vector<Row> customers = Rows("Customer");
  ASSERT_EQ(customers.size(), 1u);
  EXPECT_EQ(customers[0].at("credit_limit"), "5000");
}

TEST_F(ReplicaStoreTest, JobAppliedBeforeItsParentFailsNamingBothRows) {
  std::vector<Job> jobs = StoreConfigurationAnd({NewCompany("C1"), NewSite("C1-S1", "C1")});
  ASSERT_EQ(jobs.size(), 2u);

  Status applied = store_->ApplyJob(jobs[1].id, kNowUs);  // the Site before its Company

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
  std::vector<Job> jobs = StoreConfigurationAnd({NewCompany("C1"), NewSite("C1-S1", "C1")});
  ASSERT_EQ(jobs.size(), 2u);
  ASSERT_FALSE(store_->ApplyJob(jobs[1].id, kNowUs).ok());

  ASSERT_OK(store_->ApplyJob(jobs[0].id, kNowUs));
  ASSERT_OK(store_->ApplyJob(jobs[1].id, kNowUs));

  EXPECT_EQ(Rows("Site").size(), 1u);
  EXPECT_TRUE(Unfinished().empty());
}

TEST_F(ReplicaStoreTest, FailedJobLeavesNothingApplied) {
  Store({Configuration(1)});
  // The first change is fine; the second references a company that does not exist.
  std::vector<Job> jobs = Store({Changes(2, {NewCompany("C2"), NewSite("C1-S1", "C1")})});
  ASSERT_EQ(jobs.size(), 1u);

  Status applied = store_->ApplyJob(jobs[0].id, kNowUs);

  ASSERT_FALSE(applied.ok());
  EXPECT_THAT(applied.message(), HasSubstr("change 2"));
  EXPECT_THAT(applied.message(), HasSubstr("Company[company_id=C1]"));
  EXPECT_TRUE(Rows("Company").empty()) << "the first change was not rolled back";
  EXPECT_TRUE(Rows("Site").empty());
  EXPECT_EQ(Unfinished()[jobs[0].id], JobState::kError);
}

TEST_F(ReplicaStoreTest, ApplyJobOfUnknownJobIsNotFound) {
  Store({Configuration(1)});
  Status applied = store_->ApplyJob(12345, kNowUs);
  ASSERT_FALSE(applied.ok());
  EXPECT_EQ(applied.code(), Status::Code::kNotFound);
  EXPECT_THAT(applied.message(), HasSubstr("12345"));
}

TEST_F(ReplicaStoreTest, CountJobsCountsByQueueAndState) {
  std::vector<Job> jobs =
      StoreConfigurationAnd({NewCompany("C1"), NewCustomer("CU-1", "C9"), NewCustomer("CU-2", "C1"),
                             NewCustomer("CU-3", "C1")});
  ASSERT_EQ(jobs.size(), 4u);
  ASSERT_OK(store_->ApplyJob(jobs[0].id, kNowUs));             // Ready
  ASSERT_FALSE(store_->ApplyJob(jobs[1].id, kNowUs).ok());     // Error: no company C9
  ASSERT_OK(store_->MarkExecuting(jobs[2].id, "R1", kNowUs));  // Executing
  // jobs[3] stays Posted.

  std::map<std::string, std::map<std::string, uint64_t>> expected = {
      {kConfigurationQueue, {{"Ready", 1}}},
      {kQueue, {{"Ready", 1}, {"Error", 1}, {"Executing", 1}, {"Posted", 1}}},
  };
  EXPECT_EQ(Counts(), expected);
  std::map<uint64_t, JobState> unfinished = Unfinished();
  EXPECT_EQ(unfinished.size(), 3u);
  EXPECT_EQ(unfinished[jobs[2].id], JobState::kExecuting);
}

TEST_F(ReplicaStoreTest, ReopenedStoreKeepsLastReceivedSequenceAndJobs) {
  std::vector<Job> jobs = StoreConfigurationAnd({NewCompany("C1"), NewSite("C1-S1", "C1")});
  ASSERT_EQ(jobs.size(), 2u);
  ASSERT_OK(store_->ApplyJob(jobs[0].id, kNowUs));

  Reopen();

  EXPECT_EQ(store_->LastReceivedSequence(), 3u);
  std::map<uint64_t, JobState> unfinished = Unfinished();
  ASSERT_EQ(unfinished.size(), 1u);
  EXPECT_EQ(unfinished.begin()->first, jobs[1].id);
  // The reopened store applies with the stored configuration and takes the next sequence.
  ASSERT_OK(store_->ApplyJob(jobs[1].id, kNowUs));
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

TEST_F(ReplicaStoreTest, WorkerOpenOfExistingDatabaseSeesItsJobs) {
  std::vector<Job> jobs = StoreConfigurationAnd({NewCompany("C1")});
  ASSERT_EQ(jobs.size(), 1u);

  auto worker = OpenSqliteReplicaStore(path_, {.create = false});
  ASSERT_OK(worker.status());
  ASSERT_OK((*worker)->ApplyJob(jobs[0].id, kNowUs));

  EXPECT_EQ(Rows("Company").size(), 1u);
  EXPECT_TRUE(Unfinished().empty());  // seen by the node's own connection
}

}  // namespace
}  // namespace ferry
