// The reference workload `orders` (shared/WORKLOAD.md): the set-up's sizes and order, the
// timed part's transactions, their determinism, and prices that follow the item updates.
#include "common/workload.h"

#include <gmock/gmock.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/catalog.h"
#include "common/codec.h"
#include "test_util.h"

namespace ferry {
namespace {

// Changes of `request` on `lu` with `action`.
std::vector<const wire::LuChange*> ChangesOf(const wire::SubmitRequest& request,
                                             const std::string& lu, wire::ChangeAction action) {
  std::vector<const wire::LuChange*> out;
  for (const auto& change : request.changes()) {
    if (change.lu() == lu && change.action() == action) out.push_back(&change);
  }
  return out;
}

// The rows that exist after applying changes in order; checks each change against them the way a
// replica enforcing references would.
class RowTracker {
 public:
  explicit RowTracker(std::shared_ptr<const Catalog> catalog) : catalog_(std::move(catalog)) {}

  // Applies `change`, failing the test when it needs a row that does not exist yet.
  void Apply(const wire::LuChange& change) {
    const config::LogicalUnit* lu = catalog_->FindLu(change.lu());
    ASSERT_NE(lu, nullptr) << change.lu();
    ASSERT_OK(catalog_->ValidateChange(change));
    const std::string name = Name(change.lu(), Row(change.keys().begin(), change.keys().end()));
    if (change.action() != wire::NEW) {
      EXPECT_TRUE(rows_.count(name)) << change.ShortDebugString() << ": row not created before";
      return;
    }
    EXPECT_FALSE(rows_.count(name)) << name << " created twice";
    Row row(change.keys().begin(), change.keys().end());
    row.insert(change.attributes().begin(), change.attributes().end());
    for (const auto& reference : lu->references()) {
      const config::LogicalUnit* target = catalog_->FindLu(reference.lu());
      Row key;
      for (int i = 0; i < reference.attributes_size(); ++i) {
        key[target->key(i)] = row.at(reference.attributes(i));
      }
      EXPECT_TRUE(rows_.count(Name(target->name(), key)))
          << name << " references " << Name(target->name(), key) << " before it is created";
    }
    rows_.insert(name);
    ++created_[change.lu()];
  }

  int Created(const std::string& lu) const {
    auto it = created_.find(lu);
    return it == created_.end() ? 0 : it->second;
  }

 private:
  // "LU[k1=v1, k2=v2]" with the key columns in name order, however the key was given.
  static std::string Name(const std::string& lu, const Row& key) {
    std::string out = lu + "[";
    for (const auto& [column, value] : key) {
      out += (out.back() == '[' ? "" : ", ") + column + "=" + value;
    }
    return out + "]";
  }

  std::shared_ptr<const Catalog> catalog_;
  std::set<std::string> rows_;          // names of the rows created so far
  std::map<std::string, int> created_;  // NEW changes by LU
};

class WorkloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto catalog = Catalog::Load(testing::DeployedMasterConfiguration());
    ASSERT_OK(catalog.status());
    catalog_ = *catalog;
  }

  // The first `count` transactions of a fresh workload, in order.
  static std::vector<wire::SubmitRequest> Transactions(int count) {
    OrdersWorkload workload;
    std::vector<wire::SubmitRequest> out;
    for (int i = 1; i <= count; ++i) out.push_back(workload.Transaction(i));
    return out;
  }

  std::shared_ptr<const Catalog> catalog_;
};

TEST_F(WorkloadTest, SetUpTransactionsHoldAtMost100Changes) {
  std::vector<wire::SubmitRequest> set_up = OrdersWorkload().SetUp();
  ASSERT_FALSE(set_up.empty());
  for (size_t t = 0; t < set_up.size(); ++t) {
    EXPECT_GT(set_up[t].changes_size(), 0) << "set-up transaction " << t;
    EXPECT_LE(set_up[t].changes_size(), 100) << "set-up transaction " << t;
  }
}

