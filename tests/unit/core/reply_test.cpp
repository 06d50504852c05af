// Tests for core reply formatting: status lines and RFC 2449/3206 response codes.
#include "core/reply.h"

#include <gtest/gtest.h>

namespace poplar::core {
namespace {

TEST(Reply, Ok) {
    EXPECT_EQ(ok(), "+OK\r\n");
    EXPECT_EQ(ok("signing off"), "+OK signing off\r\n");
    std::string out = "x";
    append_ok(out, "y");
    EXPECT_EQ(out, "x+OK y\r\n");
}

TEST(Reply, ErrWithCodes) {
    EXPECT_EQ(err("unknown command"), "-ERR unknown command\r\n");
    EXPECT_EQ(err(resp_code::none, "a"), "-ERR a\r\n");
    EXPECT_EQ(err(resp_code::auth, "a"), "-ERR [AUTH] a\r\n");
    EXPECT_EQ(err(resp_code::sys_temp, "a"), "-ERR [SYS/TEMP] a\r\n");
    EXPECT_EQ(err(resp_code::sys_perm, "a"), "-ERR [SYS/PERM] a\r\n");
    EXPECT_EQ(err(resp_code::in_use, "a"), "-ERR [IN-USE] a\r\n");
    std::string out;
    append_err(out, resp_code::auth, "b");
    EXPECT_EQ(out, "-ERR [AUTH] b\r\n");
}

TEST(Reply, ConnectionReplies) {
    EXPECT_EQ(shutdown_reply(), "-ERR [SYS/TEMP] server shutting down\r\n");
    EXPECT_EQ(autologout_reply(), "-ERR autologout: idle for too long\r\n");
}

}  // namespace
}  // namespace poplar::core
