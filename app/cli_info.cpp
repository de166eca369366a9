// `dsv3 info`: parameter, FLOP and KV-cache accounting of any config.
#include <CLI/CLI.hpp>

#include "app/cli.h"

namespace dsv3::app {

void add_info_commands(CLI::App& app) { (void)app; }

}  // namespace dsv3::app
