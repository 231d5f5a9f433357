// The batch queues' scheduler: job footprints from the catalog, strict order with back-off and
// held jobs, the process limit, pausing, dependency order by rows written and referenced,
// configuration barriers, and the states, counts and retry times it reports. Time is a fixed
// steady_clock point moved by adding durations.
#include "replica/batch_queues.h"

#include <gmock/gmock.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/catalog.h"
#include "replica/queue_config.h"
#include "test_util.h"

namespace ferry {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using Blocker = BatchQueues::Blocker;
using Ids = std::vector<uint64_t>;
using Settings = std::vector<std::pair<std::string, std::string>>;
using State = BatchQueues::State;
using TimePoint = BatchQueues::TimePoint;

const TimePoint kStart = TimePoint() + std::chrono::hours(24);
constexpr size_t kMany = 100;  // a `max` larger than any queue's process count

std::chrono::milliseconds Ms(int64_t ms) { return std::chrono::milliseconds(ms); }

// A blocker on `job_id` whose reason contains `reason_part`.
::testing::Matcher<const Blocker&> BlockedBy(uint64_t job_id, const std::string& reason_part) {
  return AllOf(Field(&Blocker::job_id, job_id), Field(&Blocker::reason, HasSubstr(reason_part)));
}

QueueSet Queues(const Settings& settings) {
  StatusOr<QueueSet> set = QueueSet::FromSettings(settings);
  EXPECT_OK(set.status());
  return set.ok() ? set.value() : QueueSet();
}

using testing::Change;

wire::LuChange NewCustomer(const std::string& id) {
  return Change("Customer", wire::NEW, {{"customer_id", id}},
                {{"company_id", "C1"}, {"name", "Customer " + id}});
}

wire::LuChange NewOrder(const std::string& order_no, const std::string& customer) {
  return Change("CustomerOrder", wire::NEW, {{"order_no", order_no}},
                {{"customer_id", customer}, {"site_id", "C1-S1"}, {"status", "Planned"}});
}

wire::LuChange NewLine(const std::string& order_no, const std::string& line_no,
                       const std::string& part_no) {
  return Change("CustomerOrderLine", wire::NEW, {{"order_no", order_no}, {"line_no", line_no}},
                {{"site_id", "C1-S1"}, {"part_no", part_no}, {"qty", "2"}});
}

wire::LuChange ModifyItemPrice(const std::string& part_no) {
  return Change("Item", wire::MODIFY, {{"site_id", "C1-S1"}, {"part_no", part_no}},
                {{"unit_price", "12.50"}});
}

wire::ReplicationMessage Message(const std::vector<wire::LuChange>& changes) {
  wire::ReplicationMessage message;
  message.set_site("SITE-A");
  message.set_message_class(wire::RECEIVE_MESSAGE);
  message.set_origin_site("MASTER");
  for (const auto& change : changes) *message.add_changes() = change;
  return message;
}

// A job that touches no rows (as a `none` or `strict` queue needs no footprint).
BatchQueues::NewJob PlainJob(uint64_t id, const std::string& queue = kReplicationQueue) {
  BatchQueues::NewJob job;
  job.id = id;
  job.sequence = 100 + id;
  job.queue = queue;
  return job;
}

class BatchQueuesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto catalog = Catalog::Load(testing::DeployedMasterConfiguration());
    ASSERT_OK(catalog.status());
    catalog_ = *catalog;
  }

  Footprint FootprintOfChanges(const std::vector<wire::LuChange>& changes) const {
    return FootprintOf(catalog_.get(), Message(changes));
  }

  // A REPLICATION job applying `changes`, with the footprint the catalog gives them.
  BatchQueues::NewJob JobOf(uint64_t id, const std::vector<wire::LuChange>& changes) const {
    BatchQueues::NewJob job = PlainJob(id);
    job.footprint = FootprintOfChanges(changes);
    return job;
  }

  // A Receive_Configuration job in DEFAULT, as the replica adds it.
  BatchQueues::NewJob ConfigurationJob(uint64_t id) const {
    wire::ReplicationMessage message;
    message.set_message_class(wire::RECEIVE_CONFIGURATION);
    *message.mutable_configuration() = catalog_->proto();
    BatchQueues::NewJob job = PlainJob(id, kDefaultQueue);
    job.barrier = true;
    job.footprint = FootprintOf(catalog_.get(), message);
    return job;
  }

  std::shared_ptr<const Catalog> catalog_;
};

// --- FootprintOf ---

TEST_F(BatchQueuesTest, FootprintOfNewRowWritesItsKeyAndReferencesWhatItSets) {
  Footprint footprint = FootprintOfChanges({NewOrder("O-1", "CU-1")});
  EXPECT_FALSE(footprint.everything);
  EXPECT_THAT(footprint.writes, ElementsAre("CustomerOrder/O-1"));
  EXPECT_THAT(footprint.references, ElementsAre("CustomerOrder/*", "Customer/CU-1", "Site/C1-S1"));
}

TEST_F(BatchQueuesTest, FootprintOfLineUsesTwoColumnKeysInKeyOrder) {
  Footprint footprint = FootprintOfChanges({NewLine("O-1", "3", "P-9")});
  EXPECT_FALSE(footprint.everything);
  EXPECT_THAT(footprint.writes, ElementsAre("CustomerOrderLine/O-1/3"));
  EXPECT_THAT(footprint.references,
              ElementsAre("CustomerOrderLine/*", "CustomerOrder/O-1", "Item/C1-S1/P-9"));
}

