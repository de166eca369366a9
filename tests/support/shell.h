// Running a command from a test through the shell: its exit status and standard output. The
// command-line tests run the built `dsv3` (DSV3_BINARY) this way, never on a terminal.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace dsv3::test_support {

struct ShellResult {
  int status = -1;  // exit status; -1 when the command could not run or was killed
  std::string out;  // standard output (plus whatever the command redirects into it)
};

inline ShellResult shell(const std::string& command) {
  ShellResult r;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

#ifdef DSV3_BINARY
// `dsv3 ARGS` (ARGS already quoted for the shell) with stderr folded into out and stdin empty.
inline ShellResult dsv3_cli(const std::string& args) {
  return shell("'" + std::string(DSV3_BINARY) + "' " + args + " 2>&1 < /dev/null");
}
#endif

}  // namespace dsv3::test_support
