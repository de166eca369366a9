// `dsv3 fp8 ...` subcommands.
#include <CLI/CLI.hpp>

#include "app/cli.h"

namespace dsv3::app {

void add_fp8_commands(CLI::App& app) { (void)app; }

}  // namespace dsv3::app
