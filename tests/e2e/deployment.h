#ifndef FERRY_TESTS_E2E_DEPLOYMENT_H_
#define FERRY_TESTS_E2E_DEPLOYMENT_H_

#include <string>

#include "bench/local_deployment.h"
#include "common/catalog.h"
#include "test_util.h"

namespace ferry::testing {

// The local deployment of real processes, in a test's TempDir, with the deployed master
// configuration and the executables of this build.
class Deployment : public LocalDeployment {
 public:
  explicit Deployment(const TempDir& dir)
      : LocalDeployment(FERRY_BIN_DIR, dir.path().string(), DeployedMasterConfiguration()) {}
};

// Expects (gtest) every LU of `site` in `replica_db` to equal the master's rows routed to it;
// returns the rows compared.
size_t ExpectRowsEqualMaster(const Catalog& catalog, const std::string& master_db,
                             const std::string& replica_db, const std::string& site);

// The whole text of a file ("" if it cannot be read).
std::string ReadFile(const std::string& path);

}  // namespace ferry::testing

#endif  // FERRY_TESTS_E2E_DEPLOYMENT_H_
