#include "common/command_line.h"

#include <boost/program_options.hpp>
#include <iostream>
#include <stdexcept>

#include "common/cpus.h"

namespace ferry {

namespace po = boost::program_options;

std::optional<int> ParseCommandLine(const CommandLine& line, int argc, char** argv,
                                    const po::options_description& described,
                                    po::variables_map* vm) {
  try {
    po::store(po::parse_command_line(argc, argv, described), *vm);
    if (vm->count("help")) {
      std::cout << described << "\n" << line.help_tail;
      return 0;
    }
    if (!line.config_option.empty() && vm->count(line.config_option)) {
      const std::string path = (*vm)[line.config_option].as<std::string>();
      auto parsed = po::parse_config_file<char>(path.c_str(), described,
                                                /*allow_unregistered=*/true);
      for (const auto& option : parsed.options) {
        if (!option.unregistered) continue;
        const std::string value = option.value.empty() ? "" : option.value.front();
        if (!line.other_setting || !line.other_setting(option.string_key, value)) {
          throw po::error(path + ": unknown option '" + option.string_key + "'");
        }
      }
      po::store(parsed, *vm);
    }
    po::notify(*vm);
    if (line.check) line.check();
    if (line.cpus && !line.cpus->empty()) {
      if (Status placed = RunOnlyOnCpus(*line.cpus); !placed.ok()) {
        throw po::error("--cpus: " + placed.message());
      }
    }
  } catch (const std::exception& e) {
    std::cerr << line.program << ": " << e.what() << "\n(see " << line.program << " --help)\n";
    return 2;
  }
  return std::nullopt;
}

}  // namespace ferry