TEST_F(BatchQueuesTest, FootprintOfModifyReferencesOnlyWhatTheChangeSets) {
  Footprint status_only = FootprintOfChanges(
      {Change("CustomerOrder", wire::MODIFY, {{"order_no", "O-1"}}, {{"status", "Released"}})});
  EXPECT_THAT(status_only.writes, ElementsAre("CustomerOrder/O-1"));
  EXPECT_THAT(status_only.references, ElementsAre("CustomerOrder/*"));

  Footprint new_customer = FootprintOfChanges(
      {Change("CustomerOrder", wire::MODIFY, {{"order_no", "O-1"}}, {{"customer_id", "CU-2"}})});
  EXPECT_THAT(new_customer.writes, ElementsAre("CustomerOrder/O-1"));
  EXPECT_THAT(new_customer.references, ElementsAre("CustomerOrder/*", "Customer/CU-2"));

  // A reference whose columns are part of the key is always set.
  Footprint item = FootprintOfChanges({ModifyItemPrice("P-1")});
  EXPECT_THAT(item.writes, ElementsAre("Item/C1-S1/P-1"));
  EXPECT_THAT(item.references, ElementsAre("Item/*", "Site/C1-S1"));
}

TEST_F(BatchQueuesTest, FootprintOfRemoveWritesItsKeyAndTheRowSetsOfItsChildren) {
  Footprint footprint =
      FootprintOfChanges({Change("CustomerOrder", wire::REMOVE, {{"order_no", "O-1"}})});
  EXPECT_FALSE(footprint.everything);
  // Which lines referenced the order is not in the change: it locks every line's row set.
  EXPECT_THAT(footprint.writes, ElementsAre("CustomerOrder/O-1", "CustomerOrderLine/*"));
  EXPECT_THAT(footprint.references, ElementsAre("CustomerOrder/*"));
}

TEST_F(BatchQueuesTest, FootprintOfSeveralChangesCollectsEachChange) {
  Footprint footprint = FootprintOfChanges(
      {NewCustomer("CU-1"), NewOrder("O-1", "CU-1"), NewLine("O-1", "1", "P-1")});
  EXPECT_THAT(footprint.writes,
              ElementsAre("Customer/CU-1", "CustomerOrder/O-1", "CustomerOrderLine/O-1/1"));
  EXPECT_THAT(
      footprint.references,
      ElementsAre("Customer/*", "Company/C1", "CustomerOrder/*", "Customer/CU-1", "Site/C1-S1",
                  "CustomerOrderLine/*", "CustomerOrder/O-1", "Item/C1-S1/P-1"));
}

TEST_F(BatchQueuesTest, FootprintOfConfigurationOrWithoutCatalogIsEverything) {
  wire::ReplicationMessage configuration;
  configuration.set_message_class(wire::RECEIVE_CONFIGURATION);
  *configuration.mutable_configuration() = catalog_->proto();
  EXPECT_TRUE(FootprintOf(catalog_.get(), configuration).everything);

  wire::ReplicationMessage message = Message({NewCustomer("CU-1")});
  EXPECT_FALSE(FootprintOf(catalog_.get(), message).everything);
  EXPECT_TRUE(FootprintOf(nullptr, message).everything);

  EXPECT_TRUE(FootprintOfChanges({Change("Gadget", wire::NEW, {{"id", "G-1"}})}).everything);
}

// --- strict ---

TEST_F(BatchQueuesTest, StrictRunsOneJobAtATimeInSequenceOrder) {
  BatchQueues queues(QueueSet{});
  for (uint64_t id : {1, 2, 3}) queues.Add(PlainJob(id));
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{1}));
  EXPECT_EQ(queues.StateOf(2), State::kWaiting);
  EXPECT_THAT(queues.WaitsFor(2), ElementsAre(BlockedBy(1, "strict order")));
  EXPECT_THAT(queues.WaitsFor(3), ElementsAre(BlockedBy(2, "strict order")));

  queues.Started(1);
  EXPECT_TRUE(queues.Runnable(kReplicationQueue, kStart, kMany).empty());
  queues.Succeeded(1);
  EXPECT_FALSE(queues.Contains(1));
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{2}));
  EXPECT_TRUE(queues.WaitsFor(2).empty());
  queues.Started(2);
  queues.Succeeded(2);
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{3}));
}

TEST_F(BatchQueuesTest, StrictRunsOneJobAtATimeEvenWithSeveralProcesses) {
  BatchQueues queues(Queues({{"queue.REPLICATION.processes", "4"}}));
  // Jobs with unrelated footprints: strict order ignores them.
  queues.Add(JobOf(1, {NewCustomer("CU-1")}));
  queues.Add(JobOf(2, {NewCustomer("CU-2")}));
  queues.Add(JobOf(3, {NewCustomer("CU-3")}));
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{1}));
  queues.Started(1);
  EXPECT_TRUE(queues.Runnable(kReplicationQueue, kStart, kMany).empty());
  EXPECT_EQ(queues.View(kReplicationQueue).executing, 1);
}