TEST_F(WorkloadTest, SetUpCreatesTheWorkloadsRows) {
  RowTracker tracker(catalog_);
  int changes = 0;
  for (const auto& request : OrdersWorkload().SetUp()) {
    for (const auto& change : request.changes()) {
      EXPECT_EQ(change.action(), wire::NEW) << change.ShortDebugString();
      tracker.Apply(change);
      ++changes;
    }
  }
  EXPECT_EQ(tracker.Created("Company"), 2);
  EXPECT_EQ(tracker.Created("Site"), 6);
  EXPECT_EQ(tracker.Created("Item"), 1200);
  EXPECT_EQ(tracker.Created("Customer"), 100);
  EXPECT_EQ(changes, 2 + 6 + 1200 + 100);
}

TEST_F(WorkloadTest, SetUpAndTransactionsCreateParentsBeforeChildren) {
  // RowTracker fails the test on any change that needs a row not created earlier.
  RowTracker tracker(catalog_);
  for (const auto& request : OrdersWorkload().SetUp()) {
    for (const auto& change : request.changes()) tracker.Apply(change);
  }
  for (const auto& request : Transactions(1000)) {
    for (const auto& change : request.changes()) tracker.Apply(change);
  }
  EXPECT_EQ(tracker.Created("CustomerOrder"), 1000);
  EXPECT_EQ(tracker.Created("CustomerOrderLine"), 3000);
  EXPECT_EQ(tracker.Created("Customer"), 100 + 200);
}

TEST_F(WorkloadTest, TransactionsAreDeterministic) {
  OrdersWorkload first;
  OrdersWorkload second;
  for (int i = 1; i <= 500; ++i) {
    wire::SubmitRequest a = first.Transaction(i);
    wire::SubmitRequest b = second.Transaction(i);
    ASSERT_GT(a.changes_size(), 0) << "transaction " << i;
    ASSERT_EQ(DeterministicBytes(a), DeterministicBytes(b)) << "transaction " << i;
  }
}

TEST_F(WorkloadTest, FifthTransactionBringsCustomerInC2AndItsOrder) {
  wire::SubmitRequest t5 = Transactions(5).back();
  ASSERT_GE(t5.changes_size(), 2);
  const wire::LuChange& customer = t5.changes(0);
  EXPECT_EQ(customer.lu(), "Customer");
  EXPECT_EQ(customer.action(), wire::NEW);
  EXPECT_EQ(customer.keys().at("customer_id"), "CU-5");
  EXPECT_EQ(customer.attributes().at("company_id"), "C2");  // 5 is odd
  const wire::LuChange& order = t5.changes(1);
  EXPECT_EQ(order.lu(), "CustomerOrder");
  EXPECT_EQ(order.action(), wire::NEW);
  EXPECT_EQ(order.keys().at("order_no"), "O-5");
  EXPECT_EQ(order.attributes().at("customer_id"), "CU-5");
  EXPECT_EQ(order.attributes().at("site_id").substr(0, 3), "C2-");  // a site of its company
}

TEST_F(WorkloadTest, TenthTransactionBringsCustomerInC1AndRaisesAPrice) {
  wire::SubmitRequest t10 = Transactions(10).back();
  auto customers = ChangesOf(t10, "Customer", wire::NEW);
  ASSERT_EQ(customers.size(), 1u);
  EXPECT_EQ(customers[0]->keys().at("customer_id"), "CU-10");
  EXPECT_EQ(customers[0]->attributes().at("company_id"), "C1");  // 10 is even

  auto items = ChangesOf(t10, "Item", wire::MODIFY);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0]->keys().at("site_id"), "C2-S2");  // site number 10 % 6 = 4
  EXPECT_EQ(items[0]->keys().at("part_no"), "P-010");
  ASSERT_EQ(items[0]->attributes().size(), 1u);
  EXPECT_EQ(items[0]->attributes().at("unit_price"), "21.00");  // 10 + 10, raised by 1
}

