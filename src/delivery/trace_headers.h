// The trace header fields a final delivery adds (RFC 5321 §4.4: Return-Path; Delivered-To, the
// de-facto loop detector that Postfix, qmail and Dovecot write and check).
//
// Pure. The fields are in core/stored_form.h's form (LF line ends), prepended to the message.
#pragma once

#include <string>
#include <string_view>

namespace poplar::delivery {

// "Return-Path: <sender>\nDelivered-To: recipient\n". Control characters in either (an envelope
// is checked by the LMTP core; standard input's -f is not) are dropped, so no header can be
// forged through an envelope address.
std::string trace_headers(std::string_view sender, std::string_view recipient);

}  // namespace poplar::delivery
