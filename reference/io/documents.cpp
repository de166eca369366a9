#include "reference/io/documents.h"

namespace dsv3::io {

std::vector<std::string_view> split_documents(std::string_view text) {
  std::vector<std::string_view> docs;
  auto keep = [&](size_t begin, size_t end) {
    if (end > begin) docs.push_back(text.substr(begin, end - begin));
  };
  size_t doc_begin = 0, line_begin = 0;
  while (line_begin < text.size()) {
    size_t nl = text.find('\n', line_begin);
    size_t line_end = nl == std::string_view::npos ? text.size() : nl;
    if (line_end - line_begin == 1 && text[line_begin] == kRecordSeparator) {
      // The document ends before the newline that precedes the separator line.
      keep(doc_begin, line_begin > doc_begin ? line_begin - 1 : doc_begin);
      doc_begin = line_end + 1;
    }
    if (nl == std::string_view::npos) break;
    line_begin = nl + 1;
  }
  if (doc_begin < text.size()) keep(doc_begin, text.size());
  return docs;
}

}  // namespace dsv3::io
