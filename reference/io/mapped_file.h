// Memory a mapped checkpoint really occupies (issue 18): the process's resident set split into
// file-backed pages (a mapped safetensors shard counts only the pages a product has touched)
// and anonymous memory (float32 copies, caches, activations), and the page-cache residency of
// an address range. io::SafetensorsFile maps the shards (PROT_READ, MAP_PRIVATE) and parses only
// their headers, so opening a checkpoint costs time in proportion to its headers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dsv3::io {

struct ProcessMemory {
  uint64_t rss_anon = 0;  // bytes: heap, stacks, float32 weights
  uint64_t rss_file = 0;  // bytes: mapped file pages this process has faulted in
  uint64_t total() const { return rss_anon + rss_file; }
};
// From /proc/self/status (RssAnon, RssFile); zeros where the system does not report them.
ProcessMemory process_memory();

// Bytes of [p, p + n) whose pages are resident in memory (mincore), page-granular; 0 on error.
uint64_t resident_bytes(const void* p, size_t n);

}  // namespace dsv3::io
