// libFuzzer target: auth_wire::decode, the auth process's wire protocol (src/auth_wire/protocol.h),
// the one parser both sides of the process boundary run on what the other side sends.
//
// Input: byte 0 picks a mode: 0 feeds the bytes as they are; 1 writes a correct length and
// version over the header first, and 2 also picks a valid message type from byte 1, so the
// fuzzer spends its time on the fields. Invariants: decode never crashes or reads out of
// bounds; a frame it accepts is canonical, so encoding the decoded message gives back exactly
// the same bytes; a refused frame says why.
#include <string>

#include "auth_wire/protocol.h"
#include "fuzz_harness.h"

namespace poplar::fuzz {

int auth_wire_one_input(const std::uint8_t* data, std::size_t size) {
    byte_reader in(data, size);
    const unsigned mode = in.byte() % 3;
    const std::uint8_t type = static_cast<std::uint8_t>(in.byte() % 9 + 1);
    std::string frame(in.rest());
    if (mode >= 1) {
        if (frame.size() < auth_wire::header_size) {
            frame.resize(auth_wire::header_size, '\0');
        }
        const auto n = static_cast<std::uint32_t>(frame.size());
        for (int i = 0; i < 4; ++i) {
            frame[static_cast<std::size_t>(i)] = static_cast<char>(n >> (24 - 8 * i));
        }
        frame[4] = static_cast<char>(auth_wire::protocol_version);
        if (mode == 2) {
            frame[5] = static_cast<char>(type);
        }
    }
    const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(frame.data()), frame.size());
    auto decoded = auth_wire::decode(bytes);
    if (decoded) {
        const std::string again = auth_wire::encode(decoded.value());
        POPLAR_FUZZ_CHECK(again == frame);
        auto twice = auth_wire::decode(
            std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(again.data()), again.size()));
        POPLAR_FUZZ_CHECK(twice && twice.value() == decoded.value());
    } else {
        POPLAR_FUZZ_CHECK(!decoded.error().empty());
    }
    return 0;
}

}  // namespace poplar::fuzz

#ifndef POPLAR_FUZZ_NO_ENTRY_POINT
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return poplar::fuzz::auth_wire_one_input(data, size);
}
#endif
