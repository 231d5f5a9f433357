// The master's commit: validation against the catalog and the stored rows, the LU rows and
// one outbox entry per target replica in one transaction, and nothing stored on rejection.
#include "master/master_store.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>

#include <filesystem>

#include "common/catalog.h"
#include "common/sqlite.h"
#include "common/workload.h"
#include "test_util.h"

namespace ferry {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

using testing::Change;
using testing::Transaction;

class MasterStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto catalog = Catalog::Load(testing::DeployedMasterConfiguration());
    ASSERT_OK(catalog.status());
    catalog_ = *catalog;
    Reopen();
  }
  void Reopen() {
    store_.reset();
    auto store = OpenSqliteMasterStore(dir_.File("master.db"), catalog_);
    ASSERT_OK(store.status());
    store_ = std::move(store).value();
  }
  StreamPosition Position(const std::string& site) { return store_->Position(site); }
  std::vector<wire::ReplicationMessage> Outbox(const std::string& site) {
    auto entries = store_->ReadOutbox(site, 1, 1000);
    EXPECT_OK(entries.status());
    std::vector<wire::ReplicationMessage> out;
    for (const auto& e : *entries) {
      EXPECT_TRUE(out.emplace_back().ParseFromString(e.message));
      EXPECT_EQ(out.back().sequence(), e.sequence);
    }
    return out;
  }
  // Company C1 with site C1-S1 and customer CUST-1; Company C2 with site C2-S1.
  void CommitBasics() {
    auto reply = store_->Commit(
        Transaction({Change("Company", wire::NEW, {{"company_id", "C1"}}, {{"name", "One"}}),
                     Change("Company", wire::NEW, {{"company_id", "C2"}}, {{"name", "Two"}}),
                     Change("Site", wire::NEW, {{"site_id", "C1-S1"}}, {{"company_id", "C1"}}),
                     Change("Site", wire::NEW, {{"site_id", "C2-S1"}}, {{"company_id", "C2"}}),
                     Change("Customer", wire::NEW, {{"customer_id", "CUST-1"}},
                            {{"company_id", "C1"}, {"credit_limit", "100"}})}),
        1000);
    ASSERT_OK(reply.status());
  }

  TempDir dir_;
  std::shared_ptr<const Catalog> catalog_;
  std::unique_ptr<MasterStore> store_;
};

TEST_F(MasterStoreTest, FirstOpenPutsTheConfigurationFirstOnEveryStream) {
  auto published = store_->PublishConfiguration(5);
  ASSERT_OK(published.status());
  EXPECT_EQ(*published, (std::vector<std::string>{"SITE-A", "SITE-B"}));
  for (const std::string site : {"SITE-A", "SITE-B"}) {
    auto messages = Outbox(site);
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_EQ(messages[0].message_class(), wire::RECEIVE_CONFIGURATION);
    EXPECT_EQ(messages[0].configuration().lus_size(), 6);
    EXPECT_EQ(messages[0].site(), site);
  }
  // The same configuration is not sent again.
  published = store_->PublishConfiguration(6);
  ASSERT_OK(published.status());
  EXPECT_TRUE(published->empty());
}

TEST_F(MasterStoreTest, CommitRoutesEachChangeToItsSitesWithContiguousSequences) {
  CommitBasics();
  auto a = Outbox("SITE-A");
  auto b = Outbox("SITE-B");
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  // SITE-A gets company C1, its site and its customer; SITE-B company C2 and its site.
  EXPECT_EQ(a[0].changes_size(), 3);
  EXPECT_EQ(b[0].changes_size(), 2);
  EXPECT_EQ(a[0].sequence(), 1u);
  EXPECT_EQ(a[0].transaction_id(), 1u);
  EXPECT_EQ(a[0].origin_site(), "MASTER");
  EXPECT_EQ(a[0].commit_time_us(), 1000);
  for (const auto& change : b[0].changes()) {
    for (const auto& [column, value] : change.keys())
      EXPECT_EQ(value.find("C1"), std::string::npos);
    for (const auto& [column, value] : change.attributes()) EXPECT_NE(value, "C1");
  }

  auto reply = store_->Commit(
      Transaction({Change("Customer", wire::MODIFY, {{"customer_id", "CUST-1"}}, {{"name", "N"}})}),
      2000);
  ASSERT_OK(reply.status());
  EXPECT_EQ(reply->transaction_id(), 2u);
  ASSERT_EQ(reply->published_size(), 1);
  EXPECT_EQ(reply->published(0).site(), "SITE-A");
  EXPECT_EQ(reply->published(0).sequence(), 2u);
  EXPECT_EQ(Position("SITE-A").latest_sequence, 2u);
  EXPECT_EQ(Position("SITE-B").latest_sequence, 1u);
}

