// Does a config's float32 weights fit in this machine's memory? Checked before the weights are
// allocated (random_weights, load_weights), so that a config too large for the machine is
// refused at once with the size it needs, instead of allocating until the machine runs out.
#pragma once

#include <cstdint>

#include "reference/model/config.h"

namespace dsv3::model {

// The refusal: "v2-lite-16b needs 58.5 GiB for its float32 weights; this machine has 21.3 GiB
// available". A ConfigError, so every front end reports it as one line.
struct InsufficientMemory : ConfigError {
  using ConfigError::ConfigError;
};

// Floats that alloc_model (weights.h) allocates for `c` with `mtp_depth` MTP modules: the main
// model's parameters (reference/accounting's count_params total) plus, per MTP module, its
// block, eh_proj and three norms (the embedding and head are shared, not stored again).
int64_t weight_floats(const Config& c, int64_t mtp_depth);

// Bytes this process can still allocate: MemAvailable from /proc/meminfo (sysconf's available
// pages where there is none), capped by the cgroup's memory limit when one is set. -1: unknown.
int64_t available_memory_bytes();

// Throws InsufficientMemory when 4 * weight_floats(c, mtp_depth) exceeds `available` bytes
// (available < 0: unknown, nothing is checked).
void check_weights_fit(const Config& c, int64_t mtp_depth, int64_t available);
// The same against available_memory_bytes(); DSV3_NO_MEMORY_CHECK=1 skips it (swap, or an
// estimate that is wrong for this machine).
void check_weights_fit(const Config& c, int64_t mtp_depth);

}  // namespace dsv3::model
