#ifndef FERRY_COMMON_CATALOG_H_
#define FERRY_COMMON_CATALOG_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/config.pb.h"
#include "proto/ferry.pb.h"

namespace ferry {

// A row's column values by name; a column that is absent is null.
using Row = std::map<std::string, std::string>;

// "Customer[customer_id=CU-5]": how errors and logs name a row.
std::string RowName(const std::string& lu,
                    const google::protobuf::Map<std::string, std::string>& keys);
std::string RowName(const std::string& lu, const std::vector<std::string>& key_names,
                    const Row& row);

// The master configuration, checked and indexed: the LU catalog and the replica sites.
// Immutable once built; safe to share between threads.
class Catalog {
 public:
  // Parses a text-format ferry.config.MasterConfiguration file and checks it.
  static StatusOr<std::shared_ptr<const Catalog>> Load(const std::string& path);
  // Checks `config`: identifiers, unique names, keys and references that resolve, replica
  // sites that name known LUs. The error names the LU, attribute or site that is wrong.
  static StatusOr<std::shared_ptr<const Catalog>> FromProto(config::MasterConfiguration config);

  const config::MasterConfiguration& proto() const { return config_; }
  // nullptr when there is no such LU or replica site.
  const config::LogicalUnit* FindLu(const std::string& name) const;
  const config::Attribute* FindAttribute(const config::LogicalUnit& lu,
                                         const std::string& name) const;
  const config::ReplicaSite* FindReplica(const std::string& name) const;
  // LUs that reference `lu`, with the reference: to refuse removing a referenced row.
  std::vector<std::pair<const config::LogicalUnit*, const config::Reference*>> ReferencesTo(
      const std::string& lu) const;

  // Checks a change against the catalog alone (not against stored rows): a known LU and
  // action, exactly the key's columns with non-empty values, known attributes only (MODIFY
  // names at least one, REMOVE none), values that fit their types.
  Status ValidateChange(const wire::LuChange& change) const;

  // Whether `replica` gets a row of `lu` whose columns are `row`.
  bool RoutesTo(const config::ReplicaSite& replica, const config::LogicalUnit& lu,
                const Row& row) const;

  // Every LU, each after the LUs it references (creation order; reverse it to delete).
  const std::vector<const config::LogicalUnit*>& ParentsFirst() const { return parents_first_; }

  // A digest of the configuration, to tell whether replicas have seen this version.
  std::string Digest() const;

 private:
  explicit Catalog(config::MasterConfiguration config) : config_(std::move(config)) {}
  Status Check();

  config::MasterConfiguration config_;
  std::map<std::string, int> lu_index_;       // LU name -> index in config_.lus()
  std::map<std::string, int> replica_index_;  // site name -> index in config_.replicas()
  std::vector<const config::LogicalUnit*> parents_first_;
};

// Whether `value` is a valid text form of `type` ("12", "-3" for INTEGER, "12.50" for REAL).
bool ValueFitsType(const std::string& value, config::AttributeType type);

// True when `lu` references itself (a manager that is an employee, a part of a part).
bool ReferencesItself(const config::LogicalUnit& lu);

// The rows of `lu` ordered so that a row comes after the row of `rows` it references through
// a reference of `lu` to itself (otherwise in their given order), as foreign keys checked at
// each insert want them. Rows in a reference cycle, which no order satisfies, come last.
std::vector<Row> SelfReferencedRowsFirst(const config::LogicalUnit& lu, std::vector<Row> rows);

}  // namespace ferry

#endif  // FERRY_COMMON_CATALOG_H_
