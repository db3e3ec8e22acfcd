// The chat-template renderer (formats/jinja_template.hpp): every committed fixture (the real
// templates of ../shared/data/templates rendered by Python's jinja2 with Hugging Face's settings,
// tools/render_template_fixtures.py) byte for byte; the Jinja2 subset on small templates (expected
// texts are jinja2 3.1's); and bad input, each a one-line InputError naming the template.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "formats/jinja_template.hpp"
#include "tests/test_support.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

using nlohmann::ordered_json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::filesystem::path kFixtureDir = std::filesystem::path(KVBENCH_SOURCE_DIR) / "tests" / "fixtures" / "chat_templates";

// 2025-03-14 15:09:26 UTC, the time the fixtures and the expectations below were rendered at.
constexpr std::time_t kNow = 1741964966;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

RenderOptions fixed_clock(std::time_t at = kNow) {
  RenderOptions options;
  options.now = std::chrono::system_clock::from_time_t(at);
  return options;
}

// Where two texts first differ, with some context, for a readable failure.
std::string first_difference(const std::string& want, const std::string& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  const size_t from = i > 40 ? i - 40 : 0;
  return "first difference at byte " + std::to_string(i) + "\n  want: " + ordered_json(want.substr(from, 100)).dump() +
         "\n  got:  " + ordered_json(got.substr(from, 100)).dump();
}

// ---------------------------------------------------------------------------------------------
// The real templates against jinja2's renderings.

