// The byte-level pre-tokenizer against hand-worked splits of GPT-2's regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// and the bytes-to-unicode table. tests/tokenizer/test_hf_parity.cpp checks the same split
// against Hugging Face on 44 more strings.
#include <gtest/gtest.h>

#include <random>

#include "reference/io/byte_level.h"

namespace dsv3::io {
namespace {

using Words = std::vector<std::string>;

Words split(std::string_view text) {
  Words out;
  for (std::string_view w : pretokenize(text)) out.emplace_back(w);
  return out;
}

TEST(Pretokenize, WordsTakeTheSpaceBeforeThem) {
  EXPECT_EQ(split("Hello world"), (Words{"Hello", " world"}));
  EXPECT_EQ(split(""), Words{});
  EXPECT_EQ(split(" x"), Words{" x"});
}

TEST(Pretokenize, Contractions) {
  EXPECT_EQ(split("I'm sure they've"), (Words{"I", "'m", " sure", " they", "'ve"}));
  EXPECT_EQ(split("don't it'll we'd you're"),
            (Words{"don", "'t", " it", "'ll", " we", "'d", " you", "'re"}));
  // Case-sensitive, as in GPT-2: 'S is punctuation then a letter.
  EXPECT_EQ(split("IT'S"), (Words{"IT", "'", "S"}));
  // At the start of a run of punctuation the contraction wins only when it matches.
  EXPECT_EQ(split("''s"), (Words{"''", "s"}));
  EXPECT_EQ(split("'stop"), (Words{"'s", "top"}));
}

TEST(Pretokenize, WhitespaceRunsLeaveOneSpaceForTheNextWord) {
  EXPECT_EQ(split("a   b"), (Words{"a", "  ", " b"}));
  EXPECT_EQ(split("  word"), (Words{" ", " word"}));
  // A newline is not the optional space: a run of two before a word splits as 1 + 1.
  EXPECT_EQ(split("a\n\nb"), (Words{"a", "\n", "\n", "b"}));
  EXPECT_EQ(split("a\n  b"), (Words{"a", "\n ", " b"}));
  // At the end of the text the whole run is one word.
  EXPECT_EQ(split("x  \n"), (Words{"x", "  \n"}));
  EXPECT_EQ(split("   "), Words{"   "});
  // Tabs and indentation.
  EXPECT_EQ(split("\tif x:\n\t\treturn"), (Words{"\t", "if", " x", ":", "\n\t", "\t", "return"}));
}

TEST(Pretokenize, DigitsLettersAndPunctuationAreSeparateRuns) {
  EXPECT_EQ(split("abc123def 42nd"), (Words{"abc", "123", "def", " 42", "nd"}));
  EXPECT_EQ(split("x!!! (y) 3.14"), (Words{"x", "!!!", " (", "y", ")", " 3", ".", "14"}));
  EXPECT_EQ(split("½²"), Words{"½²"});  // No (other number) is in \p{N}
}

TEST(Pretokenize, UnicodeLettersNumbersAndSpaces) {
  EXPECT_EQ(split("Привет мир"), (Words{"Привет", " мир"}));
  EXPECT_EQ(split("Größe über"), (Words{"Größe", " über"}));
  EXPECT_EQ(split("你好世界。谢谢"), (Words{"你好世界", "。", "谢谢"}));
  EXPECT_EQ(split("🙂🙂 ok"), (Words{"🙂🙂", " ok"}));
  // Combining marks (Mn) are not letters: "é" as e + U+0301 splits.
  EXPECT_EQ(split("cafe\u0301s"), (Words{"cafe", "\u0301", "s"}));
  // NO-BREAK SPACE and IDEOGRAPHIC SPACE are white space, but not the optional ASCII space.
  EXPECT_EQ(split("a\u00a0b"), (Words{"a", "\u00a0", "b"}));
  EXPECT_EQ(split("a\u3000\u3000b"), (Words{"a", "\u3000", "\u3000", "b"}));
  // ZERO WIDTH SPACE is not White_Space: punctuation-like.
  EXPECT_EQ(split("a\u200bb"), (Words{"a", "\u200b", "b"}));
}

TEST(Pretokenize, InvalidUtf8BytesArePunctuationLike) {
  EXPECT_EQ(split("a\xff\xfe b"), (Words{"a", "\xff\xfe", " b"}));
  EXPECT_EQ(split("caf\xc3\xa9"), Words{"caf\xc3\xa9"});            // valid é: a letter
  EXPECT_EQ(split("caf\xc3"), (Words{"caf", "\xc3"}));              // truncated
  EXPECT_EQ(split("\xe4\xbd x"), (Words{"\xe4\xbd", " x"}));        // truncated 3-byte
  EXPECT_EQ(split("\xc0\xaf"), Words{"\xc0\xaf"});                  // overlong '/'
  EXPECT_EQ(split("\xed\xa0\x80z"), (Words{"\xed\xa0\x80", "z"}));  // a surrogate
}

TEST(Pretokenize, WordsConcatenateToTheTextForAnyBytes) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string s(rng() % 40, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 4 == 0 ? ' ' : rng() % 256);
    std::string joined;
    for (std::string_view w : pretokenize(s)) {
      ASSERT_FALSE(w.empty());
      joined += w;
    }
    ASSERT_EQ(joined, s);
  }
}

TEST(ByteToUnicode, Gpt2Table) {
  EXPECT_EQ(byte_to_unicode('A'), "A");
  EXPECT_EQ(byte_to_unicode(' '), "Ġ");   // U+0120
  EXPECT_EQ(byte_to_unicode('\n'), "Ċ");  // U+010A
  EXPECT_EQ(byte_to_unicode(0x00), "Ā");  // U+0100
  EXPECT_EQ(byte_to_unicode(0xAD), "Ń");  // the soft hyphen is remapped (U+0143)
  EXPECT_EQ(byte_to_unicode(0xFF), "ÿ");
  std::string all, back;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  ASSERT_TRUE(unicode_to_bytes(bytes_to_unicode(all), back));
  EXPECT_EQ(back, all);
  EXPECT_FALSE(unicode_to_bytes("中", back));
}

}  // namespace
}  // namespace dsv3::io
