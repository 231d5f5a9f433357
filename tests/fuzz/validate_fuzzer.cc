// libFuzzer target: the transaction validator. Arbitrary bytes as a SubmitRequest are checked
// against the deployed catalog and applied to an in-memory database of its LU tables, then
// rolled back. Whatever the input: a value or an error with a message, never a crash, and a
// change the validator rejects is never applied.
#include <cstdint>
#include <cstdlib>

#include "common/catalog.h"
#include "common/lu_tables.h"
#include "common/sqlite.h"
#include "proto/ferry.pb.h"

namespace {

struct World {
  std::shared_ptr<const ferry::Catalog> catalog;
  std::optional<ferry::sqlite::Db> db;
  std::optional<ferry::LuTables> tables;
};

World& TheWorld() {
  static World* world = [] {
    auto* w = new World;
    auto catalog = ferry::Catalog::Load(FERRY_SOURCE_DIR "/deploy/master_configuration.txtpb");
    if (!catalog.ok()) std::abort();
    w->catalog = *catalog;
    auto db = ferry::sqlite::Db::Open(":memory:", {});
    if (!db.ok()) std::abort();
    w->db.emplace(std::move(db).value());
    w->tables.emplace(*w->db, w->catalog);
    if (!w->tables->CreateTables().ok()) std::abort();
    // A few rows to reference, modify and refuse to remove.
    auto tx = ferry::sqlite::Transaction::Begin(*w->db);
    for (const char* sql : {"INSERT INTO lu_Company VALUES ('C1', 'One')",
                            "INSERT INTO lu_Site VALUES ('C1-S1', 'C1', 'Site')",
                            "INSERT INTO lu_Customer VALUES ('CU-1', 'C1', 'Cust', 100)",
                            "INSERT INTO lu_Item VALUES ('C1-S1', 'P-1', 'Part', 10.0)",
                            "INSERT INTO lu_CustomerOrder VALUES ('O-1', 'CU-1', 'C1-S1', "
                            "'2026-01-01', 'Planned')"}) {
      if (!w->db->Exec(sql).ok()) std::abort();
    }
    if (!tx.ok() || !tx->Commit().ok()) std::abort();
    return w;
  }();
  return *world;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferry::wire::SubmitRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  World& world = TheWorld();
  auto transaction = ferry::sqlite::Transaction::Begin(*world.db);
  if (!transaction.ok()) std::abort();
  for (const auto& change : request.changes()) {
    ferry::Status valid = world.catalog->ValidateChange(change);
    if (!valid.ok()) {
      if (valid.message().empty()) std::abort();
      continue;  // rejected: never applied
    }
    ferry::Status applied = world.tables->Apply(change, nullptr);
    if (!applied.ok() && applied.message().empty()) std::abort();
  }
  return 0;  // the transaction rolls back: every input starts from the same rows
}
