#include "common/site_rows.h"

#include <map>
#include <memory>

#include "common/lu_tables.h"
#include "common/sqlite.h"

namespace ferry {
namespace {

using KeyedRows = std::map<std::vector<std::string>, Row>;

KeyedRows ByKey(const config::LogicalUnit& lu, std::vector<Row> rows) {
  KeyedRows keyed;
  for (Row& row : rows) {
    std::vector<std::string> key;
    for (const auto& k : lu.key()) key.push_back(row[k]);
    keyed.emplace(std::move(key), std::move(row));
  }
  return keyed;
}

std::string Describe(const Row& row) {
  std::string out = "{";
  for (const auto& [column, value] : row)
    out += (out.size() > 1 ? ", " : "") + column + "=" + value;
  return out + "}";
}

}  // namespace

StatusOr<std::vector<LuComparison>> CompareSiteRows(const Catalog& catalog,
                                                    const std::string& master_db,
                                                    const std::string& replica_db,
                                                    const std::string& site) {
  const config::ReplicaSite* replica = catalog.FindReplica(site);
  if (!replica) return Status::NotFound("site '" + site + "' is not in the master configuration");
  sqlite::Db::Options options;
  options.create = false;
  auto master = sqlite::Db::Open(master_db, options);
  if (!master.ok()) return master.status();
  auto copy = sqlite::Db::Open(replica_db, options);
  if (!copy.ok()) return copy.status();
  // A catalog that shares the master's: the tables are named and shaped the same on both.
  auto shared = std::shared_ptr<const Catalog>(&catalog, [](const Catalog*) {});
  LuTables master_tables(*master, shared), replica_tables(*copy, shared);

  std::vector<LuComparison> comparisons;
  for (const auto& lu_name : replica->lus()) {
    const config::LogicalUnit& lu = *catalog.FindLu(lu_name);
    auto master_rows = master_tables.ReadAll(lu);
    if (!master_rows.ok()) return master_rows.status().Annotate(master_db);
    auto replica_rows = replica_tables.ReadAll(lu);
    if (!replica_rows.ok()) return replica_rows.status().Annotate(replica_db);
    std::vector<Row> routed;
    for (Row& row : *master_rows) {
      if (catalog.RoutesTo(*replica, lu, row)) routed.push_back(std::move(row));
    }
    LuComparison c;
    c.lu = lu_name;
    c.master_rows = routed.size();
    c.replica_rows = replica_rows->size();
    KeyedRows expected = ByKey(lu, std::move(routed));
    KeyedRows actual = ByKey(lu, std::move(replica_rows).value());
    std::vector<std::string> key_names(lu.key().begin(), lu.key().end());
    auto note = [&c](std::string text) {
      if (c.first_difference.empty()) c.first_difference = std::move(text);
    };
    for (const auto& [key, row] : expected) {
      auto it = actual.find(key);
      if (it == actual.end()) {
        ++c.missing;
        note(RowName(lu_name, key_names, row) + " is missing at the replica");
      } else if (it->second != row) {
        ++c.different;
        note(RowName(lu_name, key_names, row) + " differs: master " + Describe(row) + ", replica " +
             Describe(it->second));
      }
    }
    for (const auto& [key, row] : actual) {
      if (!expected.count(key)) {
        ++c.unexpected;
        note(RowName(lu_name, key_names, row) + " is at the replica but not routed to it");
      }
    }
    comparisons.push_back(std::move(c));
  }
  return comparisons;
}

}  // namespace ferry
