// The lesson file format: every malformed file is rejected with "PATH:LINE: problem", the
// expression language of checks and interpolations, and the value formats of the prose.
#include <gtest/gtest.h>

#include <string>

#include "app/lesson/lesson.h"
#include "app/lesson/player.h"

namespace dsv3::app::lesson {
namespace {

using nlohmann::json;

const char* kGood = R"(# A lesson

A summary.

## First step

Some prose with {{x.a}} and {{x.b:.2f}}.

Paper: DeepSeek-V3 §2.1, eq. (1)
Code: reference/model/kv_cache.cpp KVCache::bytes

```dsv3
let x = info --json
info
```

```check
x.num_hidden_layers > 0   # it has layers
```

Think: why?
)";

std::string error_of(const std::string& text) {
  try {
    parse_lesson(text, "lessons/99-bad.md");
  } catch (const LessonError& e) {
    return e.what();
  }
  return "(no error)";
}

// Replaces the first occurrence of `from` in the good lesson.
std::string good_with(const std::string& from, const std::string& to) {
  std::string s = kGood;
  size_t p = s.find(from);
  EXPECT_NE(p, std::string::npos) << from;
  return s.replace(p, from.size(), to);
}

TEST(LessonFormat, ParsesTheGoodLesson) {
  Lesson l = parse_lesson(kGood, "lessons/07-x.md");
  EXPECT_EQ(l.number, 7);
  EXPECT_EQ(l.title, "A lesson");
  EXPECT_EQ(l.summary, "A summary.");
  ASSERT_EQ(l.steps.size(), 1u);
  const Step& s = l.steps[0];
  EXPECT_EQ(s.title, "First step");
  EXPECT_EQ(s.line, 5);
  ASSERT_EQ(s.commands.size(), 2u);
  EXPECT_EQ(s.commands[0].bind, "x");
  EXPECT_EQ(s.commands[0].command, "info --json");
  EXPECT_EQ(s.commands[1].bind, "");
  ASSERT_EQ(s.checks.size(), 1u);
  EXPECT_EQ(s.checks[0].label, "it has layers");
  EXPECT_EQ(s.checks[0].line, 18);
  EXPECT_EQ(s.think, "why?");
  ASSERT_EQ(s.code_refs.size(), 1u);
  EXPECT_EQ(s.code_refs[0].path, "reference/model/kv_cache.cpp");
  EXPECT_EQ(s.code_refs[0].function, "KVCache::bytes");
}

struct Malformed {
  std::string from, to;
  std::string expect;  // substring of the message, which must start with the path and line
};

class LessonErrors : public ::testing::TestWithParam<Malformed> {};

TEST_P(LessonErrors, NameFileLineAndProblem) {
  const Malformed& m = GetParam();
  std::string e = error_of(good_with(m.from, m.to));
  EXPECT_NE(e.find(m.expect), std::string::npos) << e;
  EXPECT_EQ(e.rfind("lessons/99-bad.md:", 0), 0u) << e;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LessonErrors,
    ::testing::Values(
        Malformed{"# A lesson", "A lesson", "99-bad.md:1: expected '# Title'"},
        Malformed{"Paper: DeepSeek-V3 §2.1, eq. (1)\n", "",
                  "99-bad.md:5: step 'First step' cites no paper section"},
        Malformed{"Code: reference/model/kv_cache.cpp KVCache::bytes\n", "",
                  "99-bad.md:5: step 'First step' cites no code"},
        Malformed{"KVCache::bytes", "",
                  "99-bad.md:10: 'Code:' entry 'reference/model/kv_cache.cpp' names no function"},
        Malformed{"kv_cache.cpp KVCache", "kv_cache.txt KVCache", "99-bad.md:10: 'Code:' path"},
        Malformed{"```dsv3", "```dsv", "99-bad.md:12: unknown block type 'dsv'"},
        Malformed{"info\n```", "inf0\n```",
                  "99-bad.md:14: unknown command 'inf0' (did you mean info?)"},
        Malformed{"let x = info", "let 1x = info", "99-bad.md:13: malformed binding"},
        Malformed{"x.num_hidden_layers > 0", "x.num_hidden_layers >",
                  "99-bad.md:18: check 'x.num_hidden_layers >'"},
        Malformed{"x.num_hidden_layers > 0", "(x.a",
                  "99-bad.md:18: check '(x.a': column 5: expected ')'"},
        Malformed{"{{x.b:.2f}}", "{{x.b:.2q}}", "99-bad.md:7: in {{x.b:.2q}}: unknown format"},
        Malformed{"{{x.b:.2f}}", "{{x.b", "99-bad.md:7: '{{' without a closing '}}'"},
        Malformed{"{{x.a}}", "{{x +}}", "99-bad.md:7: in {{x +}}"},
        Malformed{"it has layers\n```\n\nThink: why?\n", "it has layers\n",
                  "99-bad.md:17: the ```check block opened here is never closed"},
        Malformed{"## First step", "## ", "99-bad.md:5: the step title is empty"},
        Malformed{"Think: why?", "Think: why?\nThink: again", "99-bad.md:22: a second 'Think:'"},
        Malformed{"Paper: DeepSeek-V3 §2.1, eq. (1)", "Paper: a\nPaper: b",
                  "99-bad.md:10: a second 'Paper:'"}));

TEST(LessonFormat, EmptyAndStepless) {
  EXPECT_NE(error_of("").find("99-bad.md:1: the file is empty"), std::string::npos);
  EXPECT_NE(error_of("# T\n\nno steps\n").find("99-bad.md:3: the lesson has no steps"),
            std::string::npos);
  EXPECT_NE(
      error_of("# T\n```dsv3\ninfo\n```\n").find("99-bad.md:2: a block before the first step"),
      std::string::npos);
}

TEST(LessonFormat, MissingFileNamesIt) {
  try {
    load_lesson("no/such/lesson.md");
    FAIL();
  } catch (const LessonError& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/lesson.md"), std::string::npos);
  }
}

json env() {
  return json::parse(R"({"k": {"forms": [{"b": 10}, {"b": 40}], "name": "MLA"},
                         "v": [1, 2, 3], "w": [0.5, 0.25, 0.25], "z": 0})");
}

