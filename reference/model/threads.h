// When a loop of the model opens an OpenMP region.
#pragma once

#include <omp.h>

namespace dsv3::model {

// Whether a loop that is `worth` threads (its work is above the caller's bar) should open a
// region: only with a team of more than one and outside any other region. The test comes before
// the pragma instead of `parallel if (...)`: an inactive region still calls into the runtime
// every time, and inside another region it builds a team of one (futex calls included), which
// cost a tiny model's decode step as much as its products did.
inline bool open_team(bool worth) {
  return worth && !omp_in_parallel() && omp_get_max_threads() > 1;
}

}  // namespace dsv3::model