TEST_F(BatchQueuesTest, StrictFailedJobBacksOffForRetryDelayWhileLaterJobsWait) {
  BatchQueues queues(Queues({{"queue.REPLICATION.retry-attempts", "3"},
                             {"queue.REPLICATION.retry-delay-ms", "500"},
                             {"queue.REPLICATION.retry-multiplier", "2"}}));
  for (uint64_t id : {1, 2, 3}) queues.Add(PlainJob(id));
  queues.Started(1);
  EXPECT_FALSE(queues.Failed(1, kStart));
  EXPECT_EQ(queues.StateOf(1), State::kError);
  EXPECT_FALSE(queues.Held(1));
  EXPECT_EQ(queues.RetryAt(1), kStart + Ms(500));
  EXPECT_EQ(queues.View(kReplicationQueue).executing, 0);

  EXPECT_TRUE(queues.Runnable(kReplicationQueue, kStart, kMany).empty());
  EXPECT_TRUE(queues.Runnable(kReplicationQueue, kStart + Ms(499), kMany).empty());
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart + Ms(500), kMany), (Ids{1}));
  EXPECT_EQ(queues.StateOf(2), State::kWaiting);
  EXPECT_THAT(queues.WaitsFor(2), ElementsAre(BlockedBy(1, "strict order")));

  // The second failure waits the delay times the multiplier.
  const TimePoint second = kStart + Ms(600);
  queues.Started(1);
  EXPECT_FALSE(queues.Failed(1, second));
  EXPECT_EQ(queues.RetryAt(1), second + Ms(1000));
  EXPECT_TRUE(queues.Runnable(kReplicationQueue, second + Ms(999), kMany).empty());
  EXPECT_EQ(queues.Runnable(kReplicationQueue, second + Ms(1000), kMany), (Ids{1}));
  EXPECT_THAT(queues.WaitsFor(3), ElementsAre(BlockedBy(2, "strict order")));
}

TEST_F(BatchQueuesTest, StrictJobHeldAfterLastAttemptHoldsTheQueue) {
  BatchQueues queues(Queues(
      {{"queue.REPLICATION.retry-attempts", "2"}, {"queue.REPLICATION.retry-delay-ms", "100"}}));
  queues.Add(PlainJob(1));
  queues.Add(PlainJob(2));
  queues.Started(1);
  EXPECT_FALSE(queues.Failed(1, kStart));
  queues.Started(1);
  EXPECT_TRUE(queues.Failed(1, kStart + Ms(100)));
  EXPECT_TRUE(queues.Held(1));
  EXPECT_EQ(queues.StateOf(1), State::kError);
  EXPECT_EQ(queues.RetryAt(1), std::nullopt);
  EXPECT_EQ(queues.NextRetry(), std::nullopt);
  EXPECT_TRUE(
      queues.Runnable(kReplicationQueue, kStart + std::chrono::hours(24 * 365), kMany).empty());
  EXPECT_EQ(queues.StateOf(2), State::kWaiting);
  EXPECT_THAT(queues.WaitsFor(2), ElementsAre(BlockedBy(1, "strict order")));
}

TEST_F(BatchQueuesTest, RetryMakesHeldJobRunnableAtOnceWithFreshBudget) {
  BatchQueues queues(Queues(
      {{"queue.REPLICATION.retry-attempts", "2"}, {"queue.REPLICATION.retry-delay-ms", "100"}}));
  queues.Add(PlainJob(1));
  queues.Add(PlainJob(2));
  queues.Started(1);
  EXPECT_FALSE(queues.Failed(1, kStart));
  queues.Started(1);
  ASSERT_TRUE(queues.Failed(1, kStart + Ms(100)));

  const TimePoint later = kStart + std::chrono::minutes(5);
  ASSERT_OK(queues.Retry(1, later));
  EXPECT_FALSE(queues.Held(1));
  EXPECT_EQ(queues.Runnable(kReplicationQueue, later, kMany), (Ids{1}));
  // A fresh budget: the next failure backs off for the first delay and does not hold it.
  queues.Started(1);
  EXPECT_FALSE(queues.Failed(1, later));
  EXPECT_EQ(queues.RetryAt(1), later + Ms(100));
  EXPECT_EQ(queues.StateOf(2), State::kWaiting);
}

TEST_F(BatchQueuesTest, RetryOfBackingOffJobMakesItRunnableAtOnce) {
  BatchQueues queues(Queues({{"queue.REPLICATION.retry-delay-ms", "10000"}}));
  queues.Add(PlainJob(1));
  queues.Started(1);
  queues.Failed(1, kStart);
  EXPECT_TRUE(queues.Runnable(kReplicationQueue, kStart + Ms(1), kMany).empty());
  ASSERT_OK(queues.Retry(1, kStart + Ms(1)));
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart + Ms(1), kMany), (Ids{1}));
}

TEST_F(BatchQueuesTest, SkipOfHeldJobReleasesTheNextJob) {
  BatchQueues queues(Queues({{"queue.REPLICATION.retry-attempts", "1"}}));
  for (uint64_t id : {1, 2, 3}) queues.Add(PlainJob(id));
  queues.Started(1);
  ASSERT_TRUE(queues.Failed(1, kStart));
  ASSERT_OK(queues.Skip(1));
  EXPECT_FALSE(queues.Contains(1));
  EXPECT_EQ(queues.size(), 2u);
  EXPECT_EQ(queues.StateOf(2), State::kPosted);
  EXPECT_TRUE(queues.WaitsFor(2).empty());
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{2}));
  EXPECT_EQ(queues.StateOf(3), State::kWaiting);
}

