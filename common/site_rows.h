#ifndef FERRY_COMMON_SITE_ROWS_H_
#define FERRY_COMMON_SITE_ROWS_H_

#include <string>
#include <vector>

#include "common/catalog.h"
#include "common/status.h"

namespace ferry {

// How one LU's rows at a replica compare with the master's rows routed to that replica.
struct LuComparison {
  std::string lu;
  size_t master_rows = 0;  // master rows routed to the site
  size_t replica_rows = 0;
  size_t missing = 0;            // routed rows the replica lacks
  size_t unexpected = 0;         // replica rows the master does not route to it
  size_t different = 0;          // same key, other values
  std::string first_difference;  // one of them, described; empty when equal
  bool equal() const { return missing == 0 && unexpected == 0 && different == 0; }
};

// Compares, row by row, every LU the site gets: the master database's rows that `catalog`
// routes to `site` against the replica database's rows. Reads both SQLite files while the
// nodes may be running (WAL readers do not block them).
StatusOr<std::vector<LuComparison>> CompareSiteRows(const Catalog& catalog,
                                                    const std::string& master_db,
                                                    const std::string& replica_db,
                                                    const std::string& site);

}  // namespace ferry

#endif  // FERRY_COMMON_SITE_ROWS_H_
