#include "e2e/deployment.h"

#include <fstream>
#include <sstream>

#include "common/site_rows.h"

namespace ferry::testing {

size_t ExpectRowsEqualMaster(const Catalog& catalog, const std::string& master_db,
                             const std::string& replica_db, const std::string& site) {
  auto comparisons = CompareSiteRows(catalog, master_db, replica_db, site);
  EXPECT_TRUE(comparisons.ok()) << comparisons.status().ToString();
  if (!comparisons.ok()) return 0;
  size_t rows = 0;
  for (const auto& c : *comparisons) {
    EXPECT_TRUE(c.equal()) << site << " " << c.lu << ": " << c.first_difference;
    rows += c.replica_rows;
  }
  return rows;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace ferry::testing
