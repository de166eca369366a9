// Whether this test program runs under AddressSanitizer (the asan preset: clang -O1, every
// memory access checked, 3-10x slower than the ci build), and the length a long test runs at
// there.
//
// A handful of tests train for hundreds of steps, or feed the REPL 10^4 lines, to check a claim
// that needs that length (loss-free balancing bounds MaxVio, the tiny model memorises a text).
// Under the sanitizers those few took 13 of the suite's 15 minutes. There they run a shorter
// length that still executes every code path of the long run (each kind of step, the bias
// updates, every command of the random lines) and check what holds at that length; the claims
// that need the full length are checked by the ci stage, which runs the same tests at full
// length (docs/reliability.md, "The asan stage").
#pragma once

#include <cstdint>

namespace dsv3::test_support {

#if defined(__SANITIZE_ADDRESS__)  // gcc
inline constexpr bool kUnderSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)  // clang
inline constexpr bool kUnderSanitizer = true;
#else
inline constexpr bool kUnderSanitizer = false;
#endif
#else
inline constexpr bool kUnderSanitizer = false;
#endif

// `full` in the ci build, `reduced` under the sanitizers.
constexpr int64_t full_or_sanitized(int64_t full, int64_t reduced) {
  return kUnderSanitizer ? reduced : full;
}

}  // namespace dsv3::test_support
