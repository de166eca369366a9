// Command-line front end: each feature area registers its subcommands on the CLI11 app.
// Errors inside a subcommand are thrown as exceptions; main prints one line and exits 2.
#pragma once

#include <stdexcept>
#include <string>

namespace CLI {
class App;
}

namespace dsv3::app {

// A user error (bad argument, bad file): printed as "dsv3: <message>", exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Ends the program with this exit status after a subcommand has printed its own message.
struct ExitStatus {
  int code;
};

void add_train_commands(CLI::App& app);     // grad, train                      (app/cli/train.cpp)
void add_model_commands(CLI::App& app);     // forward, generate, demo          (app/cli/model.cpp)
void add_info_commands(CLI::App& app);      // info                             (app/cli/info.cpp)
void add_fp8_commands(CLI::App& app);       // fp8 ...                          (app/cli/fp8.cpp)
void add_fp8_train_compare(CLI::App& fp8);  // fp8 train-compare         (app/cli/fp8_train.cpp)
void add_pipeline_commands(CLI::App& app);  // pipeline ... (app/cli/pipeline.cpp)
void add_balance_commands(CLI::App& app);  // balance ...                      (app/cli/balance.cpp)
void add_mtp_commands(CLI::App& app);      // mtp-loss, mtp-demo               (app/cli/mtp.cpp)
void add_explore_commands(CLI::App& app);  // explore, repl, exec              (app/cli/explore.cpp)
void add_lesson_commands(CLI::App& app);   // lesson [N] [--plain]             (app/cli/lesson.cpp)
void add_tokenizer_commands(CLI::App& app);  // tokenizer ..., tokenize (app/cli/tokenizer.cpp)
void add_eval_commands(CLI::App& app);       // eval, experts                    (app/cli/eval.cpp)
void add_export_commands(CLI::App& app);  // export                           (app/cli/export.cpp)

// The explorer on the built-in tiny model (a text summary when there is no terminal).
int run_explorer_default();

// Runs when `dsv3` is called with no subcommand.
int run_default(int argc, char** argv);

}  // namespace dsv3::app
