// Tests for core::parse_command and core::parse_number.
#include "core/command.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace poplar::core {
namespace {

using args = std::vector<std::string_view>;

TEST(ParseCommand, KeywordsAreCaseInsensitive) {
    EXPECT_EQ(parse_command("stat").what, verb::stat);
    EXPECT_EQ(parse_command("StAt").what, verb::stat);
    EXPECT_EQ(parse_command("STAT").what, verb::stat);
    EXPECT_EQ(parse_command("top 1 2").what, verb::top);
    EXPECT_EQ(parse_command("uidl").what, verb::uidl);
}

TEST(ParseCommand, EveryKeyword) {
    const std::pair<std::string_view, verb> all[] = {
        {"USER", verb::user}, {"PASS", verb::pass}, {"APOP", verb::apop}, {"AUTH", verb::auth},
        {"STLS", verb::stls}, {"CAPA", verb::capa}, {"QUIT", verb::quit}, {"STAT", verb::stat},
        {"LIST", verb::list}, {"RETR", verb::retr}, {"DELE", verb::dele}, {"NOOP", verb::noop},
        {"RSET", verb::rset}, {"TOP", verb::top},   {"UIDL", verb::uidl},
    };
    for (const auto& [name, v] : all) {
        EXPECT_EQ(parse_command(name).what, v) << name;
        EXPECT_TRUE(parse_command(name).args.empty()) << name;
    }
}

TEST(ParseCommand, UnknownKeywords) {
    for (std::string_view line : {"", " ", "NOOPX", "NOO", "XSTAT", " STAT", "STAT\t1", "\tSTAT", "GET / HTTP/1.1",
                                  "EHLO x", "S\xC3\x9F"}) {
        EXPECT_EQ(parse_command(line).what, verb::unknown) << line;
    }
}

TEST(ParseCommand, NonAsciiDoesNotFoldToKeyword) {
    // Only ASCII letters fold: "\xd3" is not 's' in any locale that matters here.
    EXPECT_EQ(parse_command("\xd3TAT").what, verb::unknown);
}

TEST(ParseCommand, ArgumentsSplitOnSpaces) {
    EXPECT_EQ(parse_command("TOP 1 10").args, (args{"1", "10"}));
    EXPECT_EQ(parse_command("USER alice").args, (args{"alice"}));
    EXPECT_EQ(parse_command("APOP u 0123").args, (args{"u", "0123"}));
}

TEST(ParseCommand, TrailingSpacesAreNotArguments) {
    EXPECT_TRUE(parse_command("LIST ").args.empty());
    EXPECT_TRUE(parse_command("LIST    ").args.empty());
    EXPECT_EQ(parse_command("LIST 1 ").args, (args{"1"}));
    EXPECT_EQ(parse_command("TOP 1 2  ").args, (args{"1", "2"}));
}

TEST(ParseCommand, DoubleSpaceGivesEmptyArgument) {
    EXPECT_EQ(parse_command("LIST  1").args, (args{"", "1"}));
    EXPECT_EQ(parse_command("TOP 1  2").args, (args{"1", "", "2"}));
}

TEST(ParseCommand, PassKeepsTheRestOfTheLine) {
    EXPECT_EQ(parse_command("PASS secret").args, (args{"secret"}));
    EXPECT_EQ(parse_command("PASS correct horse battery").args, (args{"correct horse battery"}));
    EXPECT_EQ(parse_command("PASS  two leading").args, (args{" two leading"}));
    EXPECT_EQ(parse_command("PASS trailing  ").args, (args{"trailing  "}));
    EXPECT_EQ(parse_command("pass MiXeD").args, (args{"MiXeD"}));
    EXPECT_EQ(parse_command("PASS ").args, (args{""}));
    EXPECT_TRUE(parse_command("PASS").args.empty());
}

TEST(ParseCommand, ArgumentsAreViewsIntoTheLine) {
    const std::string line = "RETR 42";
    const command c = parse_command(line);
    ASSERT_EQ(c.args.size(), 1u);
    EXPECT_EQ(c.args[0].data(), line.data() + 5);
}

TEST(ParseNumber, Valid) {
    EXPECT_EQ(parse_number("0").status, number_arg::kind::ok);
    EXPECT_EQ(parse_number("0").value, 0u);
    EXPECT_EQ(parse_number("1").status, number_arg::kind::ok);
    EXPECT_EQ(parse_number("1").value, 1u);
    EXPECT_EQ(parse_number("007").value, 7u);
    EXPECT_EQ(parse_number("4294967297").value, 4294967297u);  // 2^32 + 1: no wrap to 1
    EXPECT_EQ(parse_number("9999999999").status, number_arg::kind::ok);
    EXPECT_EQ(parse_number("9999999999").value, 9999999999u);
}

TEST(ParseNumber, OutOfRange) {
    EXPECT_EQ(parse_number("99999999999").status, number_arg::kind::out_of_range);
    EXPECT_EQ(parse_number("99999999999999999999").status, number_arg::kind::out_of_range);
    EXPECT_EQ(parse_number("18446744073709551617").status, number_arg::kind::out_of_range);
    EXPECT_EQ(parse_number(std::string(1000, '9')).status, number_arg::kind::out_of_range);
}

TEST(ParseNumber, Invalid) {
    for (std::string_view s : {"", "-1", "1x", "+1", " 1", "1 ", "0x1", "1.0", "\t1", "x", "-0", "١"}) {
        EXPECT_EQ(parse_number(s).status, number_arg::kind::invalid) << s;
    }
    // Not a number at all beats "too long".
    EXPECT_EQ(parse_number("99999999999999999999x").status, number_arg::kind::invalid);
}

}  // namespace
}  // namespace poplar::core