TEST_F(BatchQueuesTest, SkipAndRetryRefuseJobNotInError) {
  BatchQueues queues(QueueSet{});
  queues.Add(PlainJob(1));
  queues.Add(PlainJob(2));

  Status skip_posted = queues.Skip(1);
  EXPECT_EQ(skip_posted.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(skip_posted.message(), HasSubstr("Posted"));
  Status retry_posted = queues.Retry(1, kStart);
  EXPECT_EQ(retry_posted.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(retry_posted.message(), HasSubstr("Posted"));

  Status skip_waiting = queues.Skip(2);
  EXPECT_EQ(skip_waiting.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(skip_waiting.message(), HasSubstr("Waiting"));

  queues.Started(1);
  Status skip_executing = queues.Skip(1);
  EXPECT_EQ(skip_executing.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(skip_executing.message(), HasSubstr("Executing"));
  EXPECT_EQ(queues.Retry(1, kStart).code(), Status::Code::kInvalidArgument);

  EXPECT_TRUE(queues.Contains(1));
  EXPECT_TRUE(queues.Contains(2));
  EXPECT_EQ(queues.StateOf(1), State::kExecuting);
  EXPECT_EQ(queues.StateOf(2), State::kWaiting);
}

TEST_F(BatchQueuesTest, SkipAndRetryOfUnknownJobAreNotFound) {
  BatchQueues queues(QueueSet{});
  queues.Add(PlainJob(1));
  EXPECT_EQ(queues.Skip(99).code(), Status::Code::kNotFound);
  EXPECT_EQ(queues.Retry(99, kStart).code(), Status::Code::kNotFound);
  EXPECT_FALSE(queues.Contains(99));
  EXPECT_TRUE(queues.WaitsFor(99).empty());
}

// --- process limit, pause ---

TEST_F(BatchQueuesTest, NoneQueueRunsNoMoreJobsThanItsProcesses) {
  BatchQueues queues(
      Queues({{"queue.REPLICATION.processes", "2"}, {"queue.REPLICATION.ordering", "none"}}));
  // All five write the same row: `none` does not order them.
  for (uint64_t id : {1, 2, 3, 4, 5}) queues.Add(JobOf(id, {NewCustomer("CU-1")}));
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, 5), (Ids{1, 2}));
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, 1), (Ids{1}));
  EXPECT_TRUE(queues.Runnable(kReplicationQueue, kStart, 0).empty());

  queues.Started(1);
  queues.Started(2);
  EXPECT_EQ(queues.View(kReplicationQueue).executing, 2);
  EXPECT_TRUE(queues.Runnable(kReplicationQueue, kStart, 5).empty());
  queues.Succeeded(1);
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, 5), (Ids{3}));

  ASSERT_OK(queues.SetProcesses(kReplicationQueue, 3));
  EXPECT_EQ(queues.View(kReplicationQueue).config->processes, 3);
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, 5), (Ids{3, 4}));
}

TEST_F(BatchQueuesTest, SetProcessesRefusesOutOfRangeAndUnknownQueue) {
  BatchQueues queues(QueueSet{});
  EXPECT_EQ(queues.SetProcesses(kReplicationQueue, 0).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(queues.SetProcesses(kReplicationQueue, 65).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(queues.View(kReplicationQueue).config->processes, 1);
  EXPECT_EQ(queues.SetProcesses("NOPE", 2).code(), Status::Code::kNotFound);
  ASSERT_OK(queues.SetProcesses(kReplicationQueue, 64));
  EXPECT_EQ(queues.View(kReplicationQueue).config->processes, 64);
}

TEST_F(BatchQueuesTest, LowerProcessCountStopsNewStartsUntilBelowIt) {
  BatchQueues queues(
      Queues({{"queue.REPLICATION.processes", "3"}, {"queue.REPLICATION.ordering", "none"}}));
  for (uint64_t id : {1, 2, 3, 4}) queues.Add(PlainJob(id));
  for (uint64_t id : {1, 2, 3}) queues.Started(id);
  ASSERT_OK(queues.SetProcesses(kReplicationQueue, 1));
  EXPECT_TRUE(queues.Runnable(kReplicationQueue, kStart, kMany).empty());
  queues.Succeeded(1);
  queues.Succeeded(2);
  EXPECT_TRUE(queues.Runnable(kReplicationQueue, kStart, kMany).empty());
  queues.Succeeded(3);
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{4}));
}

TEST_F(BatchQueuesTest, LostJobRunsAgainAtOnceWithoutCountingAFailure) {
  BatchQueues queues(Queues({{"queue.REPLICATION.retry-attempts", "2"}}));
  queues.Add(PlainJob(1));
  queues.Started(1);
  queues.Lost(1);
  EXPECT_EQ(queues.StateOf(1), State::kPosted);
  EXPECT_EQ(queues.RetryAt(1), std::nullopt);
  EXPECT_EQ(queues.View(kReplicationQueue).executing, 0);
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{1}));
  // Had the loss counted, this failure would be the second of two and hold the job.
  queues.Started(1);
  EXPECT_FALSE(queues.Failed(1, kStart));
  EXPECT_FALSE(queues.Held(1));
}

TEST_F(BatchQueuesTest, PausedQueueHasNothingRunnableUntilResumed) {
  BatchQueues queues(QueueSet{});
  queues.Add(PlainJob(1));
  queues.Add(PlainJob(2, kDefaultQueue));
  ASSERT_OK(queues.SetPaused(kReplicationQueue, true));
  EXPECT_TRUE(queues.View(kReplicationQueue).paused);
  EXPECT_TRUE(queues.Runnable(kReplicationQueue, kStart, kMany).empty());
  EXPECT_EQ(queues.Runnable(kDefaultQueue, kStart, kMany), (Ids{2}));
  EXPECT_EQ(queues.StateOf(1), State::kPosted);
  ASSERT_OK(queues.SetPaused(kReplicationQueue, false));
  EXPECT_FALSE(queues.View(kReplicationQueue).paused);
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{1}));
}

