// Tests for core::session after login: STAT, LIST, UIDL, RETR, TOP, DELE, RSET, QUIT and errors.
#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "core/session.h"
#include "session_fixture.h"

namespace poplar::test {
namespace {

using core::session;

TEST(SessionTransaction, LoginReply) {
    logged_in li;
    EXPECT_EQ(li.last_login, logged_in_3);
    EXPECT_EQ(li.d.session().current_state(), session::state::transaction);
}

TEST(SessionTransaction, Stat) {
    logged_in li;
    EXPECT_EQ(li.d.line("STAT"), "+OK 3 52\r\n");
}

TEST(SessionTransaction, List) {
    logged_in li;
    EXPECT_EQ(li.d.line("LIST"), "+OK 3 messages (52 octets)\r\n1 11\r\n2 21\r\n3 20\r\n.\r\n");
    EXPECT_EQ(li.d.line("LIST 2"), "+OK 2 21\r\n");
    EXPECT_EQ(li.d.line("list 3 "), "+OK 3 20\r\n");
}

TEST(SessionTransaction, Uidl) {
    logged_in li;
    EXPECT_EQ(li.d.line("UIDL"), "+OK unique-id listing follows\r\n1 uid-1\r\n2 uid-2\r\n3 uid-3\r\n.\r\n");
    EXPECT_EQ(li.d.line("UIDL 1"), "+OK 1 uid-1\r\n");
}

TEST(SessionTransaction, EmptyMaildrop) {
    logged_in li(std::vector<memory_maildrop::stored_message>{});
    EXPECT_EQ(li.last_login, "+OK maildrop has 0 messages (0 octets)\r\n");
    EXPECT_EQ(li.d.line("STAT"), "+OK 0 0\r\n");
    EXPECT_EQ(li.d.line("LIST"), "+OK 0 messages (0 octets)\r\n.\r\n");
    EXPECT_EQ(li.d.line("UIDL"), "+OK unique-id listing follows\r\n.\r\n");
    EXPECT_EQ(li.d.line("RETR 1"), "-ERR no such message\r\n");
}

TEST(SessionTransaction, Noop) {
    logged_in li;
    EXPECT_EQ(li.d.line("NOOP"), "+OK\r\n");
}

TEST(SessionTransaction, RetrThroughEffect) {
    logged_in li;
    core::step st = li.d.session().on_line("RETR 2");
    EXPECT_EQ(st.reply, "");
    auto* m = std::get_if<core::effect::send_message>(&st.next);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->index, 1u);
    EXPECT_FALSE(m->top_lines);
    EXPECT_EQ(m->ok_line, "+OK 21 octets\r\n");
}

TEST(SessionTransaction, RetrBytes) {
    logged_in li;
    EXPECT_EQ(li.d.line("RETR 1"), "+OK 11 octets\r\nA: 1\r\n\r\nx\r\n.\r\n");
    EXPECT_EQ(li.d.line("RETR 2"), "+OK 21 octets\r\nB: 2\r\n\r\n..dot\r\nline2\r\n.\r\n");
    EXPECT_EQ(li.d.line("RETR 3"), "+OK 20 octets\r\nC: 3\r\n\r\nno newline\r\n.\r\n");
    EXPECT_EQ(li.d.session().stats().retr, 3u);
    EXPECT_EQ(li.d.session().stats().retr_bytes, 52u);
}

TEST(SessionTransaction, TopThroughEffect) {
    logged_in li;
    core::step st = li.d.session().on_line("TOP 2 5");
    auto* m = std::get_if<core::effect::send_message>(&st.next);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->index, 1u);
    EXPECT_EQ(m->top_lines, std::optional<std::uint64_t>(5));
    EXPECT_EQ(m->ok_line, "+OK top of message follows\r\n");
}

TEST(SessionTransaction, TopBytes) {
    logged_in li;
    EXPECT_EQ(li.d.line("TOP 2 0"), "+OK top of message follows\r\nB: 2\r\n\r\n.\r\n");
    EXPECT_EQ(li.d.line("TOP 2 1"), "+OK top of message follows\r\nB: 2\r\n\r\n..dot\r\n.\r\n");
    EXPECT_EQ(li.d.line("TOP 2 99"), "+OK top of message follows\r\nB: 2\r\n\r\n..dot\r\nline2\r\n.\r\n");
    EXPECT_EQ(li.d.session().stats().top, 3u);
    EXPECT_EQ(li.d.session().stats().retr, 0u);
}

