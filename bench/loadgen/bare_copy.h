// The ceiling for a single RETR: the same bytes sent over a loopback TCP connection by a bare
// send() loop and read by a bare recv() loop, no POP3, no storage. With --tls implicit, the same
// over TLS: OpenSSL encrypts 256 KiB at a time into memory and each chunk's records go out in one
// send() (as poplar's tls_stream batches them), and the reader decrypts with the load generator's
// own client settings (read-ahead into a 256 KiB buffer).
#pragma once

#include "options.h"
#include "sessions.h"

namespace loadgen {

// Reads --file, turns LF into CRLF (the octets a RETR of it puts on the wire), then times
// --repeat request/response transfers of it over one loopback connection (TLS: --cert, --key).
run_result bare_copy(const options& opt);

}  // namespace loadgen
