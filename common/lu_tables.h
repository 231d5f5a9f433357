#ifndef FERRY_COMMON_LU_TABLES_H_
#define FERRY_COMMON_LU_TABLES_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/catalog.h"
#include "common/sqlite.h"
#include "common/status.h"

namespace ferry {

// The catalog's LU tables in one SQLite database ("lu_<LU>", keys as primary key, references
// as foreign keys), and the one implementation of applying an LU change to them, shared by
// the master (commit) and the worker (apply), so both reject the same things the same way.
// Not thread-safe; the Db must outlive it.
class LuTables {
 public:
  LuTables(sqlite::Db& db, std::shared_ptr<const Catalog> catalog)
      : db_(db), catalog_(std::move(catalog)) {}

  static std::string TableName(const std::string& lu) { return "lu_" + lu; }

  // Creates any missing table and foreign-key index.
  Status CreateTables();

  // Applies a change that passed Catalog::ValidateChange. Rejects, with an error that names
  // the row: NEW of a row that exists, MODIFY or REMOVE of one that does not, a reference to a
  // row that does not exist, REMOVE of a row still referenced. One statement when the change
  // holds (SQLite's keys and foreign keys do the checking); only a rejected change pays for
  // the reads that find what is wrong. On success `*row` (if not null) holds the row's
  // columns after NEW or MODIFY, before REMOVE.
  // REQUIRES: inside a transaction, so a failure can be rolled back whole.
  Status Apply(const wire::LuChange& change, Row* row);

  // The row of `lu` with key `key`, or nullopt.
  StatusOr<std::optional<Row>> ReadRow(const config::LogicalUnit& lu, const Row& key);
  // Every row of `lu`, ordered by key.
  StatusOr<std::vector<Row>> ReadAll(const config::LogicalUnit& lu);
  // Calls `visit` with every row of `lu`, ordered by key, without holding them all; stops at
  // the first error `visit` returns.
  Status ForEachRow(const config::LogicalUnit& lu, const std::function<Status(Row)>& visit);
  // Deletes every row of every LU, children first.
  Status DeleteAll();

 private:
  // An LU's statements, prepared on first use: the SQL is built once, not per change.
  struct LuStatements {
    std::optional<sqlite::Statement> insert, remove;
    std::map<std::string, sqlite::Statement> update;  // by which attributes it sets ("0110")
  };
  // The cached prepared statement for `sql`: for what runs only to explain a rejection.
  StatusOr<sqlite::Statement*> Cached(const std::string& sql);
  // After a change failed a constraint: the reads that say which row is missing or in the way.
  Status Explain(const wire::LuChange& change, const config::LogicalUnit& lu, Status failure);
  // Errors name the row `change` is about.
  Status CheckReference(const wire::LuChange& change, const config::Reference& reference,
                        const Row& row);
  Status CheckNotReferenced(const wire::LuChange& change, const config::LogicalUnit& lu,
                            const Row& row);

  sqlite::Db& db_;
  std::shared_ptr<const Catalog> catalog_;
  std::map<const config::LogicalUnit*, LuStatements> lu_statements_;
  std::map<std::string, sqlite::Statement> statements_;  // by SQL text
};

}  // namespace ferry

#endif  // FERRY_COMMON_LU_TABLES_H_
