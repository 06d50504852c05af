// libFuzzer target: the Maildir storage's two parsers of untrusted text, the file name parser
// (storage/maildir/maildir_name.h: anyone who can deliver mail chooses file names) and the uid
// index parser (storage/maildir/uid_index.h: a file on disk that may be damaged or hand-edited).
//
// Input: byte 0 picks the parser, the rest is the file name or the index text; for the index, a
// leading header is supplied half of the time so the records are reached.
// File names: the base is the prefix before the first ':'; base_name() agrees; a size hint is
// only reported when the name spells it; trusted_virtual_size() is W= and, with S=, keeps
// S <= W <= 2S + 2.
// Index: never throws; every record's name lies inside the text, in new/ or cur/, with no CR or
// LF; uids strictly ascend and stay below next_uid; a valid index written again by
// uid_index_writer parses back to the same records.
#include <string>

#include "fuzz_harness.h"
#include "storage/maildir/maildir_name.h"
#include "storage/maildir/uid_index.h"

namespace poplar::fuzz {

namespace {

using namespace storage::maildir;

void check_name(std::string_view name) {
    const maildir_name n = parse_maildir_name(name);
    POPLAR_FUZZ_CHECK(name.substr(0, n.base.size()) == n.base);
    POPLAR_FUZZ_CHECK(n.base.find(':') == std::string_view::npos);
    POPLAR_FUZZ_CHECK(base_name(name) == n.base);
    POPLAR_FUZZ_CHECK(!n.physical_size || n.base.find(",S=") != std::string_view::npos);
    POPLAR_FUZZ_CHECK(!n.crlf_size || n.base.find(",W=") != std::string_view::npos);
    if (auto w = trusted_virtual_size(n)) {
        // Without S= there is nothing to check W= against (maildir_name.h); with it, the range.
        POPLAR_FUZZ_CHECK(w == n.crlf_size);
        POPLAR_FUZZ_CHECK(!n.physical_size || (*n.physical_size <= *w && *w / 2 <= *n.physical_size + 1));
    }
    if (is_message_file_name(name)) {
        POPLAR_FUZZ_CHECK(!name.empty() && name[0] != '.' && !n.base.empty());
        POPLAR_FUZZ_CHECK(name.find_first_of("\r\n") == std::string_view::npos);
    }
}

void check_index(std::string text) {
    const uid_index idx = parse_uid_index(std::move(text));
    std::uint32_t last = 0;
    for (const uid_index_entry& e : idx.entries) {
        POPLAR_FUZZ_CHECK(std::size_t{e.file.name_offset} + e.file.name_length <= idx.text.size());
        POPLAR_FUZZ_CHECK(e.file.base_length <= e.file.name_length);
        const std::string_view name = idx.file_name(e);
        POPLAR_FUZZ_CHECK(name.find_first_of("\r\n") == std::string_view::npos);
        POPLAR_FUZZ_CHECK(e.file.dir == subdir::new_dir || e.file.dir == subdir::cur_dir);
        POPLAR_FUZZ_CHECK(e.uid > last);
        POPLAR_FUZZ_CHECK(e.uid < idx.next_uid);
        last = e.uid;
    }
    if (idx.state == uid_index_state::valid) {
        uid_index_writer w(idx.uidvalidity, idx.next_uid, idx.stamps, idx.entries.size());
        for (const uid_index_entry& e : idx.entries) {
            w.append(e.uid, e.virtual_size, e.file.dir, idx.file_name(e));
        }
        const uid_index again = parse_uid_index(w.text());
        POPLAR_FUZZ_CHECK(again.state == uid_index_state::valid);
        POPLAR_FUZZ_CHECK(again.uidvalidity == idx.uidvalidity && again.next_uid == idx.next_uid);
        POPLAR_FUZZ_CHECK(again.entries.size() == idx.entries.size());
        for (std::size_t i = 0; i < idx.entries.size(); ++i) {
            POPLAR_FUZZ_CHECK(again.entries[i].uid == idx.entries[i].uid);
            POPLAR_FUZZ_CHECK(again.entries[i].virtual_size == idx.entries[i].virtual_size);
            POPLAR_FUZZ_CHECK(again.file_name(again.entries[i]) == idx.file_name(idx.entries[i]));
        }
    }
}

}  // namespace

int maildir_names_one_input(const std::uint8_t* data, std::size_t size) {
    byte_reader in(data, size);
    const std::uint8_t mode = in.byte();
    if (mode % 2 == 0) {
        check_name(in.rest());
        return 0;
    }
    std::string text;
    if (mode & 2) {
        // A well-formed header, so the fuzzer spends its time on the records.
        uid_index_writer header(1700000000, 1 + (mode >> 2), directory_stamps{1, 2}, 0);
        text = header.text();
    }
    text += in.rest();
    check_index(std::move(text));
    return 0;
}

}  // namespace poplar::fuzz

#ifndef POPLAR_FUZZ_NO_ENTRY_POINT
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return poplar::fuzz::maildir_names_one_input(data, size);
}
#endif
