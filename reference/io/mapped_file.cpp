#include "reference/io/mapped_file.h"

#include <sys/mman.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace dsv3::io {

ProcessMemory process_memory() {
  ProcessMemory m;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream s(line);
    std::string key;
    uint64_t kb = 0;
    s >> key >> kb;
    if (key == "RssAnon:") m.rss_anon = kb * 1024;
    if (key == "RssFile:") m.rss_file = kb * 1024;
  }
  return m;
}

uint64_t resident_bytes(const void* p, size_t n) {
  if (!p || n == 0) return 0;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(p) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(p) + n + page - 1) / page * page;
  std::vector<unsigned char> vec((end - begin) / page);
  if (::mincore(reinterpret_cast<void*>(begin), end - begin, vec.data()) != 0) return 0;
  uint64_t pages = 0;
  for (unsigned char v : vec) pages += v & 1;
  return pages * page;
}

}  // namespace dsv3::io