TEST_F(MasterStoreTest, RejectedTransactionStoresNothing) {
  CommitBasics();
  // The first change is fine, the second references a customer that does not exist.
  auto reply = store_->Commit(
      Transaction(
          {Change("Customer", wire::NEW, {{"customer_id", "CUST-2"}}, {{"company_id", "C1"}}),
           Change("CustomerOrder", wire::NEW, {{"order_no", "O-1"}},
                  {{"customer_id", "NOBODY"}, {"site_id", "C1-S1"}})}),
      3000);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(reply.status().message(), HasSubstr("change 2"));
  EXPECT_THAT(reply.status().message(), HasSubstr("CustomerOrder[order_no=O-1]"));
  EXPECT_THAT(reply.status().message(), HasSubstr("Customer[customer_id=NOBODY]"));
  EXPECT_THAT(reply.status().message(), HasSubstr("does not exist"));
  EXPECT_EQ(store_->LastTransactionId(), 1u);
  EXPECT_EQ(Position("SITE-A").latest_sequence, 1u);
  EXPECT_EQ(Outbox("SITE-A").size(), 1u);
  // CUST-2 of the rejected transaction was rolled back: creating it now succeeds.
  auto again = store_->Commit(
      Transaction(
          {Change("Customer", wire::NEW, {{"customer_id", "CUST-2"}}, {{"company_id", "C1"}})}),
      4000);
  EXPECT_OK(again.status());
}

TEST_F(MasterStoreTest, EachKindOfBadChangeIsRejectedWithWhatIsWrong) {
  CommitBasics();
  ASSERT_OK(store_
                ->Commit(Transaction({Change("CustomerOrder", wire::NEW, {{"order_no", "O-1"}},
                                             {{"customer_id", "CUST-1"}, {"site_id", "C1-S1"}})}),
                         2)
                .status());
  struct Case {
    wire::LuChange change;
    Status::Code code;
    std::vector<std::string> words;
  };
  std::vector<Case> cases = {
      {Change("Invoice", wire::NEW, {{"id", "1"}}),
       Status::Code::kInvalidArgument,
       {"unknown LU", "Invoice"}},
      {Change("Customer", wire::NEW, {}, {{"company_id", "C1"}}),
       Status::Code::kInvalidArgument,
       {"Customer", "key attribute customer_id is missing"}},
      {Change("Customer", wire::NEW, {{"customer_id", "X"}}, {{"colour", "red"}}),
       Status::Code::kInvalidArgument,
       {"Customer[customer_id=X]", "unknown attribute", "colour"}},
      {Change("Customer", wire::NEW, {{"customer_id", "X"}}, {{"company_id", "C9"}}),
       Status::Code::kNotFound,
       {"Customer[customer_id=X]", "Company[company_id=C9]", "does not exist"}},
      {Change("Customer", wire::NEW, {{"customer_id", "CUST-1"}}, {{"company_id", "C1"}}),
       Status::Code::kAlreadyExists,
       {"Customer[customer_id=CUST-1]", "already exists"}},
      {Change("Customer", wire::MODIFY, {{"customer_id", "GHOST"}}, {{"name", "n"}}),
       Status::Code::kNotFound,
       {"Customer[customer_id=GHOST]", "does not exist"}},
      {Change("CustomerOrder", wire::MODIFY, {{"order_no", "O-1"}}, {{"customer_id", "C7"}}),
       Status::Code::kNotFound,
       {"Customer[customer_id=C7]"}},
      {Change("Company", wire::REMOVE, {{"company_id", "C1"}}),
       Status::Code::kInvalidArgument,
       {"cannot remove Company[company_id=C1]", "references it"}},
      {Change("Customer", wire::NEW, {{"customer_id", "Y"}}, {{"credit_limit", "lots"}}),
       Status::Code::kInvalidArgument,
       {"credit_limit", "INTEGER"}},
  };
  for (const auto& c : cases) {
    auto reply = store_->Commit(Transaction({c.change}), 9);
    ASSERT_FALSE(reply.ok()) << c.change.ShortDebugString();
    EXPECT_EQ(reply.status().code(), c.code) << reply.status().ToString();
    for (const auto& word : c.words) {
      EXPECT_THAT(reply.status().message(), HasSubstr(word)) << c.change.ShortDebugString();
    }
  }
  EXPECT_EQ(store_->LastTransactionId(), 2u);
  EXPECT_FALSE(store_->Commit(wire::SubmitRequest(), 9).ok());
}

