// `dsv3 balance ...` subcommands.
#include <CLI/CLI.hpp>

#include "app/cli.h"

namespace dsv3::app {

void add_balance_commands(CLI::App& app) { (void)app; }

}  // namespace dsv3::app
