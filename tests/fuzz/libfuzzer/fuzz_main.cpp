// libFuzzer's entry point for one target of tests/fuzz/targets.h, chosen at build time with
// DSV3_FUZZ_TARGET (tests/fuzz/CMakeLists.txt builds one executable per target).
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

#include "tests/fuzz/targets.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // What the CLI targets print is not checked; libFuzzer reports on stderr.
  const int null = ::open("/dev/null", O_WRONLY);
  if (null >= 0) ::dup2(null, STDOUT_FILENO);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return DSV3_FUZZ_TARGET(data, size);
}