TEST_F(MasterStoreTest, AModifyCannotMoveARowToAnotherCompanyOrSite) {
  CommitBasics();
  ASSERT_OK(store_
                ->Commit(Transaction({Change("CustomerOrder", wire::NEW, {{"order_no", "O-1"}},
                                             {{"customer_id", "CUST-1"}, {"site_id", "C1-S1"}})}),
                         2000)
                .status());
  const uint64_t last = store_->LastTransactionId();
  // SITE-A holds CUST-1 (company C1); moved to C2 it would be SITE-B's, which never had it.
  auto moved =
      store_->Commit(Transaction({Change("Customer", wire::MODIFY, {{"customer_id", "CUST-1"}},
                                         {{"name", "Moved"}, {"company_id", "C2"}})}),
                     3000);
  ASSERT_FALSE(moved.ok());
  EXPECT_EQ(moved.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(moved.status().message(),
              HasSubstr("change 1: Customer[customer_id=CUST-1]: company_id is 'C1' and cannot "
                        "become 'C2'"));
  // The same for the site that routes an order.
  auto order_moved = store_->Commit(
      Transaction(
          {Change("CustomerOrder", wire::MODIFY, {{"order_no", "O-1"}}, {{"site_id", "C2-S1"}})}),
      3000);
  ASSERT_FALSE(order_moved.ok());
  EXPECT_THAT(order_moved.status().message(), HasSubstr("site_id is 'C1-S1' and cannot become"));
  EXPECT_EQ(store_->LastTransactionId(), last);
  EXPECT_EQ(Position("SITE-B").latest_sequence, 1u);

  // Naming the company it already has changes nothing about where it goes.
  auto stays =
      store_->Commit(Transaction({Change("Customer", wire::MODIFY, {{"customer_id", "CUST-1"}},
                                         {{"name", "Same"}, {"company_id", "C1"}})}),
                     4000);
  ASSERT_OK(stays.status());
  ASSERT_EQ(stays->published_size(), 1);
  EXPECT_EQ(stays->published(0).site(), "SITE-A");
  // A MODIFY of a row that does not exist still says so.
  auto missing = store_->Commit(
      Transaction(
          {Change("Customer", wire::MODIFY, {{"customer_id", "NOBODY"}}, {{"company_id", "C2"}})}),
      5000);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("does not exist"));
}

TEST_F(MasterStoreTest, RemoveOfAnUnreferencedRowIsRoutedLikeTheRowWas) {
  CommitBasics();
  auto reply = store_->Commit(
      Transaction({Change("Customer", wire::REMOVE, {{"customer_id", "CUST-1"}})}), 10);
  ASSERT_OK(reply.status());
  ASSERT_EQ(reply->published_size(), 1);
  EXPECT_EQ(reply->published(0).site(), "SITE-A");
}

