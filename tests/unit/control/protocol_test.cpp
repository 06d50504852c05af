// The control protocol's pure core: exact request and reply bytes, every way a peer can be wrong,
// and that any split of the bytes parses the same as all of them at once.
#include "control/protocol.h"

#include <gtest/gtest.h>

namespace poplar::control {
namespace {

// By value: the variant is usually a temporary.
template <class T, class V>
T as(const V& v) {
    EXPECT_TRUE(std::holds_alternative<T>(v));
    return std::get<T>(v);
}

std::string bad_reason(std::string_view wire) { return as<bad>(parse_request(wire)).reason; }

TEST(control_protocol, requests_have_an_exact_form) {
    EXPECT_EQ(format_request({command::status, ""}), "POPLAR-CONTROL 1 status\n");
    EXPECT_EQ(format_request({command::kick, "alice@example.com"}), "POPLAR-CONTROL 1 kick alice@example.com\n");
    EXPECT_EQ(format_request({command::reload, ""}), "POPLAR-CONTROL 1 reload\n");
}

TEST(control_protocol, every_command_round_trips) {
    for (command c : {command::status, command::who, command::kick, command::stats, command::reload}) {
        const request r{c, c == command::kick ? "bob smith" : ""};
        const request back = as<request>(parse_request(format_request(r)));
        EXPECT_EQ(back.what, c);
        EXPECT_EQ(back.argument, r.argument);
        EXPECT_EQ(command_named(name(c)), c);
    }
    EXPECT_EQ(command_named("STATUS"), std::nullopt);
    EXPECT_EQ(command_named("shutdown"), std::nullopt);
}

TEST(control_protocol, incomplete_requests_need_more) {
    for (std::string_view partial : {"", "POPLAR", "POPLAR-CONTROL 1 sta"}) {
        EXPECT_TRUE(std::holds_alternative<need_more>(parse_request(partial))) << partial;
    }
}

TEST(control_protocol, bad_requests_say_why) {
    EXPECT_EQ(bad_reason("GET / HTTP/1.1\n"), "not a poplar control request");
    EXPECT_EQ(bad_reason("POPLAR-CONTROL\n"), "not a poplar control request");
    EXPECT_EQ(bad_reason("POPLAR-CONTROLX 1 status\n"), "not a poplar control request");
    EXPECT_EQ(bad_reason("POPLAR-CONTROL one status\n"), "not a poplar control request");
    EXPECT_EQ(bad_reason("POPLAR-CONTROL 2 status\n"),
              "control protocol version 2 is not supported (this server speaks 1)");
    EXPECT_EQ(bad_reason("POPLAR-CONTROL 1\n"), "no command");
    EXPECT_EQ(bad_reason("POPLAR-CONTROL 1 halt\n"), "unknown command");
    EXPECT_EQ(bad_reason("POPLAR-CONTROL 1 Status\n"), "unknown command");
    EXPECT_EQ(bad_reason("POPLAR-CONTROL 1 kick\n"), "kick needs an argument");
    EXPECT_EQ(bad_reason("POPLAR-CONTROL 1 kick \n"), "kick needs an argument");
    EXPECT_EQ(bad_reason("POPLAR-CONTROL 1 who me\n"), "who takes no argument");
    EXPECT_EQ(bad_reason("POPLAR-CONTROL 1 kick a\rb\n"), "control characters in the argument");
    EXPECT_EQ(bad_reason("POPLAR-CONTROL 1 kick a\x7f\n"), "control characters in the argument");
    EXPECT_EQ(bad_reason(std::string(max_request, 'x')), "request too long");
    EXPECT_EQ(bad_reason("POPLAR-CONTROL 1 kick " + std::string(max_request, 'a') + "\n"), "request too long");
}

TEST(control_protocol, the_longest_request_is_accepted) {
    const std::string head = "POPLAR-CONTROL 1 kick ";
    const std::string user(max_request - head.size() - 1, 'u');
    EXPECT_EQ(as<request>(parse_request(head + user + "\n")).argument, user);
    EXPECT_EQ(bad_reason(head + user + "u\n"), "request too long");
}

TEST(control_protocol, replies_are_length_prefixed) {
    EXPECT_EQ(format_reply({true, "ok\n"}), "OK 3\nok\n");
    EXPECT_EQ(format_reply({false, "no such user\n"}), "ERR 13\nno such user\n");
    EXPECT_EQ(format_reply({true, ""}), "OK 0\n");
    const std::string body = "line one\nline two\n\nOK 5\n";
    const std::string wire = format_reply({true, body});
    // Any prefix needs more; the whole parses to the same reply.
    for (std::size_t n = 0; n < wire.size(); ++n) {
        EXPECT_TRUE(std::holds_alternative<need_more>(parse_reply(wire.substr(0, n)))) << n;
    }
    const reply r = as<reply>(parse_reply(wire));
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.body, body);
    EXPECT_FALSE(as<reply>(parse_reply("ERR 2\nno")).ok);
}

TEST(control_protocol, malformed_replies_are_refused) {
    EXPECT_EQ(as<bad>(parse_reply("HTTP/1.1 200 OK\r\n")).reason, "malformed reply header");
    EXPECT_EQ(as<bad>(parse_reply("OK\n")).reason, "malformed reply header");
    EXPECT_EQ(as<bad>(parse_reply("OK x\n")).reason, "malformed reply length");
    EXPECT_EQ(as<bad>(parse_reply("OK -1\n")).reason, "malformed reply length");
    EXPECT_EQ(as<bad>(parse_reply("OK 99999999999\n")).reason, "malformed reply length");
    EXPECT_EQ(as<bad>(parse_reply("OK 1\nab")).reason, "reply longer than announced");
    EXPECT_EQ(as<bad>(parse_reply(std::string(40, 'O'))).reason, "malformed reply header");
}

}  // namespace
}  // namespace poplar::control
