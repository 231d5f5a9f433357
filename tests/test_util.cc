#include "test_util.h"

#include <unistd.h>

#include <fstream>
#include <random>
#include <thread>

namespace ferry::testing {

TempDir::TempDir() {
  std::random_device random;
  path_ = std::filesystem::temp_directory_path() /
          ("ferry-test-" + std::to_string(getpid()) + "-" + std::to_string(random()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  if (std::getenv("FERRY_KEEP_TEST_DIRS") == nullptr) std::filesystem::remove_all(path_, ignored);
}

std::string DeployedMasterConfiguration() {
  return std::string(FERRY_SOURCE_DIR) + "/deploy/master_configuration.txtpb";
}

std::string Executable(const std::string& name) { return std::string(FERRY_BIN_DIR) + "/" + name; }

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

wire::LuChange Change(const std::string& lu, wire::ChangeAction action,
                      const std::map<std::string, std::string>& keys,
                      const std::map<std::string, std::string>& attributes) {
  wire::LuChange change;
  change.set_lu(lu);
  change.set_action(action);
  change.mutable_keys()->insert(keys.begin(), keys.end());
  change.mutable_attributes()->insert(attributes.begin(), attributes.end());
  return change;
}

wire::SubmitRequest Transaction(const std::vector<wire::LuChange>& changes) {
  wire::SubmitRequest request;
  for (const auto& change : changes) *request.add_changes() = change;
  return request;
}

}  // namespace ferry::testing
