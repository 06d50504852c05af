// A client address as the detect/ tables take it, for the tests: IPv4 a.b.c.d.
#pragma once

#include "detect/usage_alerts.h"

namespace poplar::detect::testing {

inline usage_alerts::address ipv4(unsigned char a, unsigned char b, unsigned char c, unsigned char d) {
    usage_alerts::address out{};
    out[0] = a;
    out[1] = b;
    out[2] = c;
    out[3] = d;
    return out;
}

}  // namespace poplar::detect::testing