json ev(const std::string& e) {
  return eval(*parse_expr(e), env());
}

TEST(LessonExpr, ArithmeticComparisonsAndPaths) {
  EXPECT_EQ(ev("1 + 2 * 3").get<double>(), 7);
  EXPECT_EQ(ev("(1 + 2) * 3").get<double>(), 9);
  EXPECT_EQ(ev("-2 * -3").get<double>(), 6);
  EXPECT_EQ(ev("7 % 4").get<double>(), 3);
  EXPECT_TRUE(ev("k.forms[0].b < k.forms[1].b").get<bool>());
  EXPECT_TRUE(ev("k.forms[-1].b == 40").get<bool>());
  EXPECT_TRUE(ev("k.name == \"MLA\" && !(z != 0) || false").get<bool>());
  EXPECT_TRUE(ev("k[\"name\"] == 'MLA'").get<bool>());
  EXPECT_TRUE(ev("1e-3 < 0.01").get<bool>());
}

TEST(LessonExpr, Functions) {
  EXPECT_EQ(ev("sum(v)").get<double>(), 6);
  EXPECT_EQ(ev("len(v)").get<double>(), 3);
  EXPECT_EQ(ev("max(v)").get<double>(), 3);
  EXPECT_EQ(ev("min(4, 2, 9)").get<double>(), 2);
  EXPECT_EQ(ev("mean(v)").get<double>(), 2);
  EXPECT_EQ(ev("argmax(w)").get<double>(), 0);
  EXPECT_TRUE(ev("approx(sigmoid(0), 0.5)").get<bool>());
  EXPECT_TRUE(ev("approx(v * 2, [2, 4, 6])").get<bool>());
  EXPECT_TRUE(ev("approx(v + 1, [2, 3, 4])").get<bool>());
  EXPECT_TRUE(ev("approx(pick(w, [1, 2]), [0.25, 0.25])").get<bool>());
  EXPECT_TRUE(ev("contains(v, 2) && !contains(v, 5) && contains(k.name, \"ML\")").get<bool>());
  EXPECT_TRUE(ev("subset([1, 3], v) && !subset([4], v)").get<bool>());
  EXPECT_TRUE(ev("sorted_desc(w) && !sorted_desc(v)").get<bool>());
  EXPECT_TRUE(ev("map_div([0, 5, 9], 4) == [0, 1, 2]").get<bool>());
  EXPECT_EQ(ev("count(w, 0.25)").get<double>(), 2);
  EXPECT_TRUE(ev("all([true, 1]) && any([false, 1])").get<bool>());
  EXPECT_TRUE(ev("slice(v, 1) == [2, 3]").get<bool>());
}