std::vector<std::string> fixture_files() {
  std::vector<std::string> names;
  if (std::filesystem::is_directory(kFixtureDir))
    for (const auto& entry : std::filesystem::directory_iterator(kFixtureDir))
      if (entry.path().extension() == ".json") names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class ChatTemplateFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateFixture, RendersAsJinja2) {
  const ordered_json fixture = ordered_json::parse(read_file(kFixtureDir / GetParam()));
  const std::string relative = fixture.at("template");
  KVB_REQUIRE_DATA(path, relative);
  std::string source = read_file(path);
  if (path.extension() == ".json") source = ordered_json::parse(source).at("chat_template");
  const ChatTemplate tpl = ChatTemplate::parse(source, relative);
  const RenderOptions options = fixed_clock(fixture.at("now_unix").get<std::time_t>());
  const std::string prefix = "chat template " + relative + ": ";
  ASSERT_FALSE(fixture.at("cases").empty());
  for (const ordered_json& c : fixture.at("cases")) {
    SCOPED_TRACE("case " + c.at("name").get<std::string>());
    if (c.contains("expected")) {
      const std::string want = c.at("expected");
      std::string got;
      ASSERT_NO_THROW(got = tpl.render(c.at("context"), options));
      EXPECT_TRUE(got == want) << first_difference(want, got);
      continue;
    }
    try {
      tpl.render(c.at("context"), options);
      ADD_FAILURE() << "rendered, but jinja2 failed";
    } catch (const InputError& e) {
      if (c.contains("raise_exception"))
        EXPECT_EQ(e.what(), prefix + "raise_exception: " + c.at("raise_exception").get<std::string>());
      else
        EXPECT_THAT(e.what(), StartsWith(prefix)) << "jinja2: " << c.at("error").get<std::string>();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(RealTemplates, ChatTemplateFixture, ::testing::ValuesIn(fixture_files()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param.substr(0, info.param.size() - 5);
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

// Every template of the shared data has a fixture (and the Qwen3 tokenizer's too).
TEST(ChatTemplateFixtures, CoverEveryTemplate) {
  KVB_REQUIRE_DATA(dir, "templates");
  size_t templates = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".jinja") continue;
    ++templates;
    EXPECT_TRUE(std::filesystem::exists(kFixtureDir / (entry.path().stem().string() + ".json")))
        << "no fixture for " << entry.path().filename();
  }
  EXPECT_GE(templates, 19u);
  EXPECT_TRUE(std::filesystem::exists(kFixtureDir / "qwen3-tokenizer.json"));
}

// ---------------------------------------------------------------------------------------------
// The subset, on small templates.

const ordered_json& unit_context() {
  static const ordered_json context = ordered_json::parse(R"({
    "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
    "d": {"b": 2, "a": 1, "C": 3}, "l": [3, 1, 2], "s": "  Hello World  ", "n": null, "t": true, "f": 1.5,
    "nested": {"x": {"y": [10, 20]}},
    "items": [{"name": "b", "v": 2}, {"name": "a", "v": 1}, {"name": "c"}]})");
  return context;
}

std::string render(const std::string& source, const ordered_json& context = unit_context(),
                   const TemplateLimits& limits = {}) {
  return ChatTemplate::parse(source, "test.jinja", limits).render(context, fixed_clock());
}

// Each template renders to the text jinja2 gives with the unit context.
void expect_renders(const std::vector<std::pair<std::string, std::string>>& cases) {
  for (const auto& [source, want] : cases) {
    std::string got;
    try {
      got = render(source);
    } catch (const InputError& e) {
      ADD_FAILURE() << source << "\n  failed: " << e.what();
      continue;
    }
    EXPECT_TRUE(got == want) << source << "\n  " << first_difference(want, got);
  }
}

TEST(ChatTemplateSubset, Statements) {
  expect_renders({
      {"{% if t %}a{% endif %}|{% if n %}a{% else %}b{% endif %}|{% if n %}a{% elif f %}b{% else %}c{% endif %}",
       "a|b|b"},
      {"{% set x = 1 %}{{ x }}|{% set a, b = 1, 2 %}{{ b }}{{ a }}|{% set tup = 1, 2 %}{{ tup }}",
       "1|21|(1, 2)"},
      {"{% set c %}block {{ l[0] }}{% endset %}[{{ c }}]|{% set up | upper | trim %} shout {% endset %}[{{ up }}]",
       "[block 3]|[SHOUT]"},
      {"{% filter upper %}hello {{ 'world' }}{% endfilter %}|{% filter trim|title %}  x y  {% endfilter %}",
       "HELLO WORLD|X Y"},
      {"{% raw %}{{ not rendered }}{% if %}{% endraw %}",
       "{{ not rendered }}{% if %}"},
      {"{# a comment #}a{# {{ also }} {% a comment %} #}b",
       "ab"},
      {"{% generation %}gen {{ l[0] }}{% endgeneration %}",
       "gen 3"},
  });
}

TEST(ChatTemplateSubset, ForLoops) {
  expect_renders({
      {"{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.depth }}{{ loop.depth0 }};{% endfor %}",
       "1032TrueFalse310;2121FalseFalse310;3210FalseTrue310;"},
      {"{% for x in l %}[{{ loop.previtem }}|{{ loop.nextitem }}|{{ loop.previtem is defined }}]{% endfor %}",
       "[|1|False][3|2|True][1||True]"},
      {"{% for x in l %}{{ loop.cycle('a', 'b') }}{% endfor %}",
       "aba"},
      {"{% for x in l if x > 1 %}{{ x }}/{{ loop.length }} {% endfor %}",
       "3/2 2/2 "},
      {"{% for x in [] %}a{% else %}empty{% endfor %}|{% for x in l if x > 5 %}a{% else %}none passed{% endfor %}",
       "empty|none passed"},
      {"{% for a, b in [[1, 2], [3, 4]] %}{{ a }}{{ b }} {% endfor %}|{% for (k, v) in d|dictsort %}{{ k }}={{ v }} {% endfor %}",
       "12 34 |a=1 b=2 C=3 "},
      {"{% for k in d %}{{ k }}{% endfor %}|{% for c in 'hé!' %}[{{ c }}]{% endfor %}|{% for x in undefined_name %}a{% else %}undefined is empty{% endfor %}",
       "baC|[h][é][!]|undefined is empty"},
      {"{% for x in l %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}|{% for x in l %}{% if x == 1 %}{% break %}{% endif %}{{ x }}{% endfor %}",
       "32|3"},
      {"{% for a in [1, 2] %}{% for b in [3, 4] %}{{ loop.index }}{% endfor %}:{{ loop.index }} {% endfor %}",
       "12:1 12:2 "},
      {"{% for a in [1, 2, 3] %}{{ a }}{% for b in [] %}{% else %}{% if a == 2 %}{% break %}{% endif %}{% endfor %}{% endfor %}",
       "12"},
      {"{% for i in range(3) %}{{ i }}{% endfor %}|{% for m in messages[::-1] %}{{ m.role }} {% endfor %}",
       "012|assistant user "},
  });
}

TEST(ChatTemplateSubset, Scopes) {
  expect_renders({
      {"{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }} {% endfor %}{{ x }}",
       "2 3 1"},
      {"{% for i in [1, 2] %}{% if i == 2 %}[{{ y }}]{% endif %}{% set y = i %}{% endfor %}[{{ y }}]",
       "[][]"},
      {"{% set a = 1 %}{% if true %}{% set a = 2 %}{% endif %}{{ a }}",
       "2"},
      {"{% set ns = namespace(v=0, w='x') %}{% for i in [1, 2, 3] %}{% set ns.v = ns.v + i %}{% endfor %}{{ ns.v }}{{ ns.w }}{{ ns.missing is defined }}",
       "6xFalse"},
      {"{% set ns = namespace(l=[]) %}{% for i in [1, 2] %}{% set ns.l = ns.l + [i] %}{% endfor %}{{ ns.l }}|{{ namespace({'k': 1}, j=2) }}",
       "[1, 2]|<Namespace {'k': 1, 'j': 2}>"},
      {"{% set x = 1 %}{% set blk %}{% set x = 2 %}{% endset %}{% filter upper %}{% set x = 3 %}{% endfilter %}{% generation %}{% set x = 4 %}{% endgeneration %}{{ x }}",
       "1"},
  });
}

TEST(ChatTemplateSubset, Macros) {
  expect_renders({
      {"{% macro m(a, b=2, c='x') -%}[{{ a }},{{ b }},{{ c }}]{%- endmacro %}{{ m(1) }}{{ m(1, 3) }}{{ m(1, c='z') }}{{ m(a=5) }}{{ m() }}",
       "[1,2,x][1,3,x][1,2,z][5,2,x][,2,x]"},
      {"{% macro m(x, y=x * 2) %}{{ y }}{% endmacro %}{{ m(3) }}",
       "6"},
      {"{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}",
       "(1, 2){'k': 3}"},
      {"{% macro countdown(n) %}{% if n > 0 %}{{ n }}{{ countdown(n - 1) }}{% endif %}{% endmacro %}{{ countdown(5) }}",
       "54321"},
      {"{% macro m() %}{{ y }}{% endmacro %}{% set y = 3 %}{{ m() }}{% set y = 4 %}{{ m() }}{% for y in [7] %}{{ m() }}{% endfor %}",
       "344"},
      {"{% set ns = namespace(v=0) %}{% macro inc() %}{% set ns.v = ns.v + 1 %}{% endmacro %}{{ inc() }}{{ inc() }}{{ ns.v }}",
       "2"},
      {"{% macro m(a) %}{% set a = a + 1 %}{{ a }}{% endmacro %}{{ m(1) }}|{% macro t() %}{{ caller is defined }}{% endmacro %}{{ t() }}",
       "2|False"},
      {"{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inside {{ l[0] }}{% endcall %}",
       "<inside 3>"},
      {"{% macro each(xs) %}{% for x in xs %}{{ caller(x, loop.index) }}{% endfor %}{% endmacro %}{% call(x, i) each(['a', 'b']) %}{{ i }}={{ x }} {% endcall %}",
       "1=a 2=b "},
      {"{% set text = 'ab' %}{% macro shout(s) %}{{ s|upper }}{% endmacro %}{{ shout(text) ~ '!' }}|{{ shout(text)|length }}",
       "AB!|2"},
  });
}

TEST(ChatTemplateSubset, Literals) {
  expect_renders({
      {"{{ 'single' }}|{{ \"double\" }}|{{ 'it\\'s' }}|{{ \"say \\\"hi\\\"\" }}|{{ 'a' 'b' }}",
       "single|double|it's|say \"hi\"|ab"},
      {"{{ 'tab\\there' }}|{{ 'new\\nline' }}|{{ '\\u00e9\\x41\\101\\\\' }}|{{ 'a\\qb' }}",
       "tab\there|new\nline|éAA\\|a\\qb"},
      {"{{ 42 }}|{{ -7 }}|{{ 1_000 }}|{{ 2.5 }}|{{ 1e3 }}|{{ 1.5e-5 }}|{{ true }}|{{ True }}|{{ false }}|{{ none }}|{{ None }}",
       "42|-7|1000|2.5|1000.0|1.5e-05|True|True|False|None|None"},
      {"{{ [1, 'a', none, true, 1.5] }}|{{ (1,) }}|{{ (1, 2) }}|{{ () }}|{{ [1, 2,] }}|{{ {'a': 1, 'b': [2]} }}|{{ {'a': 1, 'a': 2} }}",
       "[1, 'a', None, True, 1.5]|(1,)|(1, 2)|()|[1, 2]|{'a': 1, 'b': [2]}|{'a': 2}"},
      {"{{ ['it\\'s', 'say \"x\"', 'both \\' \"', '\\n\\t\\\\', '\\x00\\x7f\\xa0\\u200b', 'é中🙂'] }}",
       "[\"it's\", 'say \"x\"', 'both \\' \"', '\\n\\t\\\\', '\\x00\\x7f\\xa0\\u200b', 'é中🙂']"},
      {"{{ 1e16 }}|{{ 0.1 + 0.2 }}|{{ 1e-4 }}|{{ 1e-5 }}|{{ 100.0 }}|{{ -0.0 }}|{{ 123456789012345.0 }}|{{ 1e22 }}",
       "1e+16|0.30000000000000004|0.0001|1e-05|100.0|-0.0|123456789012345.0|1e+22"},
  });
}

TEST(ChatTemplateSubset, Operators) {
  expect_renders({
      {"{{ 1 + 2 }}|{{ 7 - 10 }}|{{ 3 * 4 }}|{{ 7 / 2 }}|{{ 6 / 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}",
       "3|-3|12|3.5|2.0|3|-4|1|2|-2|1024|0.5"},
      {"{{ 7.5 // 2 }}|{{ -7.5 % 2 }}|{{ 1.5 + 1 }}|{{ true + 1 }}|{{ 'ab' * 3 }}|{{ 3 * 'x' }}|{{ [1] * 3 }}|{{ 'ab' * 0 }}",
       "3.0|0.5|2.5|2|ababab|xxx|[1, 1, 1]|"},
      {"{{ 'a' + 'b' }}|{{ [1] + [2] }}|{{ (1,) + (2,) }}|{{ 'a' ~ 1 ~ none ~ true ~ [1] ~ undefined_name }}",
       "ab|[1, 2]|(1, 2)|a1NoneTrue[1]"},
      {"{{ 1 + 2 * 3 - 4 / 2 }}|{{ (1 + 2) * 3 }}|{{ 2 ** 3 ** 2 }}|{{ -2 ** 2 }}|{{ 10 - 2 - 3 }}|{{ 'a' ~ 2 * 3 }}|{{ - -3 }}|{{ +3 }}",
       "5.0|9|64|4|5|a6|3|3"},
      {"{{ 1 and 2 }}|{{ 0 and 2 }}|{{ 0 or 'x' }}|{{ '' or none }}|{{ not 0 }}|{{ not 1 == 2 }}|{{ not true and false }}|{{ [] or {} }}",
       "2|0|x|None|True|True|False|{}"},
      {"{{ 'yes' if t else 'no' }}|{{ 'yes' if n else 'no' }}|{{ 'x' if false }}|{{ 1 if 0 else 2 if 0 else 3 }}|{{ ('a' if false) is defined }}",
       "yes|no||3|False"},
  });
}

TEST(ChatTemplateSubset, Comparisons) {
  expect_renders({
      {"{{ 1 == 1.0 }}|{{ true == 1 }}|{{ 'a' == 'a' }}|{{ [1, [2]] == [1, [2]] }}|{{ (1,) == [1] }}|{{ {'a': 1, 'b': 2} == {'b': 2, 'a': 1} }}|{{ none == none }}|{{ 1 != 2 }}",
       "True|True|True|True|False|True|True|True"},
      {"{{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}|{{ 2 >= 2 }}|{{ 1 <= 0 }}|{{ 'B' < 'a' }}|{{ 'é' > 'z' }}|{{ [1, 2] < [1, 3] }}|{{ (1, 2) < (1, 2, 0) }}",
       "True|False|True|False|True|True|True|True"},
      {"{{ 'a' in 'abc' }}|{{ 'x' not in 'abc' }}|{{ 1 in [1, 2] }}|{{ 'b' in d }}|{{ 'z' not in d }}|{{ 1 in {'1': 1} }}|{{ 'a' in undefined_name }}",
       "True|True|True|True|True|False|False"},
      {"{{ undefined_name == undefined_name }}|{{ undefined_name == 1 }}|{{ undefined_name != none }}",
       "True|False|True"},
  });
}

TEST(ChatTemplateSubset, Tests) {
  expect_renders({
      {"{{ x is defined }}|{{ x is undefined }}|{{ l is defined }}|{{ n is none }}|{{ n is not none }}|{{ not n is none }}|{{ not x is defined }}",
       "False|True|True|True|False|False|True"},
      {"{{ t is boolean }}|{{ t is true }}|{{ t is false }}|{{ false is false }}|{{ 1 is true }}",
       "True|True|False|True|False"},
      {"{{ 1 is number }}|{{ t is number }}|{{ 1 is integer }}|{{ t is integer }}|{{ f is float }}|{{ 1 is float }}",
       "True|True|True|False|True|False"},
      {"{{ s is string }}|{{ 1 is string }}|{{ d is mapping }}|{{ l is mapping }}",
       "True|False|True|False"},
      {"{{ l is iterable }}|{{ s is iterable }}|{{ d is iterable }}|{{ x is iterable }}|{{ 1 is iterable }}|{{ none is iterable }}",
       "True|True|True|True|False|False"},
      {"{{ l is sequence }}|{{ s is sequence }}|{{ d is sequence }}|{{ x is sequence }}|{{ d.items() is sequence }}|{{ l|select is sequence }}",
       "True|True|True|True|False|False"},
      {"{{ 3 is odd }}|{{ 4 is even }}|{{ 9 is divisibleby 3 }}|{{ 9 is divisibleby(2) }}|{{ 1 is in [1] }}|{{ 1 is in(l) }}",
       "True|True|True|False|True|True"},
      {"{{ 1 is eq 1 }}|{{ 1 is equalto 2 }}|{{ 1 is ne 2 }}|{{ 2 is gt 1 }}|{{ 2 is greaterthan 3 }}|{{ 2 is lt 1 }}|{{ 2 is lessthan 3 }}|{{ 2 is ge 2 }}|{{ 2 is le 1 }}",
       "True|False|True|True|False|False|True|True|False"},
      {"{{ none is sameas none }}|{{ false is sameas false }}|{{ 0 is sameas false }}|{{ 1 is sameas 1 }}",
       "True|True|False|True"},
      {"{{ range is callable }}|{{ 'a'.strip is callable }}|{{ 1 is callable }}|{{ 'abc' is lower }}|{{ 'aBc' is lower }}|{{ 'ABC' is upper }}|{{ '1' is upper }}",
       "True|True|False|True|False|True|False"},
  });
}

TEST(ChatTemplateSubset, Filters) {
  expect_renders({
      {"{{ s|trim }}|{{ 'xxaxx'|trim('x') }}|{{ s|length }}|{{ l|count }}|{{ d|length }}|{{ 'héllo'|length }}|{{ undefined_name|length }}",
       "Hello World|a|15|3|3|5|0"},
      {"{{ s|upper }}|{{ s|lower }}|{{ 'hello world-foo(bar'|title }}|{{ 'hELLO wORLD'|capitalize }}",
       "  HELLO WORLD  |  hello world  |Hello World-Foo(Bar|Hello world"},
      {"{{ l|first }}|{{ l|last }}|{{ 'abc'|first }}|{{ 'abc'|last }}|{{ d|first }}|{{ []|first is defined }}",
       "3|2|a|c|b|False"},
      {"{{ l|join }}|{{ l|join('-') }}|{{ [1, none, 'a']|join('|') }}|{{ items|join(',', attribute='name') }}",
       "312|3-1-2|1|None|a|b,a,c"},
      {"{{ 'a-b'|replace('-', '+') }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ 5|replace('5', 'five') }}",
       "a+b|bba|five"},
      {"{{ n|default('x') }}|{{ undefined_name|default('x') }}|{{ ''|default('x', true) }}|{{ undefined_name|d }}|{{ 0|d(5, boolean=true) }}",
       "None|x|x||5"},
      {"{{ l|list }}|{{ 'ab'|list }}|{{ d|list }}|{{ (1, 2)|list }}|{{ undefined_name|list }}",
       "[3, 1, 2]|['a', 'b']|['b', 'a', 'C']|[1, 2]|[]"},
      {"{{ d|items|list }}|{{ d|dictsort }}|{{ d|dictsort(true) }}|{{ d|dictsort(by='value', reverse=true) }}",
       "[('b', 2), ('a', 1), ('C', 3)]|[('a', 1), ('b', 2), ('C', 3)]|[('C', 3), ('a', 1), ('b', 2)]|[('C', 3), ('b', 2), ('a', 1)]"},
      {"{{ items|map(attribute='name')|list }}|{{ items|map(attribute='v', default=0)|list }}|{{ ['a', 'b']|map('upper')|list }}|{{ [' a ']|map('trim')|list }}",
       "['b', 'a', 'c']|[2, 1, 0]|['A', 'B']|['a']"},
      {"{{ items|selectattr('v')|map(attribute='name')|list }}|{{ items|rejectattr('v')|map(attribute='name')|list }}|{{ items|selectattr('name', 'equalto', 'a')|list }}|{{ messages|selectattr('role', 'equalto', 'user')|list|length }}",
       "['b', 'a']|['c']|[{'name': 'a', 'v': 1}]|1"},
      {"{{ [1, 2, 3, 4]|select('odd')|list }}|{{ [1, 2, 3, 4]|reject('even')|list }}|{{ [0, 1, '', none, 'a']|select|list }}|{{ [1, 2, 3]|select('>', 1)|list }}",
       "[1, 3]|[1, 3]|[1, 'a']|[2, 3]"},
      {"{{ l|sort }}|{{ l|sort(reverse=true) }}|{{ ['b', 'A', 'c']|sort }}|{{ ['b', 'A', 'c']|sort(case_sensitive=true) }}|{{ items|sort(attribute='name')|map(attribute='name')|join }}",
       "[1, 2, 3]|[3, 2, 1]|['A', 'b', 'c']|['A', 'b', 'c']|abc"},
      {"{{ 'abc'|reverse }}|{{ l|reverse|list }}",
       "cba|[2, 1, 3]"},
      {"{{ '3'|int }}|{{ '3.7'|int }}|{{ 'x'|int }}|{{ 'x'|int(7) }}|{{ 3.9|int }}|{{ true|int }}|{{ ' 1_000 '|int }}|{{ none|int }}",
       "3|3|0|7|3|1|1000|0"},
      {"{{ '3'|float }}|{{ 'x'|float }}|{{ '1e3'|float }}|{{ 2|float }}|{{ 'x'|float(1.5) }}",
       "3.0|0.0|1000.0|2.0|1.5"},
      {"{{ 2.5|round }}|{{ 3.5|round }}|{{ 2.675|round(2) }}|{{ 1.234|round(1, 'ceil') }}|{{ 1.234|round(1, 'floor') }}|{{ 5|round }}",
       "2.0|4.0|2.67|1.3|1.2|5"},
      {"{{ -3|abs }}|{{ -2.5|abs }}|{{ 5|string ~ 'x' }}|{{ none|string }}|{{ [1.0]|string }}",
       "3|2.5|5x|None|[1.0]"},
      {"{{ ('<b>'|safe) + '<i>' }}|{{ '<i>' + ('<b>'|safe) }}|{{ ('<b>'|safe) ~ '<i>' }}|{{ ('<b>'|safe)|trim + '&' }}|{{ ('<'|safe)|replace('<', '>') + '<' }}",
       "<b>&lt;i&gt;|&lt;i&gt;<b>|<b><i>|<b>&amp;|><"},
  });
}

TEST(ChatTemplateSubset, Tojson) {
  expect_renders({
      {"{{ {'b': [1, 'x', none, true, 1.5], 'a': {}}|tojson }}|{{ 'é<>&\\'\"'|tojson }}|{{ 'é🙂'|tojson(ensure_ascii=true) }}",
       "{\"b\": [1, \"x\", null, true, 1.5], \"a\": {}}|\"é<>&'\\\"\"|\"\\u00e9\\ud83d\\ude42\""},
      {"{{ {'a': 1, 'b': [1, 2], 'c': {}}|tojson(indent=2) }}",
       "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2\n  ],\n  \"c\": {}\n}"},
      {"{{ {'b': 1, 'a': {'d': 1, 'c': 2}}|tojson(sort_keys=true) }}|{{ [1, {'a': 2}]|tojson(separators=(',', ':')) }}|{{ [1]|tojson(indent='\\t') }}",
       "{\"a\": {\"c\": 2, \"d\": 1}, \"b\": 1}|[1,{\"a\":2}]|[\n\t1\n]"},
      {"{{ [1.0, 2.5e-10, 1e16, -0.0, 3]|tojson }}|{{ (1, 2)|tojson }}|{{ 'tab\\there\\n\\x01\\x7f\\\\'|tojson }}|{{ 'x'|tojson(false, 2) }}",
       "[1.0, 2.5e-10, 1e+16, -0.0, 3]|[1, 2]|\"tab\\there\\n\\u0001\x7f""\\\\\"|\"x\""},
  });
}

TEST(ChatTemplateSubset, Methods) {
  expect_renders({
      {"{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'xyxzx'.lstrip('xy') }}|{{ 'xyxzx'.rstrip('x') }}",
       "Hello World|Hello World  |  Hello World|a|zx|xyxz"},
      {"{{ s.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a,b,c'.split(',', 1) }}|{{ ' a b c '.split(None, 1) }}|{{ 'a b c'.rsplit(None, 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ ''.split(',') }}",
       "['Hello', 'World']|['a', 'b', '', 'c']|['a', 'b,c']|['a', 'b c ']|['a b', 'c']|['a,b', 'c']|['']"},
      {"{{ s.startswith('  H') }}|{{ s.endswith('  ') }}|{{ 'abc'.startswith(('x', 'a')) }}|{{ 'abc'.endswith(('x', 'y')) }}",
       "True|True|True|False"},
      {"{{ 'abc'.upper() }}|{{ 'ABC'.lower() }}|{{ \"they're bill's\".title() }}|{{ 'hELLO'.capitalize() }}",
       "ABC|abc|They'Re Bill'S|Hello"},
      {"{{ 'aXa'.replace('a', 'b') }}|{{ 'a-b-c'.replace('-', '+', 1) }}|{{ 'aaaa'.count('aa') }}|{{ 'héllo'.find('l') }}|{{ 'x'.find('y') }}",
       "bXb|a+b-c|2|2|-1"},
      {"{{ '-'.join(['a', 'b']) }}|{{ ''.join('abc') }}|{{ 'abc'.removeprefix('a') }}|{{ 'abc'.removesuffix('c') }}",
       "a-b|abc|bc|ab"},
      {"{{ '{} and {}'.format(1, 'x') }}|{{ '{0}{name}{0}'.format(1, name=2) }}|{{ '{{literal}}'.format() }}",
       "1 and x|121|{literal}"},
      {"{{ d.get('a') }}|{{ d.get('z') }}|{{ d.get('z', 5) }}|{{ d.items()|list }}|{{ d.keys()|list }}|{{ d.values()|list }}|{{ d.items() }}|{{ d.keys() }}",
       "1|None|5|[('b', 2), ('a', 1), ('C', 3)]|['b', 'a', 'C']|[2, 1, 3]|dict_items([('b', 2), ('a', 1), ('C', 3)])|dict_keys(['b', 'a', 'C'])"},
      {"{{ [1, 2, 1].count(1) }}|{{ l.index(2) }}|{{ (1, 2).count(1) }}|{{ (1, 2).index(2) }}",
       "2|2|1|1"},
      {"{% for k, v in d.items() %}{{ k }}={{ v }} {% endfor %}",
       "b=2 a=1 C=3 "},
  });
}

TEST(ChatTemplateSubset, Access) {
  expect_renders({
      {"{{ messages[0].role }}|{{ messages[0]['role'] }}|{{ messages[-1].content }}|{{ messages[5] is defined }}|{{ messages[0].nope is defined }}",
       "user|user|yo|False|False"},
      {"{{ l[0] }}|{{ l[-1] }}|{{ l[1:] }}|{{ l[:-1] }}|{{ l[::-1] }}|{{ l[::2] }}|{{ l[-10:10] }}|{{ l[5:] }}",
       "3|2|[1, 2]|[3, 1]|[2, 1, 3]|[3, 2]|[3, 1, 2]|[]"},
      {"{{ 'héllo'[1] }}|{{ 'héllo'[1:3] }}|{{ 'héllo'[::-1] }}|{{ 'abc'[-1] }}|{{ nested.x.y.1 }}|{{ nested['x']['y'][0] }}|{{ l.0 }}",
       "é|él|olléh|c|20|10|3"},
      {"{{ none.x is defined }}|{{ d['items'] is defined }}|{{ d.items is defined }}|{{ 'abc'.nonexistent is defined }}|{{ d.pop is defined }}",
       "False|True|True|False|False"},
  });
}

TEST(ChatTemplateSubset, Globals) {
  expect_renders({
      {"{{ range(3)|list }}|{{ range(1, 10, 3)|list }}|{{ range(5, 0, -2)|list }}|{{ range(0)|list }}|{{ range(3)|length }}|{{ range(3)[1] }}",
       "[0, 1, 2]|[1, 4, 7]|[5, 3, 1]|[]|3|1"},
      {"{{ dict(a=1, b=2) }}|{{ dict({'x': 1}, y=2) }}|{{ namespace(a=1).a }}",
       "{'a': 1, 'b': 2}|{'x': 1, 'y': 2}|1"},
      {"{{ strftime_now('%Y-%m-%d %H:%M:%S') }}|{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%A %j %%') }}",
       "2025-03-14 15:09:26|14 Mar 2025|Friday 073 %"},
  });
}

TEST(ChatTemplateSubset, Undefined) {
  expect_renders({
      {"[{{ undefined_name }}]|{{ undefined_name is defined }}|{{ undefined_name|default('d') }}|[{{ undefined_name ~ 'a' }}]|[{{ undefined_name|trim }}]|[{{ undefined_name|string }}]",
       "[]|False|d|[a]|[]|[]"},
      {"{{ undefined_name|length }}|{{ undefined_name|list }}|[{{ undefined_name|join }}]|{{ 'a' in undefined_name }}|{% if undefined_name %}t{% else %}f{% endif %}",
       "0|[]|[]|False|f"},
      {"[{{ messages[9] }}]|[{{ d.missing }}]|[{{ none.attr }}]|[{{ ''.nope }}]",
       "[]|[]|[]|[]"},
  });
}

TEST(ChatTemplateSubset, WhitespaceControl) {
  expect_renders({
      {"  {% if true %}\n    x\n  {% endif %}\n  y",
       "    x\n  y"},
      {"{%- if true -%}\n  a\n{%- endif -%}\n  {{- ' b ' -}}\n  c {{ 'd' }} {{- 'e' }}",
       "a b c de"},
      {"{% if true %}  {{ 'x' }}{% endif %}\n  {%+ if true %}keep{% endif %}\n{% if true +%}\nno-trim{% endif %}",
       "  x  keep\nno-trim"},
      {"line1\n    {# indented comment #}\nline2\n  {#- stripped -#}\n  line3",
       "line1\nline2line3"},
      {"text {% if true %}\nafter-text-on-line{% endif %}",
       "text after-text-on-line"},
      {"{% for i in [1, 2] %}\n  {{ i }}\n{% endfor %}\n",
       "  1\n  2\n"},
      {"{%- for i in [1, 2] %}\n    {%- if i == 1 %}\n        one\n    {%- else %}\n        {{ i }}\n    {%- endif %}\n{%- endfor %}\nend\n",
       "        one        2end"},
      {"a\r\nb\r\n{% if true %}\r\nc\r\n{% endif %}\r\nd\r\n",
       "a\nb\nc\nd"},
      {"a　{%- if true %}b{% endif %}{{ 'c' -}}  \n d",
       "abcd"},
      {"  {% raw %}\n  {{ x }}\n  {% endraw %}\nafter",
       "\n  {{ x }}\nafter"},
  });
}

TEST(ChatTemplateSubset, DictOrderIsTheContextsOrder) {
  const ordered_json context = ordered_json::parse(R"({"tool": {"zeta": 1, "alpha": {"y": 2, "b": 3}}})");
  EXPECT_EQ(render("{{ tool|tojson }}|{% for k in tool %}{{ k }}{% endfor %}", context),
            R"({"zeta": 1, "alpha": {"y": 2, "b": 3}}|zetaalpha)");
  // An nlohmann::json context converts with its keys sorted.
  const nlohmann::json sorted = nlohmann::json::parse(R"({"tool": {"zeta": 1, "alpha": 2}})");
  EXPECT_EQ(render("{{ tool|tojson }}", sorted), R"({"alpha": 2, "zeta": 1})");
}

TEST(ChatTemplateSubset, StrftimeNowReadsTheGivenClock) {
  const ChatTemplate tpl = ChatTemplate::parse("{{ strftime_now('%Y-%m-%d') }}", "date.jinja");
  EXPECT_EQ(tpl.render(ordered_json::object(), fixed_clock(0)), "1970-01-01");
  EXPECT_EQ(tpl.render(ordered_json::object(), fixed_clock(kNow)), "2025-03-14");
  EXPECT_TRUE(std::regex_match(tpl.render(ordered_json::object()), std::regex(R"(\d{4}-\d{2}-\d{2})")));
}

TEST(ChatTemplateSubset, RendersAreRepeatable) {
  const ChatTemplate tpl = ChatTemplate::parse(
      "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}", "t");
  EXPECT_EQ(tpl.render(unit_context()), "2");
  EXPECT_EQ(tpl.render(unit_context()), "2");  // the namespace is the render's, not the template's
}

// ---------------------------------------------------------------------------------------------
// Bad input: one-line InputErrors that name the template (and the line, where there is one).

std::string error_of(const std::string& source, const ordered_json& context = unit_context(),
                     const TemplateLimits& limits = {}) {
  try {
    render(source, context, limits);
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_THAT(message, StartsWith("chat template test.jinja: ")) << source;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  ADD_FAILURE() << source << " rendered without an error";
  return "";
}

TEST(ChatTemplateErrors, UnterminatedTags) {
  EXPECT_THAT(error_of("a\n{% if x"), HasSubstr("line 2: '{%' tag opened on line 2 is never closed"));
  EXPECT_THAT(error_of("{{ x "), HasSubstr("line 1: '{{' tag opened on line 1 is never closed"));
  EXPECT_THAT(error_of("{# x"), HasSubstr("line 1: missing end of comment tag '#}'"));
  EXPECT_THAT(error_of("{% raw %}x"), HasSubstr("missing {% endraw %}"));
  EXPECT_THAT(error_of("{{ 'abc }}"), HasSubstr("unterminated string literal"));
  EXPECT_THAT(error_of("{{ (1 }}"), HasSubstr("unexpected '}', expected ')'"));
  EXPECT_THAT(error_of("{{ 1) }}"), HasSubstr("unexpected ')'"));
}

TEST(ChatTemplateErrors, UnclosedAndStrayBlocks) {
  EXPECT_THAT(error_of("{% if x %}a"), HasSubstr("ends inside the 'if' on line 1: '{% endif %}' is missing"));
  EXPECT_THAT(error_of("{% for x in l %}a"), HasSubstr("ends inside the 'for' on line 1: '{% endfor %}' is missing"));
  EXPECT_THAT(error_of("{% macro m() %}"), HasSubstr("'{% endmacro %}' is missing"));
  EXPECT_THAT(error_of("a\n\n{% endif %}"), HasSubstr("line 3: unexpected '{% endif %}'"));
  EXPECT_THAT(error_of("{% for x in l %}{% endif %}{% endfor %}"), HasSubstr("unexpected '{% endif %}' inside the 'for'"));
  EXPECT_THAT(error_of("{% break %}"), HasSubstr("'break' outside of a for loop"));
  EXPECT_THAT(error_of("{% for loop in l %}{% endfor %}"), HasSubstr("special loop variable"));
}

TEST(ChatTemplateErrors, SyntaxErrors) {
  EXPECT_THAT(error_of("{{ 1 + }}"), HasSubstr("line 1: expected an expression, got '}}'"));
  EXPECT_THAT(error_of("{% if %}{% endif %}"), HasSubstr("expected an expression, got '%}'"));
  EXPECT_THAT(error_of("{% set = 1 %}"), HasSubstr("expected a name"));
  EXPECT_THAT(error_of("{{ x $ y }}"), HasSubstr("unexpected character '$'"));
  EXPECT_THAT(error_of("{{ 0x1F }}"), HasSubstr("hexadecimal, octal and binary literals are not supported"));
  EXPECT_THAT(error_of("{{ '\\N{BULLET}' }}"), HasSubstr("\\N{...} escapes in strings are not supported"));
  EXPECT_THAT(error_of("{{ f(*l) }}"), HasSubstr("*args and **kwargs in calls are not supported"));
}

TEST(ChatTemplateErrors, ConstructsOutsideTheSubset) {
  EXPECT_THAT(error_of("\n\n{{ x|xmlattr }}"), HasSubstr("line 3: filter 'xmlattr' is not supported"));
  EXPECT_THAT(error_of("{{ x is escaped }}"), HasSubstr("line 1: test 'escaped' is not supported"));
  EXPECT_THAT(error_of("{% include 'x.jinja' %}"), HasSubstr("statement 'include' is not supported"));
  EXPECT_THAT(error_of("{% extends 'x.jinja' %}"), HasSubstr("statement 'extends' is not supported"));
  EXPECT_THAT(error_of("{% frobnicate %}"), HasSubstr("unknown statement 'frobnicate'"));
  EXPECT_THAT(error_of("{% for x in l recursive %}{% endfor %}"), HasSubstr("recursive for loops are not supported"));
  EXPECT_THAT(error_of("{{ 'abc'.zfill(5) }}"), HasSubstr("str method 'zfill' is not supported"));
  EXPECT_THAT(error_of("{{ d.copy() }}"), HasSubstr("dict method 'copy' is not supported"));
  EXPECT_THAT(error_of("{{ 'a%s' % 1 }}"), HasSubstr("'%' on a string) is not supported"));
  EXPECT_THAT(error_of("{{ '{:>4}'.format(1) }}"), HasSubstr("format specs"));
  EXPECT_THAT(error_of("{{ 'é'|upper }}"), HasSubstr("filter 'upper' of text with letters beyond ASCII is not supported"));
  EXPECT_THAT(error_of("{{ 'x' is sameas 'x' }}"), HasSubstr("test 'sameas' on values of type 'str' is not supported"));
  EXPECT_THAT(error_of("{{ cycler(1, 2) }}"), HasSubstr("function 'cycler' is not supported"));
  // Python would print an address here.
  EXPECT_THAT(error_of("{{ d.items }}"), HasSubstr("no reproducible text"));
}

TEST(ChatTemplateErrors, RenderFailuresNameTheLine) {
  EXPECT_THAT(error_of("ok\n{{ x.y }}"), HasSubstr("line 2: 'x' is undefined"));
  EXPECT_THAT(error_of("{% if true %}\n\n  {{ messages[5].role }}\n{% endif %}"),
              HasSubstr("line 3: list object has no element 5"));
  EXPECT_THAT(error_of("{{ d.missing.deeper }}"), HasSubstr("'dict object' has no attribute 'missing'"));
  EXPECT_THAT(error_of("{{ 'a' + 1 }}"), HasSubstr("can only concatenate str (not \"int\") to str"));
  EXPECT_THAT(error_of("{{ 1 < 'a' }}"), HasSubstr("'<' not supported between instances of 'int' and 'str'"));
  EXPECT_THAT(error_of("{{ 1 / 0 }}"), HasSubstr("division by zero"));
  EXPECT_THAT(error_of("{{ 9223372036854775807 + 1 }}"), HasSubstr("integer overflow"));
  EXPECT_THAT(error_of("{% for x in none %}{% endfor %}"), HasSubstr("'NoneType' object is not iterable"));
  EXPECT_THAT(error_of("{% for a, b in [[1]] %}{% endfor %}"), HasSubstr("not enough values to unpack (expected 2, got 1)"));
  EXPECT_THAT(error_of("{% set x = 1 %}{% set x.y = 2 %}"), HasSubstr("cannot assign attribute on non-namespace object"));
  EXPECT_THAT(error_of("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"), HasSubstr("macro 'm' takes not more than 1 argument(s)"));
  EXPECT_THAT(error_of("{% macro m(a) %}{% endmacro %}{{ m(b=1) }}"), HasSubstr("macro 'm' takes no keyword argument 'b'"));
  EXPECT_THAT(error_of("{{ l() }}"), HasSubstr("'list' object is not callable"));
  EXPECT_THAT(error_of("{{ 5|length }}"), HasSubstr("object of type 'int' has no len()"));
  EXPECT_THAT(error_of("{{ [1]|select|length }}"), HasSubstr("object of type 'generator' has no len()"));
  EXPECT_THAT(error_of("{{ l[::0] }}"), HasSubstr("slice step cannot be zero"));
  EXPECT_THAT(error_of("{{ 'x'|tojson(indent=2)|int(base=16) }}"), HasSubstr("base other than 10"));
  EXPECT_THAT(error_of("{{ x|tojson }}"), HasSubstr("Object of type Undefined is not JSON serializable"));
}

TEST(ChatTemplateErrors, SandboxRefusesMutation) {
  EXPECT_THAT(error_of("{% set _ = l.append(4) %}"), HasSubstr("access to attribute 'append' of 'list' object is unsafe."));
  EXPECT_THAT(error_of("{{ d.pop('a') }}"), HasSubstr("access to attribute 'pop' of 'dict' object is unsafe."));
  EXPECT_THAT(error_of("{{ range(100001)|length }}"),
              HasSubstr("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000)."));
}

TEST(ChatTemplateErrors, RaiseException) {
  EXPECT_EQ(error_of("{{ raise_exception('Roles must alternate') }}"),
            "chat template test.jinja: raise_exception: Roles must alternate");
  EXPECT_EQ(error_of("{% if true %}{{ raise_exception('two\\nlines') }}{% endif %}"),
            "chat template test.jinja: raise_exception: two\\nlines");
}

TEST(ChatTemplateErrors, DeepNesting) {
  std::string parens = std::string(500, '(') + "1" + std::string(500, ')');
  EXPECT_THAT(error_of("{{ " + parens + " }}"), HasSubstr("nests blocks and expressions more than 100 deep"));
  std::string blocks;
  for (int i = 0; i < 200; ++i) blocks += "{% if true %}";
  for (int i = 0; i < 200; ++i) blocks += "{% endif %}";
  EXPECT_THAT(error_of(blocks), HasSubstr("more than 100 deep"));
  EXPECT_THAT(error_of("{{ " + std::string(300, '-') + "1 }}"), HasSubstr("more than 100 deep"));
  // Values nest no deeper than 256 however they are built.
  EXPECT_THAT(error_of("{% set ns = namespace(v=1) %}{% for i in range(300) %}{% set ns.v = [ns.v] %}{% endfor %}"),
              HasSubstr("values nested more than 256 deep"));
}

TEST(ChatTemplateErrors, WorkIsBounded) {
  TemplateLimits small;
  small.max_steps = 100000;
  EXPECT_THAT(error_of("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                       unit_context(), small),
              HasSubstr("the render took more than 100000 steps"));
  EXPECT_THAT(error_of("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}"),
              HasSubstr("macro calls nested more than 64 deep"));
  // Two recursive calls per call: depth stays small, but the calls add up.
  EXPECT_THAT(error_of("{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(40) }}",
                       unit_context(), small),
              HasSubstr("steps"));
  EXPECT_THAT(error_of("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"),
              HasSubstr("a value larger than 16777216 bytes was built"));
  EXPECT_THAT(error_of("{{ 'x' * 10 ** 12 }}"), HasSubstr("a value larger than 16777216 bytes was built"));
  TemplateLimits tiny_output;
  tiny_output.max_output_bytes = 1000;
  EXPECT_THAT(error_of("{% for i in range(1000) %}xx{% endfor %}", unit_context(), tiny_output),
              HasSubstr("the output is larger than 1000 bytes"));
}

TEST(ChatTemplateErrors, BadSourceAndContext) {
  TemplateLimits small;
  small.max_source_bytes = 10;
  EXPECT_THAT(error_of("{{ 'more than ten bytes' }}", unit_context(), small), HasSubstr("more than the limit of 10"));
  EXPECT_THAT(error_of("\xff\xfe"), HasSubstr("the template is not valid UTF-8"));
  EXPECT_THAT(error_of("{{ x }}", ordered_json::array()), HasSubstr("the context must be a JSON object, not array"));
  EXPECT_THAT(error_of("{{ x }}", ordered_json{{"x", "\xc3"}}), HasSubstr("context: a context string is not valid UTF-8"));
}

}  // namespace
}  // namespace kvb