TEST_F(MasterStoreTest, PositionsAndTransactionIdsSurviveReopening) {
  CommitBasics();
  ASSERT_OK(store_->RecordAcknowledged("SITE-A", 1));
  EXPECT_EQ(Position("SITE-A").acknowledged_sequence, 1u);  // at once, in memory
  ASSERT_OK(store_->Prune(1000, 1).status());               // and written with the next Prune
  Reopen();
  EXPECT_EQ(store_->LastTransactionId(), 1u);
  EXPECT_EQ(Position("SITE-A").latest_sequence, 1u);
  EXPECT_EQ(Position("SITE-A").acknowledged_sequence, 1u);
  EXPECT_EQ(Position("SITE-B").acknowledged_sequence, 0u);
  EXPECT_EQ(store_->RecordAcknowledged("SITE-Z", 1).code(), Status::Code::kNotFound);
}

// A commit writes its outbox entries and nothing else of the positions; reopening finds them
// there, and after a Prune emptied the outbox, in ferry_streams.
TEST_F(MasterStoreTest, PositionsSurviveReopeningWithOrWithoutAPrune) {
  CommitBasics();
  auto nowhere = store_->Commit(
      Transaction({Change("Company", wire::NEW, {{"company_id", "C3"}}, {{"name", "Three"}})}), 1);
  ASSERT_OK(nowhere.status());
  EXPECT_EQ(nowhere->published_size(), 0);  // no replica takes company C3
  Reopen();
  EXPECT_EQ(store_->LastTransactionId(), 2u);
  EXPECT_EQ(Position("SITE-A").latest_sequence, 1u);
  auto next = store_->Commit(
      Transaction({Change("Customer", wire::MODIFY, {{"customer_id", "CUST-1"}}, {{"name", "N"}})}),
      2);
  ASSERT_OK(next.status());
  EXPECT_EQ(next->transaction_id(), 3u);
  ASSERT_EQ(next->published_size(), 1);
  EXPECT_EQ(next->published(0).sequence(), 2u);

  ASSERT_OK(store_->RecordAcknowledged("SITE-A", 2));
  ASSERT_OK(store_->RecordAcknowledged("SITE-B", 1));
  auto pruned = store_->Prune(1000, 3);
  ASSERT_OK(pruned.status());
  EXPECT_EQ(pruned->entries, 3u);
  Reopen();
  EXPECT_EQ(store_->LastTransactionId(), 3u);
  EXPECT_EQ(Position("SITE-A").latest_sequence, 2u);
  EXPECT_EQ(Position("SITE-A").first_available, 3u);
  EXPECT_EQ(Position("SITE-B").latest_sequence, 1u);
}

// Committed transactions wait for SQLite's group commit (Flush), durable by the commit log.
// A crash before the flush loses SQLite's open group; reopening applies the log's records
// again and ends with the same ids, sequences, messages and idempotent replies.
TEST_F(MasterStoreTest, TransactionsNotYetFlushedAreAppliedAgainFromTheCommitLog) {
  OrdersWorkload workload;
  for (const auto& request : workload.SetUp()) ASSERT_OK(store_->Commit(request, 1).status());
  ASSERT_OK(store_->Flush());
  EXPECT_FALSE(store_->HasUnflushed());
  for (uint64_t i = 1; i <= 50; ++i)
    ASSERT_OK(store_->Commit(workload.Transaction(i), 100 + i).status());
  // A rejected one in between, and one under an idempotency key.
  EXPECT_EQ(store_->Commit(workload.Transaction(1), 1).status().code(),
            Status::Code::kAlreadyExists);
  wire::SubmitRequest keyed = workload.Transaction(51);
  keyed.set_idempotency_key("K-51");
  auto first = store_->Commit(keyed, 151);
  ASSERT_OK(first.status());
  EXPECT_TRUE(store_->HasUnflushed());
  const uint64_t last_id = store_->LastTransactionId();
  const auto before = Outbox("SITE-A");

  Reopen();  // the store goes without a Flush: SQLite's open group rolls back
  EXPECT_EQ(store_->LastTransactionId(), last_id);
  const auto after = Outbox("SITE-A");
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(after[i], before[i]))
        << "outbox entry " << i << " differs after the replay";
  }
  auto again = store_->Commit(keyed, 999);
  ASSERT_OK(again.status());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*again, *first));
  ASSERT_OK(store_->Commit(workload.Transaction(52), 152).status());
  EXPECT_EQ(store_->LastTransactionId(), last_id + 1);
}

