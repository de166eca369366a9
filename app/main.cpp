// dsv3: the DeepSeek-V3 explorer and reference model command line.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "app/cli/cli.h"

namespace {
// Kept equal to project(VERSION) in CMakeLists.txt (tests/app/test_conventions.cpp checks).
constexpr const char* kVersion = "0.1.0";
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dsv3: an interactive explorer and reference implementation of DeepSeek-V3", "dsv3"};
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", fmt::format("dsv3 {}", kVersion), "Print the version and exit");
  app.set_help_all_flag("--help-all", "Print help for every subcommand");
  dsv3::app::add_model_commands(app);
  dsv3::app::add_info_commands(app);
  dsv3::app::add_fp8_commands(app);
  dsv3::app::add_pipeline_commands(app);
  dsv3::app::add_balance_commands(app);
  dsv3::app::add_mtp_commands(app);
  dsv3::app::add_explore_commands(app);
  dsv3::app::add_lesson_commands(app);
  dsv3::app::add_train_commands(app);
  dsv3::app::add_tokenizer_commands(app);
  dsv3::app::add_eval_commands(app);
  dsv3::app::add_export_commands(app);
  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) return dsv3::app::run_default(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const dsv3::app::ExitStatus& e) {
    return e.code;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "dsv3: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dsv3: %s\n", e.what());
    return 2;
  }
  return 0;
}
