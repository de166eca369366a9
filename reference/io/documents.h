// Documents of a text file. Corpus files (scripts/build-corpus.sh) end every document with a
// line holding only the byte 0x1E (ASCII record separator): "doc1\n\x1e\ndoc2\n\x1e\n". A file
// without such a line is one document.
#pragma once

#include <string_view>
#include <vector>

namespace dsv3::io {

inline constexpr char kRecordSeparator = '\x1e';

// The documents of `text`, as views into it, in file order. A document is the text before its
// separator line without the newline that ends it (the corpus builder's `format_records`
// writes doc + "\n\x1e\n"). Text after the last separator line is a final document; empty
// documents are dropped.
std::vector<std::string_view> split_documents(std::string_view text);

}  // namespace dsv3::io