// A group applies its requests in order, each its own transaction: a later one sees an
// earlier one's rows, a rejected one stores nothing and stops none of the others, and after a
// crash before SQLite's group commit every committed one is applied again from the log.
TEST_F(MasterStoreTest, AGroupCommitsEachInOrderAndAloneAndSurvivesACrash) {
  CommitBasics();
  ASSERT_OK(store_->Flush());
  const wire::SubmitRequest customer = Transaction(
      {Change("Customer", wire::NEW, {{"customer_id", "CUST-2"}}, {{"company_id", "C1"}})});
  const wire::SubmitRequest nowhere = Transaction(
      {Change("Customer", wire::NEW, {{"customer_id", "CUST-3"}}, {{"company_id", "NOPE"}})});
  const wire::SubmitRequest order = Transaction(
      {Change("CustomerOrder", wire::NEW, {{"order_no", "O-1"}},
              {{"customer_id", "CUST-2"}, {"site_id", "C1-S1"}, {"status", "Planned"}})});
  const uint64_t syncs_before = store_->DurableSyncs();
  auto replies = store_->CommitGroup({&customer, &nowhere, &order}, 2000);
  EXPECT_EQ(store_->DurableSyncs(), syncs_before + 1) << "the group's records share one fsync";
  ASSERT_EQ(replies.size(), 3u);
  ASSERT_OK(replies[0].status());
  EXPECT_EQ(replies[1].status().code(), Status::Code::kNotFound);
  EXPECT_THAT(replies[1].status().message(), HasSubstr("NOPE"));
  ASSERT_OK(replies[2].status());  // its customer came earlier in the group
  EXPECT_EQ(replies[2]->transaction_id(), replies[0]->transaction_id() + 1);
  EXPECT_EQ(replies[2]->published(0).sequence(), replies[0]->published(0).sequence() + 1);
  const auto before = Outbox("SITE-A");
  EXPECT_TRUE(store_->HasUnflushed());

  Reopen();  // without a Flush: SQLite's open group rolls back, the log has the records
  EXPECT_EQ(store_->LastTransactionId(), replies[2]->transaction_id());
  const auto after = Outbox("SITE-A");
  ASSERT_EQ(after.size(), before.size());
  EXPECT_EQ(after.back().transaction_id(), replies[2]->transaction_id());
  EXPECT_EQ(store_->Commit(customer, 3000).status().code(), Status::Code::kAlreadyExists);
}

// A storage error breaks the store: the requests before it in the group are durable by their
// records and committed, and the outbox, whose open group may hold what is not durable, is
// read by nobody until the store is opened again.
TEST_F(MasterStoreTest, ABrokenStoreGivesNothingFromItsOutbox) {
  CommitBasics();
  ASSERT_OK(store_->Flush());
  {
    auto other = sqlite::Db::Open(dir_.File("master.db"), {.create = false});
    ASSERT_OK(other.status());
    ASSERT_OK(other->Exec("DROP TABLE \"lu_CustomerOrderLine\""));  // pulled from under it
  }
  const wire::SubmitRequest customer = Transaction(
      {Change("Customer", wire::NEW, {{"customer_id", "CUST-2"}}, {{"company_id", "C1"}})});
  const wire::SubmitRequest line =
      Transaction({Change("CustomerOrderLine", wire::NEW, {{"order_no", "O-1"}, {"line_no", "1"}},
                          {{"site_id", "C1-S1"}, {"part_no", "P-1"}})});
  auto replies = store_->CommitGroup({&customer, &line, &customer}, 2000);
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_OK(replies[0].status());
  EXPECT_FALSE(replies[1].ok());
  EXPECT_THAT(replies[1].status().message(), HasSubstr("restart the master"));
  EXPECT_EQ(replies[2].status().code(), replies[1].status().code()) << "the store is broken";

  auto outbox = store_->ReadOutbox("SITE-A", 1, 100);
  EXPECT_FALSE(outbox.ok()) << "an outbox read from a broken store";
  EXPECT_THAT(outbox.status().message(), HasSubstr("restart the master"));
  EXPECT_FALSE(store_->Flush().ok());

  Reopen();  // a restart settles it from the log: the customer committed before the error
  auto entries = store_->ReadOutbox("SITE-A", 1, 100);
  ASSERT_OK(entries.status());
  EXPECT_EQ(store_->LastTransactionId(), replies[0]->transaction_id());
}

