#ifndef FERRY_COMMON_COMMAND_LINE_H_
#define FERRY_COMMON_COMMAND_LINE_H_

#include <functional>
#include <optional>
#include <string>

namespace boost::program_options {
class options_description;
class variables_map;
}  // namespace boost::program_options

namespace ferry {

// How a program's main() reads its options, so that every Ferry program answers --help and a
// bad option the same way.
struct CommandLine {
  std::string program;    // "ferry-master": what an error starts with
  std::string help_tail;  // printed by --help after the options
  // The option that names an INI file of further settings, if the program takes one. The
  // command line's settings win over the file's.
  std::string config_option;
  // Offered each setting of that file that no option describes; false if the program does not
  // take it, which is an error naming the file and the setting. Without it, none is taken.
  std::function<bool(const std::string& key, const std::string& value)> other_setting;
  // Runs once every option is stored in its variable: checks and conversions that throw
  // boost::program_options::error or std::invalid_argument naming what is wrong.
  std::function<void()> check;
  // The variable of the program's --cpus option, if it takes one. Once the options are checked
  // and it is set, the process is kept to those CPUs (RunOnlyOnCpus), before main() starts any
  // thread; CPUs it cannot have are an error like any bad option.
  const std::string* cpus = nullptr;
};

// Parses `argv` by `described` into `*vm` and the variables the options are bound to.
// Returns main()'s exit code when main() should stop: 0 after printing --help, 2 after printing
// "<program>: <what is wrong>" and "(see <program> --help)" to stderr. nullopt: go on.
std::optional<int> ParseCommandLine(const CommandLine& line, int argc, char** argv,
                                    const boost::program_options::options_description& described,
                                    boost::program_options::variables_map* vm);

}  // namespace ferry

#endif  // FERRY_COMMON_COMMAND_LINE_H_
