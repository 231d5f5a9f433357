// --cpus: CPU lists read and written as Linux writes them, and a thread restricted to them, or
// told which CPUs it cannot have and left as it was.
#include "common/cpus.h"

#include <gmock/gmock.h>

#include <thread>

#include "test_util.h"

namespace ferry {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseCpuListTest, ReadsNumbersRangesAndBothTogether) {
  auto one = ParseCpuList("1");
  ASSERT_OK(one.status());
  EXPECT_THAT(*one, ElementsAre(1));
  auto mixed = ParseCpuList("5,0-2,2");
  ASSERT_OK(mixed.status());
  EXPECT_THAT(*mixed, ElementsAre(0, 1, 2, 5));  // ascending, each once
  EXPECT_EQ(FormatCpuList(*mixed), "0-2,5");
  EXPECT_EQ(FormatCpuList({3}), "3");
  EXPECT_EQ(FormatCpuList({0, 1, 3, 4, 5, 7}), "0-1,3-5,7");
}

TEST(ParseCpuListTest, NamesWhatIsWrong) {
  struct Case {
    std::string text, says;
  };
  const std::vector<Case> cases = {
      {"", "'' is not a CPU list (like 0, 0-3 or 0,2-3): it is empty"},
      {"a", "'a' is not a CPU number below 1024 or a range of them"},
      {"0,", "'' is not a CPU number"},
      {"0-", "'0-' is not a CPU number"},
      {"-1", "'-1' is not a CPU number"},
      {"1024", "'1024' is not a CPU number below 1024"},
      {"3-1", "the range '3-1' ends before it starts"},
  };
  for (const Case& c : cases) {
    auto cpus = ParseCpuList(c.text);
    ASSERT_FALSE(cpus.ok()) << c.text;
    EXPECT_THAT(cpus.status().message(), HasSubstr(c.says)) << c.text;
  }
}

// On a thread of its own, so that this test's process keeps its CPUs.
TEST(RunOnlyOnCpusTest, RestrictsTheThreadOrSaysWhichCpusItCannotHave) {
  std::thread([] {
    const std::vector<int> allowed = AllowedCpus();
    ASSERT_FALSE(allowed.empty());
    const std::string last = std::to_string(allowed.back());

    // A CPU no machine here has: refused, naming it, and the thread's CPUs are unchanged.
    Status refused = RunOnlyOnCpus(last + ",1000");
    EXPECT_EQ(refused.code(), Status::Code::kInvalidArgument);
    EXPECT_THAT(refused.message(), HasSubstr("'" + last +
                                             ",1000' names CPUs this process may not run on: 1000 "
                                             "(this machine's online CPUs: "));
    EXPECT_EQ(AllowedCpus(), allowed);
    EXPECT_EQ(RunOnlyOnCpus("1000").code(), Status::Code::kInvalidArgument);
    EXPECT_EQ(AllowedCpus(), allowed);
    EXPECT_EQ(RunOnlyOnCpus("x").code(), Status::Code::kInvalidArgument);

    ASSERT_OK(RunOnlyOnCpus(last));
    EXPECT_THAT(AllowedCpus(), ElementsAre(allowed.back()));
    // A thread started now inherits it.
    std::vector<int> inherited;
    std::thread([&] { inherited = AllowedCpus(); }).join();
    EXPECT_THAT(inherited, ElementsAre(allowed.back()));
  }).join();
}

}  // namespace
}  // namespace ferry