TEST_F(BatchQueuesTest, UnknownQueueIsNotFoundAndHasNothingRunnable) {
  BatchQueues queues(QueueSet{});
  EXPECT_EQ(queues.SetPaused("NOPE", true).code(), Status::Code::kNotFound);
  EXPECT_TRUE(queues.Runnable("NOPE", kStart, kMany).empty());
}

// --- dependency ---

class DependencyTest : public BatchQueuesTest {
 protected:
  static QueueSet DependencyQueues(int processes, int attempts = 5) {
    return Queues({{"queue.REPLICATION.processes", std::to_string(processes)},
                   {"queue.REPLICATION.ordering", "dependency"},
                   {"queue.REPLICATION.retry-attempts", std::to_string(attempts)}});
  }
};

TEST_F(DependencyTest, OrderWaitsForItsCustomerWhileUnrelatedJobRuns) {
  BatchQueues queues(DependencyQueues(2));
  queues.Add(JobOf(1, {NewCustomer("CU-1")}));
  queues.Add(JobOf(2, {NewOrder("O-1", "CU-1")}));
  queues.Add(JobOf(3, {NewCustomer("CU-2")}));
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{1, 3}));
  EXPECT_EQ(queues.StateOf(2), State::kWaiting);
  EXPECT_THAT(queues.WaitsFor(2), ElementsAre(BlockedBy(1, "Customer/CU-1")));
  EXPECT_TRUE(queues.WaitsFor(3).empty());

  queues.Started(1);
  queues.Started(3);
  queues.Succeeded(1);
  EXPECT_EQ(queues.StateOf(2), State::kPosted);
  EXPECT_TRUE(queues.WaitsFor(2).empty());
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{2}));
}

TEST_F(DependencyTest, SecondWriteOfARowWaitsForTheFirst) {
  BatchQueues queues(DependencyQueues(4));
  queues.Add(JobOf(1, {NewCustomer("CU-1")}));
  queues.Add(JobOf(
      2, {Change("Customer", wire::MODIFY, {{"customer_id", "CU-1"}}, {{"credit_limit", "900"}})}));
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{1}));
  EXPECT_THAT(queues.WaitsFor(2), ElementsAre(BlockedBy(1, "Customer/CU-1")));
}

TEST_F(DependencyTest, RemovingCustomerWaitsForOrdersThatReferenceIt) {
  BatchQueues queues(DependencyQueues(4));
  queues.Add(JobOf(1, {NewOrder("O-1", "CU-1")}));
  queues.Add(JobOf(2, {NewOrder("O-2", "CU-1")}));
  queues.Add(JobOf(3, {Change("Customer", wire::REMOVE, {{"customer_id", "CU-1"}})}));
  // Two references of one row do not conflict.
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{1, 2}));
  EXPECT_THAT(queues.WaitsFor(3),
              UnorderedElementsAre(BlockedBy(1, "Customer/CU-1"), BlockedBy(2, "Customer/CU-1")));
  queues.Started(1);
  queues.Started(2);
  queues.Succeeded(1);
  EXPECT_EQ(queues.StateOf(3), State::kWaiting);
  EXPECT_THAT(queues.WaitsFor(3), ElementsAre(BlockedBy(2, "Customer/CU-1")));
  EXPECT_TRUE(queues.Runnable(kReplicationQueue, kStart, kMany).empty());
  queues.Succeeded(2);
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{3}));
}

TEST_F(DependencyTest, RemovingCustomerWaitsForEarlierRemovalOfItsOrder) {
  // The order's REMOVE names only its key, not the customer it referenced.
  BatchQueues queues(DependencyQueues(4));
  queues.Add(JobOf(1, {Change("CustomerOrder", wire::REMOVE, {{"order_no", "O-1"}})}));
  queues.Add(JobOf(2, {Change("Customer", wire::REMOVE, {{"customer_id", "CU-1"}})}));
  queues.Add(JobOf(3, {NewCustomer("CU-2")}));
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{1, 3}));
  EXPECT_THAT(queues.WaitsFor(2), ElementsAre(BlockedBy(1, "CustomerOrder/*")));
  // And an order changed after the removal waits for it.
  queues.Add(JobOf(4, {NewOrder("O-9", "CU-2")}));
  EXPECT_THAT(queues.WaitsFor(4), ::testing::Contains(BlockedBy(2, "CustomerOrder/*")));
}

TEST_F(DependencyTest, ItemModifyWaitsForEarlierLinesAndLaterLinesWaitForIt) {
  BatchQueues queues(DependencyQueues(4));
  queues.Add(JobOf(1, {NewLine("O-1", "1", "P-1")}));
  queues.Add(JobOf(2, {ModifyItemPrice("P-1")}));
  queues.Add(JobOf(3, {NewLine("O-2", "1", "P-1")}));
  queues.Add(JobOf(4, {NewLine("O-3", "1", "P-2")}));  // another item
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{1, 4}));
  EXPECT_THAT(queues.WaitsFor(2), ElementsAre(BlockedBy(1, "Item/C1-S1/P-1")));
  EXPECT_THAT(queues.WaitsFor(3), ElementsAre(BlockedBy(2, "Item/C1-S1/P-1")));

  queues.Started(1);
  queues.Succeeded(1);
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{2, 4}));
  EXPECT_EQ(queues.StateOf(3), State::kWaiting);
  queues.Started(2);
  queues.Succeeded(2);
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{3, 4}));
}