TEST(SessionTransaction, TopArguments) {
    logged_in li;
    EXPECT_EQ(li.d.line("TOP 1"), "-ERR missing argument\r\n");
    EXPECT_EQ(li.d.line("TOP"), "-ERR missing argument\r\n");
    EXPECT_EQ(li.d.line("TOP 1 2 3"), "-ERR too many arguments\r\n");
    EXPECT_EQ(li.d.line("TOP 1 -1"), "-ERR invalid line count\r\n");
    EXPECT_EQ(li.d.line("TOP 1 x"), "-ERR invalid line count\r\n");
    EXPECT_EQ(li.d.line("TOP 1 99999999999999999999"), "-ERR invalid line count\r\n");
    EXPECT_EQ(li.d.line("TOP 4 1"), "-ERR no such message\r\n");
    EXPECT_EQ(li.d.line("TOP x 1"), "-ERR invalid message number\r\n");
    EXPECT_EQ(li.d.line("TOP 1 9999999999"), "+OK top of message follows\r\nA: 1\r\n\r\nx\r\n.\r\n");
}

TEST(SessionTransaction, BadMessageNumbers) {
    logged_in li;
    struct bad {
        std::string arg;
        std::string reply;
    };
    const bad cases[] = {
        {"0", "-ERR no such message\r\n"},
        {"4", "-ERR no such message\r\n"},
        {"4294967297", "-ERR no such message\r\n"},
        {"99999999999999999999", "-ERR no such message\r\n"},
        {"-1", "-ERR invalid message number\r\n"},
        {"1x", "-ERR invalid message number\r\n"},
        {"+1", "-ERR invalid message number\r\n"},
    };
    for (const bad& c : cases) {
        for (const char* cmd : {"LIST ", "UIDL ", "RETR ", "DELE "}) {
            EXPECT_EQ(li.d.line(cmd + c.arg), c.reply) << cmd << c.arg;
        }
        EXPECT_EQ(li.d.line("TOP " + c.arg + " 1"), c.reply) << c.arg;
    }
    EXPECT_EQ(li.d.line("STAT"), "+OK 3 52\r\n");  // nothing was deleted
    EXPECT_FALSE(li.d.closed());
}

TEST(SessionTransaction, DeletedMessagesInvisible) {
    logged_in li;
    EXPECT_EQ(li.d.line("DELE 2"), "+OK message 2 deleted\r\n");
    EXPECT_EQ(li.d.line("STAT"), "+OK 2 31\r\n");
    EXPECT_EQ(li.d.line("LIST"), "+OK 2 messages (31 octets)\r\n1 11\r\n3 20\r\n.\r\n");
    EXPECT_EQ(li.d.line("UIDL"), "+OK unique-id listing follows\r\n1 uid-1\r\n3 uid-3\r\n.\r\n");
    for (const char* cmd : {"LIST 2", "UIDL 2", "RETR 2", "TOP 2 0", "DELE 2"}) {
        EXPECT_EQ(li.d.line(cmd), "-ERR message 2 is deleted\r\n") << cmd;
    }
    EXPECT_EQ(li.d.line("LIST 3"), "+OK 3 20\r\n");  // numbers do not shift (RFC 1939 §5)
}

TEST(SessionTransaction, Rset) {
    logged_in li;
    li.d.line("DELE 1");
    li.d.line("DELE 3");
    EXPECT_EQ(li.d.line("STAT"), "+OK 1 21\r\n");
    EXPECT_EQ(li.d.line("RSET"), logged_in_3);
    EXPECT_EQ(li.d.line("STAT"), "+OK 3 52\r\n");
    EXPECT_EQ(li.d.line("LIST 1"), "+OK 1 11\r\n");
}

TEST(SessionTransaction, MessageUnavailable) {
    logged_in li;
    li.d.drop()->vanish(0);
    EXPECT_EQ(li.d.line("RETR 1"), "-ERR [SYS/TEMP] message is no longer available\r\n");
    EXPECT_EQ(li.d.line("TOP 1 0"), "-ERR [SYS/TEMP] message is no longer available\r\n");
    EXPECT_EQ(li.d.session().stats().retr, 0u);
    EXPECT_EQ(li.d.line("RETR 2").substr(0, 15), "+OK 21 octets\r\n");
    const core::step st = li.d.session().on_message_unavailable({storage::errc::temporary, "ENOENT"});
    EXPECT_EQ(st.reply, "-ERR [SYS/TEMP] message is no longer available\r\n");
    EXPECT_TRUE(std::holds_alternative<core::effect::none>(st.next));
}

TEST(SessionTransaction, QuitWithoutDeletions) {
    logged_in li;
    core::step st = li.d.session().on_line("QUIT");
    EXPECT_EQ(st.reply, "+OK signing off\r\n");
    EXPECT_TRUE(std::holds_alternative<core::effect::close>(st.next));
    EXPECT_EQ(li.d.session().current_state(), session::state::closed);
}

TEST(SessionTransaction, MaildropIsReleasedOnlyOnceClosed) {
    logged_in li;
    li.d.session().release_maildrop();  // still in TRANSACTION: ignored
    EXPECT_NE(li.d.session().maildrop(), nullptr);
    EXPECT_EQ(li.d.line("QUIT"), "+OK signing off\r\n");
    li.d.session().release_maildrop();
    EXPECT_EQ(li.d.session().maildrop(), nullptr);
}

