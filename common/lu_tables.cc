#include "common/lu_tables.h"

#include <algorithm>

namespace ferry {
namespace {

const char* SqlType(config::AttributeType type) {
  switch (type) {
    case config::INTEGER:
      return "INTEGER";
    case config::REAL:
      return "REAL";
    default:
      return "TEXT";
  }
}

std::string Join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? separator : "") + parts[i];
  return out;
}

// "a=? AND b=?" for `columns`.
std::string Conditions(const std::vector<std::string>& columns) {
  std::vector<std::string> parts;
  for (const auto& c : columns) parts.push_back("\"" + c + "\"=?");
  return Join(parts, " AND ");
}

// How errors name the row a change is about. Built only for an error: Apply runs for every
// change at the master and at every replica.
std::string RowOf(const wire::LuChange& change) { return RowName(change.lu(), change.keys()); }

// `status` with the changed row's name in front, when it is an error.
Status ForRow(Status status, const wire::LuChange& change) {
  return status.ok() ? status : status.Annotate(RowOf(change));
}

std::vector<std::string> ToVector(const google::protobuf::RepeatedPtrField<std::string>& field) {
  return {field.begin(), field.end()};
}

}  // namespace

Status LuTables::CreateTables() {
  for (const auto& lu : catalog_->proto().lus()) {
    std::vector<std::string> columns;
    for (const auto& attribute : lu.attributes()) {
      bool is_key = std::find(lu.key().begin(), lu.key().end(), attribute.name()) != lu.key().end();
      columns.push_back("\"" + attribute.name() + "\" " + SqlType(attribute.type()) +
                        (is_key ? " NOT NULL" : ""));
    }
    std::vector<std::string> quoted_key;
    for (const auto& key : lu.key()) quoted_key.push_back("\"" + key + "\"");
    columns.push_back("PRIMARY KEY (" + Join(quoted_key, ", ") + ")");
    for (const auto& reference : lu.references()) {
      const config::LogicalUnit* target = catalog_->FindLu(reference.lu());
      std::vector<std::string> local, remote;
      for (const auto& a : reference.attributes()) local.push_back("\"" + a + "\"");
      for (const auto& k : target->key()) remote.push_back("\"" + k + "\"");
      columns.push_back("FOREIGN KEY (" + Join(local, ", ") + ") REFERENCES \"" +
                        TableName(target->name()) + "\" (" + Join(remote, ", ") + ")");
    }
    FERRY_RETURN_IF_ERROR(db_.Exec("CREATE TABLE IF NOT EXISTS \"" + TableName(lu.name()) + "\" (" +
                                   Join(columns, ", ") + ")"));
    // An index per reference, so refusing to remove a referenced row is not a table scan.
    for (int i = 0; i < lu.references_size(); ++i) {
      std::vector<std::string> local;
      for (const auto& a : lu.references(i).attributes()) local.push_back("\"" + a + "\"");
      FERRY_RETURN_IF_ERROR(db_.Exec("CREATE INDEX IF NOT EXISTS \"" + TableName(lu.name()) +
                                     "_ref" + std::to_string(i) + "\" ON \"" +
                                     TableName(lu.name()) + "\" (" + Join(local, ", ") + ")"));
    }
  }
  return Status::Ok();
}

StatusOr<sqlite::Statement*> LuTables::Cached(const std::string& sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    auto statement = db_.Prepare(sql);
    if (!statement.ok()) return statement.status();
    it = statements_.emplace(sql, std::move(statement).value()).first;
  }
  return &it->second;
}

StatusOr<std::optional<Row>> LuTables::ReadRow(const config::LogicalUnit& lu, const Row& key) {
  auto statement = Cached("SELECT * FROM \"" + TableName(lu.name()) + "\" WHERE " +
                          Conditions(ToVector(lu.key())));
  if (!statement.ok()) return statement.status();
  sqlite::Statement& s = **statement;
  for (int i = 0; i < lu.key_size(); ++i) s.Bind(i + 1, key.at(lu.key(i)));
  auto step = s.Step();
  if (!step.ok()) {
    s.Reset();
    return step.status();
  }
  std::optional<Row> row;
  if (*step == sqlite::Statement::StepResult::kRow) {
    row.emplace();
    for (int i = 0; i < lu.attributes_size(); ++i) {
      if (!s.ColumnIsNull(i)) (*row)[lu.attributes(i).name()] = s.ColumnText(i);
    }
  }
  s.Reset();
  return row;
}

StatusOr<std::vector<Row>> LuTables::ReadAll(const config::LogicalUnit& lu) {
  std::vector<Row> rows;
  FERRY_RETURN_IF_ERROR(ForEachRow(lu, [&rows](Row row) {
    rows.push_back(std::move(row));
    return Status::Ok();
  }));
  return rows;
}

Status LuTables::ForEachRow(const config::LogicalUnit& lu,
                            const std::function<Status(Row)>& visit) {
  std::vector<std::string> key;
  for (const auto& k : lu.key()) key.push_back("\"" + k + "\"");
  auto statement =
      db_.Prepare("SELECT * FROM \"" + TableName(lu.name()) + "\" ORDER BY " + Join(key, ", "));
  if (!statement.ok()) return statement.status();
  while (true) {
    auto step = statement->Step();
    if (!step.ok()) return step.status();
    if (*step == sqlite::Statement::StepResult::kDone) return Status::Ok();
    Row row;
    for (int i = 0; i < lu.attributes_size(); ++i) {
      if (!statement->ColumnIsNull(i)) row[lu.attributes(i).name()] = statement->ColumnText(i);
    }
    FERRY_RETURN_IF_ERROR(visit(std::move(row)));
  }
}

