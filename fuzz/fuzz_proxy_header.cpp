// libFuzzer target: proxy::parse, the PROXY protocol header parser (src/proxy/header.h).
//
// Input: byte 0 picks a prefix (none, the v1 "PROXY ", the v2 signature plus a version byte) so
// the fuzzer reaches past the signatures at once; the rest follows it. Invariants: a complete
// header is no longer than the input and parses the same from exactly its own bytes; every
// shorter prefix of it needs more (the parser never decides early, never reads what follows);
// an invalid input says why; need_more only below the size cap.
#include <cstring>
#include <string>

#include "fuzz_harness.h"
#include "proxy/header.h"

namespace poplar::fuzz {

int proxy_header_one_input(const std::uint8_t* data, std::size_t size) {
    byte_reader in(data, size);
    std::string buf;
    switch (in.byte() % 4) {
    case 1:
        buf = "PROXY ";
        break;
    case 2:
        buf.assign("\r\n\r\n\0\r\nQUIT\n\x21", 13);
        break;
    case 3:
        buf.assign("\r\n\r\n\0\r\nQUIT\n\x20", 13);
        break;
    default:
        break;
    }
    buf += in.rest();
    const std::span<const std::uint8_t> all(reinterpret_cast<const std::uint8_t*>(buf.data()), buf.size());
    const proxy::parsed p = proxy::parse(all);
    switch (p.what) {
    case proxy::parsed::kind::complete: {
        POPLAR_FUZZ_CHECK(p.length > 0 && p.length <= buf.size() && p.length <= proxy::max_header);
        const proxy::parsed exact = proxy::parse(all.first(p.length));
        POPLAR_FUZZ_CHECK(exact.what == proxy::parsed::kind::complete && exact.length == p.length);
        POPLAR_FUZZ_CHECK(exact.value.version == p.value.version && exact.value.local == p.value.local);
        POPLAR_FUZZ_CHECK(std::memcmp(&exact.value.source, &p.value.source, sizeof p.value.source) == 0);
        for (std::size_t n = 0; n < p.length; ++n) {
            POPLAR_FUZZ_CHECK(proxy::parse(all.first(n)).what == proxy::parsed::kind::need_more);
        }
        break;
    }
    case proxy::parsed::kind::invalid:
        POPLAR_FUZZ_CHECK(!p.error.empty());
        break;
    case proxy::parsed::kind::need_more:
        POPLAR_FUZZ_CHECK(buf.size() < proxy::max_header);
        break;
    }
    return 0;
}

}  // namespace poplar::fuzz

#ifndef POPLAR_FUZZ_NO_ENTRY_POINT
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return poplar::fuzz::proxy_header_one_input(data, size);
}
#endif