TEST_F(DependencyTest, FailedJobHoldsOnlyItsDependents) {
  BatchQueues queues(DependencyQueues(2, /*attempts=*/1));
  queues.Add(JobOf(1, {NewCustomer("CU-1")}));
  queues.Add(JobOf(2, {NewOrder("O-1", "CU-1")}));
  queues.Add(JobOf(3, {NewCustomer("CU-2")}));
  ASSERT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{1, 3}));
  queues.Started(1);
  queues.Started(3);
  ASSERT_TRUE(queues.Failed(1, kStart));
  EXPECT_TRUE(queues.Held(1));

  queues.Succeeded(3);
  queues.Add(JobOf(4, {NewCustomer("CU-3")}));
  const TimePoint later = kStart + std::chrono::hours(1);
  EXPECT_EQ(queues.Runnable(kReplicationQueue, later, kMany), (Ids{4}));
  EXPECT_EQ(queues.StateOf(2), State::kWaiting);
  EXPECT_THAT(queues.WaitsFor(2), ElementsAre(BlockedBy(1, "Customer/CU-1")));

  ASSERT_OK(queues.Skip(1));
  EXPECT_EQ(queues.Runnable(kReplicationQueue, later, kMany), (Ids{2, 4}));
}

// --- barriers ---

TEST_F(DependencyTest, ConfigurationJobWaitsForEarlierJobsAndLaterJobsWaitForIt) {
  BatchQueues queues(DependencyQueues(2));
  queues.Add(JobOf(1, {NewCustomer("CU-1")}));
  queues.Add(JobOf(2, {NewCustomer("CU-2")}));
  queues.Add(ConfigurationJob(3));
  queues.Add(JobOf(4, {NewCustomer("CU-3")}));
  queues.Add(PlainJob(5, kDefaultQueue));

  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{1, 2}));
  EXPECT_TRUE(queues.Runnable(kDefaultQueue, kStart, kMany).empty());
  EXPECT_EQ(queues.StateOf(3), State::kWaiting);
  EXPECT_THAT(queues.WaitsFor(3), ElementsAre(Field(&Blocker::job_id, uint64_t{1}),
                                              Field(&Blocker::job_id, uint64_t{2})));
  EXPECT_THAT(queues.WaitsFor(4), ElementsAre(BlockedBy(3, "configuration")));
  EXPECT_THAT(queues.WaitsFor(5), ElementsAre(BlockedBy(3, "configuration")));

  for (uint64_t id : {1, 2}) {
    queues.Started(id);
    queues.Succeeded(id);
  }
  EXPECT_EQ(queues.Runnable(kDefaultQueue, kStart, kMany), (Ids{3}));
  EXPECT_TRUE(queues.Runnable(kReplicationQueue, kStart, kMany).empty());
  queues.Started(3);
  queues.Succeeded(3);
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{4}));
  EXPECT_EQ(queues.Runnable(kDefaultQueue, kStart, kMany), (Ids{5}));
}

TEST_F(BatchQueuesTest, ConfigurationBarrierOrdersPlainParallelQueues) {
  BatchQueues queues(
      Queues({{"queue.REPLICATION.processes", "4"}, {"queue.REPLICATION.ordering", "none"}}));
  queues.Add(PlainJob(1));
  queues.Add(ConfigurationJob(2));
  queues.Add(PlainJob(3));
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{1}));
  EXPECT_TRUE(queues.Runnable(kDefaultQueue, kStart, kMany).empty());
  EXPECT_THAT(queues.WaitsFor(3), ElementsAre(BlockedBy(2, "configuration")));
  queues.Started(1);
  queues.Succeeded(1);
  EXPECT_EQ(queues.Runnable(kDefaultQueue, kStart, kMany), (Ids{2}));
  queues.Started(2);
  queues.Succeeded(2);
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{3}));
}

TEST_F(DependencyTest, JobWithUnknownFootprintIsOrderedLikeABarrier) {
  BatchQueues queues(DependencyQueues(4));
  queues.Add(JobOf(1, {NewCustomer("CU-1")}));
  BatchQueues::NewJob unknown = PlainJob(2);
  unknown.footprint = FootprintOf(nullptr, Message({NewCustomer("CU-2")}));
  ASSERT_TRUE(unknown.footprint.everything);
  queues.Add(unknown);
  queues.Add(JobOf(3, {NewCustomer("CU-3")}));
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{1}));
  EXPECT_THAT(queues.WaitsFor(2), ElementsAre(Field(&Blocker::job_id, uint64_t{1})));
  EXPECT_THAT(queues.WaitsFor(3), ElementsAre(Field(&Blocker::job_id, uint64_t{2})));
}

// --- states, counts, retry times ---

TEST_F(BatchQueuesTest, StateOfFollowsAJobFromPostedToError) {
  EXPECT_STREQ(BatchQueues::StateName(State::kPosted), "Posted");
  EXPECT_STREQ(BatchQueues::StateName(State::kWaiting), "Waiting");
  EXPECT_STREQ(BatchQueues::StateName(State::kExecuting), "Executing");
  EXPECT_STREQ(BatchQueues::StateName(State::kError), "Error");

  BatchQueues queues(QueueSet{});
  queues.Add(PlainJob(1));
  queues.Add(PlainJob(2));
  EXPECT_EQ(queues.StateOf(1), State::kPosted);
  EXPECT_EQ(queues.StateOf(2), State::kWaiting);
  queues.Started(1);
  EXPECT_EQ(queues.StateOf(1), State::kExecuting);
  queues.Failed(1, kStart);
  EXPECT_EQ(queues.StateOf(1), State::kError);
  EXPECT_EQ(queues.StateOf(2), State::kWaiting);
}

