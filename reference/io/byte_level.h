// The byte-level pieces of a GPT-2 / DeepSeek-V3 style BPE tokenizer:
//  - the pre-tokenizer, which cuts text into words before BPE runs on each word, and
//  - the bytes-to-unicode table that spells every byte as a printable character, the form in
//    which a Hugging Face tokenizer.json stores its vocabulary and merges.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dsv3::io {

// The character classes the pre-tokenizer distinguishes. Letters are \p{L} (Lu Ll Lt Lm Lo),
// numbers \p{N} (Nd Nl No), space is Unicode's White_Space property (what \s means in
// Oniguruma and Rust's regex), everything else is kOther (punctuation, symbols, marks, emoji).
enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };
CharClass char_class(char32_t cp);

// Decodes one UTF-8 character at text[i]: its code point and its length in bytes. A byte that
// does not start a well-formed character (a stray continuation byte, a truncated or overlong
// sequence, a surrogate) is one character of length 1 with code point 0xFFFFFFFF, which is
// classed kOther: invalid UTF-8 still pre-tokenizes, and every byte stays in exactly one word.
struct Utf8Char {
  char32_t cp;
  int len;
};
Utf8Char decode_utf8(std::string_view text, size_t i);

// GPT-2's byte-level pre-tokenization, written out by hand. It splits text exactly as the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// does (leftmost alternative first at each position), i.e. Hugging Face's ByteLevel
// pre-tokenizer with use_regex=true. The words are views into `text`; their concatenation is
// `text`.
std::vector<std::string_view> pretokenize(std::string_view text);

// Calls f(word) for each word of pretokenize(text), without building the vector.
template <class F>
void for_each_pretoken(std::string_view text, F&& f);

// GPT-2's bytes_to_unicode: the 188 printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map
// to themselves, the other 68 bytes to U+0100.. in byte order (space 0x20 -> 'Ġ' U+0120,
// newline 0x0A -> 'Ċ' U+010A). Returns the UTF-8 spelling of byte b's character.
const std::string& byte_to_unicode(uint8_t b);
// Bytes -> their byte-level spelling (the vocabulary string of a token).
std::string bytes_to_unicode(std::string_view bytes);
// The inverse: a byte-level spelling back to bytes. Returns false when `s` holds a character
// outside the 256-character byte alphabet.
bool unicode_to_bytes(std::string_view s, std::string& out);

// ---- implementation of the template ----
size_t next_pretoken(std::string_view text, size_t i);  // end of the word that starts at i

template <class F>
void for_each_pretoken(std::string_view text, F&& f) {
  for (size_t i = 0; i < text.size();) {
    size_t j = next_pretoken(text, i);
    f(text.substr(i, j - i));
    i = j;
  }
}

}  // namespace dsv3::io
