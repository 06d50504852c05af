// The ceiling for a single RETR: the same bytes sent over a loopback TCP connection by a bare
// send() loop and read by a bare recv() loop, no POP3, no storage, no encryption.
#pragma once

#include "options.h"
#include "sessions.h"

namespace loadgen {

// Reads --file, turns LF into CRLF (the octets a RETR of it puts on the wire), then times
// --repeat request/response transfers of it over one loopback connection.
run_result bare_copy(const options& opt);

}  // namespace loadgen