TEST_F(BatchQueuesTest, CountsUnfinishedJobsByQueueAndState) {
  BatchQueues queues(QueueSet{});
  EXPECT_TRUE(queues.Counts().empty());
  for (uint64_t id : {1, 2, 3}) queues.Add(PlainJob(id));
  queues.Add(PlainJob(4, kDefaultQueue));
  queues.Add(PlainJob(5, kDefaultQueue));
  queues.Started(4);
  using Counts = std::map<std::string, std::map<std::string, uint64_t>>;
  EXPECT_EQ(queues.Counts(), (Counts{{kReplicationQueue, {{"Posted", 1}, {"Waiting", 2}}},
                                     {kDefaultQueue, {{"Executing", 1}, {"Waiting", 1}}}}));
  queues.Started(1);
  queues.Failed(1, kStart);
  queues.Succeeded(4);
  EXPECT_EQ(queues.Counts(), (Counts{{kReplicationQueue, {{"Error", 1}, {"Waiting", 2}}},
                                     {kDefaultQueue, {{"Posted", 1}}}}));
}

// A batch whose send failed was not an attempt: only Started counts one.
TEST_F(BatchQueuesTest, OnlyAStartedJobCountsAnAttempt) {
  BatchQueues queues(Queues({{"queue.REPLICATION.retry-attempts", "3"}}));
  queues.Add(PlainJob(1));
  EXPECT_EQ(queues.NextAttempt(1), 1);
  EXPECT_EQ(queues.NextAttempt(1), 1) << "asking does not count";
  queues.Started(1);
  EXPECT_EQ(queues.NextAttempt(1), 2);
  queues.Lost(1);
  EXPECT_EQ(queues.NextAttempt(1), 2);
  queues.Started(1);
  queues.Failed(1, kStart);
  EXPECT_EQ(queues.NextAttempt(1), 3);
}

TEST_F(BatchQueuesTest, NewestInListsJobsOfOneStateNewestFirst) {
  BatchQueues queues(QueueSet{});
  for (uint64_t id : {1, 2, 3}) queues.Add(PlainJob(id));
  queues.Add(PlainJob(4, kDefaultQueue));
  queues.Add(PlainJob(5, kDefaultQueue));
  using Ids = std::vector<uint64_t>;
  EXPECT_EQ(queues.NewestIn("", "Waiting", 10), (Ids{5, 3, 2}));
  EXPECT_EQ(queues.NewestIn("", "Waiting", 2), (Ids{5, 3}));
  EXPECT_EQ(queues.NewestIn(kReplicationQueue, "Waiting", 10), (Ids{3, 2}));
  EXPECT_EQ(queues.NewestIn("", "Posted", 10), (Ids{4, 1}));
  queues.Started(1);
  queues.Failed(1, kStart);
  EXPECT_EQ(queues.NewestIn("", "Error", 10), (Ids{1}));
  EXPECT_EQ(queues.NewestIn(kDefaultQueue, "Error", 10), Ids{});
  EXPECT_EQ(queues.NewestIn("", "Ready", 10), Ids{}) << "finished jobs are not the scheduler's";
}

TEST_F(BatchQueuesTest, OldestUnfinishedSequenceFollowsFinishedJobs) {
  BatchQueues queues(
      Queues({{"queue.REPLICATION.processes", "4"}, {"queue.REPLICATION.ordering", "none"}}));
  EXPECT_EQ(queues.OldestUnfinishedSequence(), std::nullopt);
  for (uint64_t id : {1, 2, 3}) queues.Add(PlainJob(id));
  EXPECT_EQ(queues.OldestUnfinishedSequence(), 101u);
  queues.Started(2);
  queues.Succeeded(2);  // a newer job finishing first leaves the oldest as it was
  EXPECT_EQ(queues.OldestUnfinishedSequence(), 101u);
  queues.Started(1);
  queues.Succeeded(1);
  EXPECT_EQ(queues.OldestUnfinishedSequence(), 103u);
  queues.Started(3);
  queues.Succeeded(3);
  EXPECT_EQ(queues.OldestUnfinishedSequence(), std::nullopt);
  EXPECT_EQ(queues.size(), 0u);
}

TEST_F(BatchQueuesTest, NextRetryIsTheEarliestBackingOffJob) {
  BatchQueues queues(Queues({{"queue.REPLICATION.processes", "4"},
                             {"queue.REPLICATION.ordering", "none"},
                             {"queue.REPLICATION.retry-delay-ms", "1000"},
                             {"queue.DEFAULT.retry-delay-ms", "300"},
                             {"queue.DEFAULT.retry-attempts", "1"}}));
  for (uint64_t id : {1, 2}) queues.Add(PlainJob(id));
  queues.Add(PlainJob(3, kDefaultQueue));
  EXPECT_EQ(queues.NextRetry(), std::nullopt);

  queues.Started(1);
  queues.Failed(1, kStart + Ms(200));
  EXPECT_EQ(queues.NextRetry(), kStart + Ms(1200));
  queues.Started(2);
  queues.Failed(2, kStart);
  EXPECT_EQ(queues.NextRetry(), kStart + Ms(1000));
  // A held job is not retried by time.
  queues.Started(3);
  ASSERT_TRUE(queues.Failed(3, kStart));
  EXPECT_EQ(queues.NextRetry(), kStart + Ms(1000));
  // Once started again, a job is no longer waiting for its retry.
  queues.Started(2);
  EXPECT_EQ(queues.NextRetry(), kStart + Ms(1200));
  queues.Succeeded(2);
  EXPECT_EQ(queues.NextRetry(), kStart + Ms(1200));
}