TEST(SessionTransaction, DisconnectDeletesNothingAndReleasesTheMaildrop) {
    logged_in li;
    li.d.line("DELE 1");
    li.d.session().on_disconnect();
    EXPECT_EQ(li.d.session().current_state(), session::state::closed);
    EXPECT_EQ(li.d.session().maildrop(), nullptr);
    EXPECT_EQ(li.d.session().stats().dele, 0u);
}

TEST(SessionTransaction, QuitWithDeletionsCommits) {
    logged_in li;
    li.d.line("DELE 3");
    li.d.line("DELE 1");
    core::step st = li.d.session().on_line("QUIT");
    EXPECT_EQ(st.reply, "");
    auto* c = std::get_if<core::effect::commit>(&st.next);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->indices, (std::vector<std::size_t>{0, 2}));
    st = li.d.session().on_commit_done({});
    EXPECT_EQ(st.reply, "+OK signing off\r\n");
    EXPECT_TRUE(std::holds_alternative<core::effect::close>(st.next));
    EXPECT_EQ(li.d.session().stats().dele, 2u);
}

TEST(SessionTransaction, QuitAfterRsetDeletesNothing) {
    logged_in li;
    li.d.line("DELE 1");
    li.d.line("RSET");
    EXPECT_EQ(li.d.line("QUIT"), "+OK signing off\r\n");
    EXPECT_TRUE(li.d.drop()->remove_calls().empty());
}

TEST(SessionTransaction, CommitThroughMaildrop) {
    logged_in li;
    li.d.line("DELE 2");
    EXPECT_EQ(li.d.line("QUIT"), "+OK signing off\r\n");
    EXPECT_EQ(li.d.drop()->remove_calls(), (std::vector<std::vector<std::size_t>>{{1}}));
    EXPECT_TRUE(li.d.closed());
}

TEST(SessionTransaction, CommitFailure) {
    logged_in li;
    li.d.drop()->fail_remove_with({storage::errc::temporary, "EIO"});
    li.d.line("DELE 1");
    EXPECT_EQ(li.d.line("QUIT"), "-ERR [SYS/TEMP] some deleted messages were not removed\r\n");
    EXPECT_TRUE(li.d.closed());
}

TEST(SessionTransaction, WrongStateCommands) {
    logged_in li;
    for (const char* cmd : {"USER u", "PASS p", "APOP u d", "AUTH", "AUTH PLAIN", "STLS"}) {
        EXPECT_EQ(li.d.line(cmd), wrong_state) << cmd;
    }
    EXPECT_EQ(li.d.line("XYZZY"), "-ERR unknown command\r\n");
}

TEST(SessionTransaction, ArgumentErrors) {
    logged_in li;
    EXPECT_EQ(li.d.line("RETR"), "-ERR missing argument\r\n");
    EXPECT_EQ(li.d.line("DELE"), "-ERR missing argument\r\n");
    EXPECT_EQ(li.d.line("LIST 1 2"), "-ERR too many arguments\r\n");
    EXPECT_EQ(li.d.line("STAT 1"), "-ERR too many arguments\r\n");
    EXPECT_EQ(li.d.line("LIST  1"), "-ERR too many arguments\r\n");
    EXPECT_EQ(li.d.line("RETR " + std::string(256, '1')), "-ERR argument too long\r\n");
}

TEST(SessionTransaction, WrongStateCommandsCountAsBad) {
    // docs/protocol.md: wrong-state commands are bad commands, in every state.
    core::session_policy pol;
    pol.max_bad_commands = 3;
    logged_in li(three_messages(), pol);
    EXPECT_EQ(li.d.line("USER u"), wrong_state);
    EXPECT_EQ(li.d.line("STLS"), wrong_state);
    EXPECT_EQ(li.d.line("PASS p"), too_many_bad);
    EXPECT_TRUE(li.d.closed());
}

TEST(SessionTransaction, BadCommandCounterResetByValidCommand) {
    core::session_policy pol;
    pol.max_bad_commands = 3;
    logged_in li(three_messages(), pol);
    li.d.line("BOGUS");
    li.d.line("BOGUS");
    EXPECT_EQ(li.d.line("NOOP"), "+OK\r\n");
    li.d.line("BOGUS");
    li.d.line("BOGUS");
    EXPECT_FALSE(li.d.closed());
    EXPECT_EQ(li.d.too_long(), too_many_bad);
    EXPECT_TRUE(li.d.closed());
    // Closing for bad commands never commits deletions.
    EXPECT_TRUE(li.d.drop()->remove_calls().empty());
}

TEST(SessionTransaction, MaxLineIsCommandLimit) {
    logged_in li;
    EXPECT_EQ(li.d.session().max_line(), limits::max_command_line);
}

}  // namespace
}  // namespace poplar::test
