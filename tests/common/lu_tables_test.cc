// The LU tables' physical shape as the catalog asks for it: an index per reference unless the
// reference says `unindexed` (then none, and one an earlier configuration made is dropped), and
// a referenced row refused removal either way, with the row that references it named.
#include "common/lu_tables.h"

#include <gmock/gmock.h>

#include <memory>
#include <set>
#include <string>

#include "common/catalog.h"
#include "common/sqlite.h"
#include "test_util.h"

namespace ferry {
namespace {

using testing::Change;
using ::testing::HasSubstr;

// Item and OrderLine; the line references its item by (site_id, part_no), which is not a prefix
// of the line's key, so the reference gets an index unless it is `unindexed`.
std::shared_ptr<const Catalog> ItemsAndLines(bool unindexed) {
  config::MasterConfiguration config;
  config.set_master_site("MASTER");
  config::LogicalUnit* item = config.add_lus();
  item->set_name("Item");
  for (const char* name : {"site_id", "part_no", "description"}) {
    item->add_attributes()->set_name(name);
  }
  item->add_key("site_id");
  item->add_key("part_no");
  config::LogicalUnit* line = config.add_lus();
  line->set_name("OrderLine");
  for (const char* name : {"order_no", "site_id", "part_no"}) {
    line->add_attributes()->set_name(name);
  }
  line->add_key("order_no");
  config::Reference* reference = line->add_references();
  reference->set_lu("Item");
  reference->add_attributes("site_id");
  reference->add_attributes("part_no");
  reference->set_unindexed(unindexed);
  auto catalog = Catalog::FromProto(config);
  EXPECT_TRUE(catalog.ok()) << catalog.status().ToString();
  return catalog.ok() ? *catalog : nullptr;
}

class LuTablesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = sqlite::Db::Open(dir_.File("lu.db"), {});
    ASSERT_OK(db.status());
    db_ = std::make_unique<sqlite::Db>(std::move(db).value());
  }

  // The names of the database's indexes on LU tables (SQLite's own for keys left out).
  std::set<std::string> Indexes() {
    std::set<std::string> names;
    auto s = db_->Prepare(
        "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name LIKE 'lu_%' AND "
        "name NOT LIKE 'sqlite_autoindex_%'");
    EXPECT_OK(s.status());
    if (!s.ok()) return names;
    while (true) {
      auto step = s->Step();
      EXPECT_OK(step.status());
      if (!step.ok() || *step == sqlite::Statement::StepResult::kDone) return names;
      names.insert(s->ColumnText(0));
    }
  }

  // Applies `change` in a transaction of its own.
  Status Apply(LuTables& tables, const wire::LuChange& change) {
    auto transaction = sqlite::Transaction::Begin(*db_);
    if (!transaction.ok()) return transaction.status();
    FERRY_RETURN_IF_ERROR(tables.Apply(change, nullptr));
    return transaction->Commit();
  }

  testing::TempDir dir_;
  std::unique_ptr<sqlite::Db> db_;
};

TEST_F(LuTablesTest, AReferenceGetsAnIndexUnlessTheCatalogSaysUnindexed) {
  LuTables indexed(*db_, ItemsAndLines(false));
  ASSERT_OK(indexed.CreateTables());
  EXPECT_EQ(Indexes(), std::set<std::string>{"lu_OrderLine_ref0"});

  // A configuration that leaves it out drops the index the earlier one made...
  LuTables unindexed(*db_, ItemsAndLines(true));
  ASSERT_OK(unindexed.CreateTables());
  EXPECT_EQ(Indexes(), std::set<std::string>{});
  // ...and one that asks for it again makes it again.
  LuTables again(*db_, ItemsAndLines(false));
  ASSERT_OK(again.CreateTables());
  EXPECT_EQ(Indexes(), std::set<std::string>{"lu_OrderLine_ref0"});
}

TEST_F(LuTablesTest, AnUnindexedReferenceStillRefusesToRemoveAReferencedRow) {
  for (bool unindexed : {false, true}) {
    SCOPED_TRACE(unindexed ? "unindexed" : "indexed");
    LuTables tables(*db_, ItemsAndLines(unindexed));
    ASSERT_OK(tables.CreateTables());
    ASSERT_OK(tables.DeleteAll());
    ASSERT_OK(Apply(tables, Change("Item", wire::NEW, {{"site_id", "S1"}, {"part_no", "P1"}})));
    ASSERT_OK(Apply(tables, Change("Item", wire::NEW, {{"site_id", "S1"}, {"part_no", "P2"}})));
    ASSERT_OK(Apply(tables, Change("OrderLine", wire::NEW, {{"order_no", "O1"}},
                                   {{"site_id", "S1"}, {"part_no", "P1"}})));

    Status refused =
        Apply(tables, Change("Item", wire::REMOVE, {{"site_id", "S1"}, {"part_no", "P1"}}));
    EXPECT_EQ(refused.code(), Status::Code::kInvalidArgument) << refused.ToString();
    EXPECT_THAT(refused.message(), HasSubstr("cannot remove Item[part_no=P1, site_id=S1]"));
    EXPECT_THAT(refused.message(), HasSubstr("OrderLine[order_no=O1] references it"));
    // An item no line references goes.
    EXPECT_OK(Apply(tables, Change("Item", wire::REMOVE, {{"site_id", "S1"}, {"part_no", "P2"}})));
    // And a line still cannot reference an item that is not there.
    Status missing = Apply(tables, Change("OrderLine", wire::NEW, {{"order_no", "O2"}},
                                          {{"site_id", "S1"}, {"part_no", "P2"}}));
    EXPECT_EQ(missing.code(), Status::Code::kNotFound) << missing.ToString();
  }
}

}  // namespace
}  // namespace ferry