TEST_F(BatchQueuesTest, JobReaddedAfterRestartWithAttemptsUsedUpStartsHeld) {
  BatchQueues queues(Queues({{"queue.REPLICATION.retry-attempts", "3"}}));
  BatchQueues::NewJob held = PlainJob(1);
  held.failed = true;
  held.failures = 3;
  queues.Add(held);
  queues.Add(PlainJob(2));
  EXPECT_TRUE(queues.Held(1));
  EXPECT_EQ(queues.StateOf(1), State::kError);
  EXPECT_EQ(queues.RetryAt(1), std::nullopt);
  EXPECT_TRUE(queues.Runnable(kReplicationQueue, kStart + std::chrono::hours(48), kMany).empty());
  EXPECT_EQ(queues.StateOf(2), State::kWaiting);
  ASSERT_OK(queues.Retry(1, kStart));
  EXPECT_EQ(queues.Runnable(kReplicationQueue, kStart, kMany), (Ids{1}));
}

TEST_F(BatchQueuesTest, JobReaddedAfterRestartWithAttemptsLeftIsNotHeld) {
  BatchQueues queues(Queues({{"queue.REPLICATION.retry-attempts", "3"}}));
  BatchQueues::NewJob failed = PlainJob(1);
  failed.failed = true;
  failed.failures = 2;
  queues.Add(failed);
  EXPECT_FALSE(queues.Held(1));
  EXPECT_EQ(queues.StateOf(1), State::kError);
  // One attempt is left: the next failure is the last and holds it.
  queues.Started(1);
  EXPECT_TRUE(queues.Failed(1, kStart));
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// --- batches ---

using Batches = std::vector<std::vector<uint64_t>>;

TEST_F(BatchQueuesTest, StrictBatchIsTheChainInOrderUpToItsSize) {
  BatchQueues queues(Queues({}));
  for (uint64_t id : {1, 2, 3, 4, 5}) queues.Add(PlainJob(id));
  EXPECT_EQ(queues.RunnableBatches(kReplicationQueue, kStart, 4, 3), (Batches{{1, 2, 3}}));
  queues.Started(Ids{1, 2, 3});
  // One process, busy with the batch, however long it is.
  EXPECT_TRUE(queues.RunnableBatches(kReplicationQueue, kStart, 4, 3).empty());
  for (uint64_t id : {1, 2, 3}) queues.Succeeded(id);
  EXPECT_EQ(queues.RunnableBatches(kReplicationQueue, kStart, 4, 10), (Batches{{4, 5}}));
}

TEST_F(BatchQueuesTest, JobsNotAttemptedInAFailedBatchRunAgainAndTheProcessIsFree) {
  BatchQueues queues(Queues({}));
  for (uint64_t id : {1, 2, 3}) queues.Add(PlainJob(id));
  queues.Started(Ids{1, 2, 3});
  queues.Succeeded(1);
  queues.Failed(2, kStart);  // 3 was not attempted: the replica reports it lost
  queues.Lost(3);
  EXPECT_EQ(queues.View(kReplicationQueue).executing, 0);
  EXPECT_EQ(queues.StateOf(3), State::kWaiting);  // strict: behind the failed 2
}

TEST_F(BatchQueuesTest, NoneQueueBatchesAreSingleJobs) {
  BatchQueues queues(
      Queues({{"queue.REPLICATION.processes", "2"}, {"queue.REPLICATION.ordering", "none"}}));
  for (uint64_t id : {1, 2, 3, 4}) queues.Add(PlainJob(id));
  EXPECT_EQ(queues.RunnableBatches(kReplicationQueue, kStart, 4, 10), (Batches{{1}, {2}}));
}

TEST_F(DependencyTest, FreeJobsAreSharedOutAndWaitingOnesStayBehind) {
  BatchQueues queues(DependencyQueues(2));
  queues.Add(JobOf(1, {NewCustomer("CU-1")}));
  queues.Add(JobOf(2, {NewCustomer("CU-2")}));
  queues.Add(JobOf(3, {NewCustomer("CU-3")}));
  queues.Add(JobOf(4, {NewOrder("O-1", "CU-1")}));  // waits for 1
  queues.Add(JobOf(5, {NewCustomer("CU-5")}));
  EXPECT_EQ(queues.RunnableBatches(kReplicationQueue, kStart, 2, 10), (Batches{{1, 2}, {3, 5}}));
  // Two batches, two processes: nothing more until one is done.
  queues.Started(Ids{1, 2});
  queues.Started(Ids{3, 5});
  EXPECT_TRUE(queues.RunnableBatches(kReplicationQueue, kStart, 2, 10).empty());
  queues.Succeeded(1);
  EXPECT_TRUE(queues.RunnableBatches(kReplicationQueue, kStart, 2, 10).empty()) << "2 still runs";
  queues.Succeeded(2);
  EXPECT_EQ(queues.RunnableBatches(kReplicationQueue, kStart, 2, 10), (Batches{{4}}));
}

}  // namespace
}  // namespace ferry
