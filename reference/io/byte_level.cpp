#include "reference/io/byte_level.h"

#include <algorithm>

namespace dsv3::io {
namespace {

struct CodeRange {
  char32_t lo, hi;
};
#include "reference/io/unicode_classes.inc"

// Unicode's White_Space property (PropList.txt; unchanged since Unicode 6.3). Python's
// str.isspace() differs (it also counts U+001C..U+001F), so this short list is written out.
constexpr CodeRange kSpaceRanges[] = {
    {0x09, 0x0D},     {0x20, 0x20},     {0x85, 0x85},     {0xA0, 0xA0},     {0x1680, 0x1680},
    {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}};

template <size_t N>
bool in_ranges(const CodeRange (&table)[N], char32_t cp) {
  // The last range whose lo <= cp, then a bounds check.
  auto it = std::upper_bound(std::begin(table), std::end(table), cp,
                             [](char32_t c, const CodeRange& r) { return c < r.lo; });
  return it != std::begin(table) && cp <= std::prev(it)->hi;
}

CharClass classify_slow(char32_t cp) {
  if (in_ranges(kLetterRanges, cp)) return CharClass::kLetter;
  if (in_ranges(kNumberRanges, cp)) return CharClass::kNumber;
  if (in_ranges(kSpaceRanges, cp)) return CharClass::kSpace;
  return CharClass::kOther;
}

// ASCII is most of every corpus: one table lookup instead of three binary searches.
struct AsciiClasses {
  std::array<CharClass, 128> c{};
  AsciiClasses() {
    for (char32_t cp = 0; cp < 128; ++cp) c[cp] = classify_slow(cp);
  }
};
const AsciiClasses kAscii;

constexpr char32_t kInvalid = 0xFFFFFFFF;

// GPT-2's table: byte -> code point.
struct ByteAlphabet {
  std::array<std::string, 256> utf8;  // byte -> its character in UTF-8
  std::array<int16_t, 0x144> back{};  // code point -> byte, -1 where none
  ByteAlphabet() {
    back.fill(-1);
    char32_t next = 0x100;  // unprintable bytes take U+0100.. in byte order
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      char32_t cp = printable ? static_cast<char32_t>(b) : next++;
      back[cp] = static_cast<int16_t>(b);
      // Every code point here is below U+0800: one or two UTF-8 bytes.
      utf8[b] = cp < 0x80 ? std::string(1, static_cast<char>(cp))
                          : std::string{static_cast<char>(0xC0 | (cp >> 6)),
                                        static_cast<char>(0x80 | (cp & 0x3F))};
    }
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

bool is_cont(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

}  // namespace

CharClass char_class(char32_t cp) {
  if (cp < 128) return kAscii.c[cp];
  if (cp == kInvalid) return CharClass::kOther;
  return classify_slow(cp);
}

Utf8Char decode_utf8(std::string_view s, size_t i) {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = at(i);
  if (c < 0x80) return {c, 1};
  const size_t left = s.size() - i;
  // Well-formed sequences (Unicode Table 3-7): the second byte's range depends on the first,
  // which rules out overlong forms, surrogates and code points above U+10FFFF.
  if (c >= 0xC2 && c <= 0xDF && left >= 2 && is_cont(at(i + 1)))
    return {static_cast<char32_t>(((c & 0x1F) << 6) | (at(i + 1) & 0x3F)), 2};
  if (c >= 0xE0 && c <= 0xEF && left >= 3) {
    const unsigned char c1 = at(i + 1), c2 = at(i + 2);
    const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    if (c1 >= lo && c1 <= hi && is_cont(c2))
      return {static_cast<char32_t>(((c & 0x0F) << 12) | ((c1 & 0x3F) << 6) | (c2 & 0x3F)), 3};
  }
  if (c >= 0xF0 && c <= 0xF4 && left >= 4) {
    const unsigned char c1 = at(i + 1), c2 = at(i + 2), c3 = at(i + 3);
    const unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    if (c1 >= lo && c1 <= hi && is_cont(c2) && is_cont(c3))
      return {static_cast<char32_t>(((c & 0x07) << 18) | ((c1 & 0x3F) << 12) | ((c2 & 0x3F) << 6) |
                                    (c3 & 0x3F)),
              4};
  }
  return {kInvalid, 1};
}

// One step of the regex: the end of the match that starts at i. The alternatives are tried in
// the regex's order; the first that matches wins (as in a backtracking regex engine).
size_t next_pretoken(std::string_view text, size_t i) {
  const size_t n = text.size();
  const Utf8Char c = decode_utf8(text, i);

  // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, as in GPT-2).
  if (c.cp == '\'') {
    std::string_view rest = text.substr(i + 1);
    for (std::string_view suffix : {"s", "t", "re", "ve", "m", "ll", "d"})
      if (rest.substr(0, suffix.size()) == suffix) return i + 1 + suffix.size();
  }

  // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional ASCII space, then a run of one
  // class. Without the space, c itself starts the run (a space is never in the three classes).
  const size_t start = (c.cp == ' ' && i + 1 < n) ? i + 1 : i;
  const CharClass cls = char_class(start == i ? c.cp : decode_utf8(text, start).cp);
  if (cls != CharClass::kSpace) {
    size_t j = start;
    while (j < n) {
      const Utf8Char d = decode_utf8(text, j);
      if (char_class(d.cp) != cls) break;
      j += d.len;
    }
    return j;
  }

  // `\s+(?!\S)|\s+`: a whitespace run. Followed by the end of the text it is one word.
  // Followed by a non-space, `\s+(?!\S)` backs off by one character (that character then
  // starts the next word, e.g. " word"), unless the run is one character long, which `\s+`
  // takes alone.
  size_t j = i, last = i;
  int count = 0;
  while (j < n) {
    const Utf8Char d = decode_utf8(text, j);
    if (char_class(d.cp) != CharClass::kSpace) break;
    last = j;
    j += d.len;
    ++count;
  }
  if (j == n || count == 1) return j;
  return last;
}

std::vector<std::string_view> pretokenize(std::string_view text) {
  std::vector<std::string_view> words;
  for_each_pretoken(text, [&](std::string_view w) { words.push_back(w); });
  return words;
}

const std::string& byte_to_unicode(uint8_t b) {
  return alphabet().utf8[b];
}

std::string bytes_to_unicode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += alphabet().utf8[b];
  return out;
}

bool unicode_to_bytes(std::string_view s, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size();) {
    const Utf8Char c = decode_utf8(s, i);
    if (c.cp >= alphabet().back.size() || alphabet().back[c.cp] < 0) return false;
    out += static_cast<char>(alphabet().back[c.cp]);
    i += c.len;
  }
  return true;
}

}  // namespace dsv3::io
