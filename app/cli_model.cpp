// `dsv3 forward | generate | info | demo`: the reference model's command line.
#include <CLI/CLI.hpp>

#include "app/cli.h"

namespace dsv3::app {

void add_model_commands(CLI::App& app) { (void)app; }

int run_default(int, char**) { return 0; }

}  // namespace dsv3::app