TEST_F(WorkloadTest, OrderOf25TransactionsAgoIsReleasedFromTransaction50On) {
  std::vector<wire::SubmitRequest> transactions = Transactions(50);
  EXPECT_TRUE(ChangesOf(transactions[25 - 1], "CustomerOrder", wire::MODIFY).empty());
  auto releases = ChangesOf(transactions[50 - 1], "CustomerOrder", wire::MODIFY);
  ASSERT_EQ(releases.size(), 1u);
  EXPECT_EQ(releases[0]->keys().at("order_no"), "O-25");
  ASSERT_EQ(releases[0]->attributes().size(), 1u);
  EXPECT_EQ(releases[0]->attributes().at("status"), "Released");
}

TEST_F(WorkloadTest, EachOrderHasThreeLinesAtItsSite) {
  std::vector<wire::SubmitRequest> transactions = Transactions(500);
  for (int i = 1; i <= 500; ++i) {
    const wire::SubmitRequest& t = transactions[i - 1];
    auto orders = ChangesOf(t, "CustomerOrder", wire::NEW);
    ASSERT_EQ(orders.size(), 1u) << "transaction " << i;
    const std::string order_no = orders[0]->keys().at("order_no");
    EXPECT_EQ(order_no, "O-" + std::to_string(i));
    const std::string site = orders[0]->attributes().at("site_id");
    auto lines = ChangesOf(t, "CustomerOrderLine", wire::NEW);
    ASSERT_EQ(lines.size(), 3u) << "transaction " << i;
    for (int line = 1; line <= 3; ++line) {
      const wire::LuChange& change = *lines[line - 1];
      EXPECT_EQ(change.keys().at("order_no"), order_no);
      EXPECT_EQ(change.keys().at("line_no"), std::to_string(line));
      EXPECT_EQ(change.attributes().at("site_id"), site) << "transaction " << i;
    }
  }
}

TEST_F(WorkloadTest, AverageTransactionHas4Point34Changes) {
  OrdersWorkload workload;
  constexpr int kCount = 10000;
  long changes = 0;
  for (int i = 1; i <= kCount; ++i) changes += workload.Transaction(i).changes_size();
  EXPECT_NEAR(static_cast<double>(changes) / kCount, 4.34, 0.01);
}

TEST_F(WorkloadTest, LinesArePricedAtTheItemsCurrentUnitPrice) {
  // Prices tracked here from the changes themselves: the set-up's NEW items, then every
  // item MODIFY in the order the changes come.
  std::map<std::pair<std::string, std::string>, std::string> unit_price;  // by (site, part)
  for (const auto& request : OrdersWorkload().SetUp()) {
    for (const auto* item : ChangesOf(request, "Item", wire::NEW)) {
      unit_price[{item->keys().at("site_id"), item->keys().at("part_no")}] =
          item->attributes().at("unit_price");
    }
  }
  ASSERT_EQ(unit_price.size(), 1200u);
  const std::map<std::pair<std::string, std::string>, std::string> initial = unit_price;

  OrdersWorkload workload;
  int lines_at_a_raised_price = 0;
  for (int i = 1; i <= 10000; ++i) {
    const wire::SubmitRequest transaction = workload.Transaction(i);
    for (const auto& change : transaction.changes()) {
      if (change.lu() == "Item" && change.action() == wire::MODIFY) {
        auto key = std::make_pair(change.keys().at("site_id"), change.keys().at("part_no"));
        ASSERT_TRUE(unit_price.count(key)) << change.ShortDebugString();
        unit_price[key] = change.attributes().at("unit_price");
      } else if (change.lu() == "CustomerOrderLine" && change.action() == wire::NEW) {
        auto key =
            std::make_pair(change.attributes().at("site_id"), change.attributes().at("part_no"));
        ASSERT_TRUE(unit_price.count(key)) << change.ShortDebugString();
        ASSERT_EQ(change.attributes().at("price"), unit_price[key])
            << "transaction " << i << ": " << change.ShortDebugString();
        if (unit_price[key] != initial.at(key)) ++lines_at_a_raised_price;
      }
    }
  }
  // The check above means something only if some lines follow a raised price.
  EXPECT_GT(lines_at_a_raised_price, 100);
}

}  // namespace
}  // namespace ferry