TEST(LessonExpr, ErrorsSayWhat) {
  auto err = [](const std::string& e) {
    try {
      ev(e);
    } catch (const std::exception& ex) {
      return std::string(ex.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(err("nope + 1").find("unknown name 'nope' (bound so far: k, v, w, z)"),
            std::string::npos);
  EXPECT_NE(err("k.nope").find("no field 'nope' (fields: forms, name)"), std::string::npos);
  EXPECT_NE(err("v[5]").find("index 5 outside the list of 3"), std::string::npos);
  EXPECT_NE(err("frob(1)").find("unknown function frob()"), std::string::npos);
  EXPECT_NE(err("sum(1, 2)").find("sum() takes 1 argument(s), got 2"), std::string::npos);
  EXPECT_NE(err("1 / z").find("division by zero"), std::string::npos);
  EXPECT_THROW(parse_expr("1 +"), std::invalid_argument);
  EXPECT_THROW(parse_expr("a b"), std::invalid_argument);
  EXPECT_THROW(parse_expr("'open"), std::invalid_argument);
  EXPECT_THROW(is_true(json("text")), std::runtime_error);
}

TEST(LessonExpr, ExplainShowsBothSides) {
  EXPECT_EQ(explain(*parse_expr("k.forms[0].b > k.forms[1].b"), env()), "left 10, right 40");
  EXPECT_EQ(explain(*parse_expr("z"), env()), "");
}

TEST(LessonFormatValue, Formats) {
  EXPECT_EQ(format_value(json(1234567), ""), "1,234,567");
  EXPECT_EQ(format_value(json(0.123456), ""), "0.1235");
  EXPECT_EQ(format_value(json(2.5), "int"), "3");
  EXPECT_EQ(format_value(json(1536), "bytes"), "1.50 KiB");
  EXPECT_EQ(format_value(json(7.0 * 1024 * 1024 * 1024), "bytes"), "7.00 GiB");
  EXPECT_EQ(format_value(json(512), "bytes"), "512 B");
  EXPECT_EQ(format_value(json(3.14159), ".2f"), "3.14");
  EXPECT_EQ(format_value(json(0.8512), ".1%"), "85.1%");
  EXPECT_EQ(format_value(json(12.34), "x"), "12.3×");
  EXPECT_EQ(format_value(json(671e9), "B"), "671.0B");
  EXPECT_EQ(format_value(json(true), ""), "yes");
  EXPECT_EQ(format_value(json("MLA"), ""), "MLA");
  EXPECT_THROW(format_value(json(1), "zz"), std::runtime_error);
}

TEST(LessonFormat, SplitInterpolation) {
  EXPECT_EQ(split_interpolation("a.b:.2f"), std::make_pair(std::string("a.b"), std::string(".2f")));
  EXPECT_EQ(split_interpolation(" a "), std::make_pair(std::string("a"), std::string("")));
  EXPECT_EQ(split_interpolation("x == 'a:b'"),
            std::make_pair(std::string("x == 'a:b'"), std::string("")));
}

}  // namespace
}  // namespace dsv3::app::lesson