TEST_F(MasterStoreTest, ACommitLogLeftByAnotherDatabaseIsNotApplied) {
  auto company = [](const std::string& id) {
    return Transaction({Change("Company", wire::NEW, {{"company_id", id}}, {{"name", "Same"}})});
  };
  ASSERT_OK(store_->Commit(company("C1"), 1).status());
  ASSERT_OK(store_->Commit(company("C2"), 1).status());
  store_.reset();  // unflushed: both commits hold only in the log
  for (const char* suffix : {"", "-wal", "-shm"})
    std::remove(dir_.File(std::string("master.db") + suffix).c_str());
  Reopen();
  EXPECT_EQ(store_->LastTransactionId(), 0u);
  EXPECT_TRUE(Outbox("SITE-A").empty());
  // The new database's first record is the size of the old ones: the old second record must
  // not read as its successor after a crash.
  ASSERT_OK(store_->Commit(company("C3"), 1).status());
  store_.reset();
  Reopen();
  EXPECT_EQ(store_->LastTransactionId(), 1u);
  EXPECT_OK(store_->Commit(company("C2"), 1).status());  // C2 did not come back from the old log
}

// The records a crash left are applied again only under the configuration they were
// committed under: a changed routing would give other sequences to what sites may hold.
TEST_F(MasterStoreTest, RecordsCommittedUnderAnotherConfigurationAreNotAppliedAgain) {
  CommitBasics();
  store_.reset();  // unflushed
  config::MasterConfiguration changed = catalog_->proto();
  changed.mutable_replicas(0)->add_companies("C3");
  auto other = Catalog::FromProto(changed);
  ASSERT_OK(other.status());
  auto refused = OpenSqliteMasterStore(dir_.File("master.db"), *other);
  EXPECT_EQ(refused.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("committed under another master configuration: start the master once "
                        "with the configuration it ran with"));
  Reopen();  // the configuration it ran with
  EXPECT_EQ(store_->LastTransactionId(), 1u);
  ASSERT_EQ(Outbox("SITE-A").size(), 1u);
}