Status LuTables::DeleteAll() {
  const auto& order = catalog_->ParentsFirst();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    FERRY_RETURN_IF_ERROR(db_.Exec("DELETE FROM \"" + TableName((*it)->name()) + "\""));
  }
  return Status::Ok();
}

Status LuTables::CheckReference(const wire::LuChange& change, const config::Reference& reference,
                                const Row& row) {
  Row target_key;
  const config::LogicalUnit* target = catalog_->FindLu(reference.lu());
  for (int i = 0; i < reference.attributes_size(); ++i) {
    auto it = row.find(reference.attributes(i));
    if (it == row.end()) return Status::Ok();  // a reference with a null part points nowhere
    target_key[target->key(i)] = it->second;
  }
  auto found = ReadRow(*target, target_key);
  if (!found.ok()) return found.status();
  if (!found->has_value()) {
    return Status::NotFound(RowOf(change) + " references " +
                            RowName(target->name(), ToVector(target->key()), target_key) +
                            ", which does not exist");
  }
  return Status::Ok();
}

Status LuTables::CheckNotReferenced(const wire::LuChange& change, const config::LogicalUnit& lu,
                                    const Row& row) {
  for (const auto& [child, reference] : catalog_->ReferencesTo(lu.name())) {
    auto statement = Cached("SELECT * FROM \"" + TableName(child->name()) + "\" WHERE " +
                            Conditions(ToVector(reference->attributes())) + " LIMIT 1");
    if (!statement.ok()) return statement.status();
    sqlite::Statement& s = **statement;
    for (int i = 0; i < lu.key_size(); ++i) s.Bind(i + 1, row.at(lu.key(i)));
    auto step = s.Step();
    if (!step.ok()) return step.status();
    if (*step == sqlite::Statement::StepResult::kRow) {
      Row child_row;
      for (int i = 0; i < child->attributes_size(); ++i) {
        if (!s.ColumnIsNull(i)) child_row[child->attributes(i).name()] = s.ColumnText(i);
      }
      s.Reset();
      return Status::InvalidArgument("cannot remove " + RowOf(change) + ": " +
                                     RowName(child->name(), ToVector(child->key()), child_row) +
                                     " references it");
    }
    s.Reset();
  }
  return Status::Ok();
}

Status LuTables::Apply(const wire::LuChange& change, Row* row_out) {
  const config::LogicalUnit* lu = catalog_->FindLu(change.lu());
  if (!lu) return Status::InvalidArgument("unknown LU '" + change.lu() + "'");
  Row key(change.keys().begin(), change.keys().end());
  auto before = ReadRow(*lu, key);
  if (!before.ok()) return ForRow(before.status(), change);

  const std::string table = "\"" + TableName(lu->name()) + "\"";
  if (change.action() == wire::NEW) {
    if (before->has_value()) return Status::AlreadyExists(RowOf(change) + " already exists");
    Row after = key;
    after.insert(change.attributes().begin(), change.attributes().end());
    for (const auto& reference : lu->references()) {
      FERRY_RETURN_IF_ERROR(CheckReference(change, reference, after));
    }
    std::vector<std::string> columns, marks;
    for (const auto& [column, value] : after) {
      columns.push_back("\"" + column + "\"");
      marks.push_back("?");
    }
    auto statement = Cached("INSERT INTO " + table + " (" + Join(columns, ", ") + ") VALUES (" +
                            Join(marks, ", ") + ")");
    if (!statement.ok()) return statement.status();
    int index = 1;
    for (const auto& [column, value] : after) (*statement)->Bind(index++, value);
    FERRY_RETURN_IF_ERROR(ForRow((*statement)->Run(), change));
    if (row_out) *row_out = std::move(after);
    return Status::Ok();
  }

  if (!before->has_value()) return Status::NotFound(RowOf(change) + " does not exist");
  Row current = std::move(**before);
  if (change.action() == wire::REMOVE) {
    FERRY_RETURN_IF_ERROR(CheckNotReferenced(change, *lu, current));
    auto statement = Cached("DELETE FROM " + table + " WHERE " + Conditions(ToVector(lu->key())));
    if (!statement.ok()) return statement.status();
    for (int i = 0; i < lu->key_size(); ++i) (*statement)->Bind(i + 1, key.at(lu->key(i)));
    FERRY_RETURN_IF_ERROR(ForRow((*statement)->Run(), change));
    if (row_out) *row_out = std::move(current);
    return Status::Ok();
  }

  // MODIFY: only the references that involve a changed attribute can break.
  for (const auto& [column, value] : change.attributes()) current[column] = value;
  for (const auto& reference : lu->references()) {
    bool touched = std::any_of(reference.attributes().begin(), reference.attributes().end(),
                               [&](const std::string& a) { return change.attributes().count(a); });
    if (touched) FERRY_RETURN_IF_ERROR(CheckReference(change, reference, current));
  }
  // The protobuf map has no stable order: the SET list and the binds both follow `sorted`.
  std::map<std::string, std::string> sorted(change.attributes().begin(), change.attributes().end());
  std::vector<std::string> assignments;
  for (const auto& [column, value] : sorted) assignments.push_back("\"" + column + "\"=?");
  auto statement = Cached("UPDATE " + table + " SET " + Join(assignments, ", ") + " WHERE " +
                          Conditions(ToVector(lu->key())));
  if (!statement.ok()) return statement.status();
  int index = 1;
  for (const auto& [column, value] : sorted) (*statement)->Bind(index++, value);
  for (const auto& k : lu->key()) (*statement)->Bind(index++, key.at(k));
  FERRY_RETURN_IF_ERROR(ForRow((*statement)->Run(), change));
  if (row_out) *row_out = std::move(current);
  return Status::Ok();
}

}  // namespace ferry