TEST_F(MasterStoreTest, ATransactionLargerThanHalfTheCommitLogIsRefused) {
  CommitBasics();
  auto huge =
      store_->Commit(Transaction({Change("Customer", wire::MODIFY, {{"customer_id", "CUST-1"}},
                                         {{"name", std::string(9 << 20, 'x')}})}),
                     2);
  EXPECT_EQ(huge.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(huge.status().message(), HasSubstr("the master takes at most 8388608 in one"));
  EXPECT_EQ(store_->LastTransactionId(), 1u);
  EXPECT_OK(store_
                ->Commit(Transaction({Change("Customer", wire::MODIFY, {{"customer_id", "CUST-1"}},
                                             {{"name", "small"}})}),
                         3)
                .status());
}

// A group whose records do not fit in what is left of the commit log: the ones that fit are
// applied, SQLite is made durable and the log starts over for the rest, and every one of them
// is committed in order, after a crash too.
TEST_F(MasterStoreTest, AGroupLargerThanWhatIsLeftOfTheCommitLogCommitsInOrder) {
  CommitBasics();
  std::vector<wire::SubmitRequest> renames;
  for (char c : {'a', 'b', 'c'}) {  // 6 MB each: the third does not fit behind the first two
    renames.push_back(Transaction({Change("Customer", wire::MODIFY, {{"customer_id", "CUST-1"}},
                                          {{"name", std::string(6 << 20, c)}})}));
  }
  auto replies = store_->CommitGroup({&renames[0], &renames[1], &renames[2]}, 2000);
  ASSERT_EQ(replies.size(), 3u);
  for (const auto& reply : replies) ASSERT_OK(reply.status());
  EXPECT_EQ(replies[2]->transaction_id(), replies[0]->transaction_id() + 2);

  Reopen();  // without a Flush
  EXPECT_EQ(store_->LastTransactionId(), replies[2]->transaction_id());
  auto db = sqlite::Db::Open(dir_.File("master.db"), {.create = false});
  ASSERT_OK(db.status());
  auto name = db->Prepare(
      "SELECT substr(name, 1, 1), length(name) FROM \"lu_Customer\" "
      "WHERE customer_id = 'CUST-1'");
  ASSERT_OK(name.status());
  ASSERT_OK(name->Step().status());
  EXPECT_EQ(name->ColumnText(0), "c") << "the group's last rename is the one kept";
  EXPECT_EQ(name->ColumnInt(1), 6 << 20);
}

// A snapshot sends the rows of an LU that references itself parents first, as the site's
// foreign keys want them, whatever their key order.
TEST_F(MasterStoreTest, ASnapshotSendsRowsOfAnLuReferencingItselfParentsFirst) {
  config::MasterConfiguration config = catalog_->proto();
  config::LogicalUnit* employee = config.add_lus();
  employee->set_name("Employee");
  employee->add_attributes()->set_name("employee_id");
  employee->add_attributes()->set_name("manager_id");
  employee->add_key("employee_id");
  employee->add_references()->set_lu("Employee");
  employee->mutable_references(0)->add_attributes("manager_id");
  config.mutable_replicas(0)->add_lus("Employee");
  const std::string site = config.replicas(0).name();
  auto catalog = Catalog::FromProto(config);
  ASSERT_OK(catalog.status());
  catalog_ = *catalog;
  std::filesystem::remove(dir_.File("master.db"));
  std::filesystem::remove(dir_.File("master.db-commits"));
  Reopen();
  // The chief (key "Z") first, then who reports to whom: keys that sort before their managers.
  ASSERT_OK(
      store_
          ->Commit(
              Transaction(
                  {Change("Employee", wire::NEW, {{"employee_id", "Z"}}),
                   Change("Employee", wire::NEW, {{"employee_id", "M"}}, {{"manager_id", "Z"}}),
                   Change("Employee", wire::NEW, {{"employee_id", "A"}}, {{"manager_id", "M"}})}),
              1)
          .status());
  auto last = store_->AppendSnapshot(site, 2);
  ASSERT_OK(last.status());
  std::vector<std::string> sent;
  for (const auto& message : Outbox(site)) {
    if (message.message_class() != wire::RECEIVE_SNAPSHOT) continue;
    for (const auto& change : message.changes()) {
      if (change.lu() == "Employee") sent.push_back(change.keys().at("employee_id"));
    }
  }
  EXPECT_EQ(sent, (std::vector<std::string>{"Z", "M", "A"}));
}

TEST_F(MasterStoreTest, TheWholeWorkloadSetUpAndFirstTransactionsCommit) {
  OrdersWorkload workload;
  for (const auto& request : workload.SetUp()) ASSERT_OK(store_->Commit(request, 1).status());
  for (uint64_t i = 1; i <= 200; ++i) {
    auto reply = store_->Commit(workload.Transaction(i), 1);
    ASSERT_OK(reply.status());
    EXPECT_GE(reply->published_size(), 1);
  }
  EXPECT_EQ(store_->LastTransactionId(), workload.SetUp().size() + 200);
}

}  // namespace
}  // namespace ferry
