// Encoding and decoding of the auth wire protocol's frames (protocol.h).
#include "auth_wire/protocol.h"

#include <fmt/format.h>

#include <algorithm>

namespace poplar::auth_wire {

namespace {

// Upper bounds a decoder enforces on top of the frame's: a hello naming thousands of mechanisms
// is not a hello poplar sent.
constexpr std::size_t max_mechanisms = 64;

class writer {
public:
    explicit writer(message_type t, std::uint64_t id) {
        out_.resize(4);  // the length, filled in by finish()
        u8(protocol_version);
        u8(static_cast<std::uint8_t>(t));
        u64(id);
    }
    void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
    void u16(std::uint16_t v) {
        u8(static_cast<std::uint8_t>(v >> 8));
        u8(static_cast<std::uint8_t>(v));
    }
    void u32(std::uint32_t v) {
        for (int shift = 24; shift >= 0; shift -= 8) {
            u8(static_cast<std::uint8_t>(v >> shift));
        }
    }
    void u64(std::uint64_t v) {
        for (int shift = 56; shift >= 0; shift -= 8) {
            u8(static_cast<std::uint8_t>(v >> shift));
        }
    }
    void bytes(std::string_view s) {
        u32(static_cast<std::uint32_t>(s.size()));
        out_.append(s);
    }
    void addr(const address& a) { out_.append(reinterpret_cast<const char*>(a.data()), a.size()); }
    void mechanisms(const std::vector<mechanism>& ms) {
        u16(static_cast<std::uint16_t>(ms.size()));
        for (const mechanism& m : ms) {
            bytes(m.name);
            u8(m.sends_plaintext ? 1 : 0);
            bytes(m.initial_challenge);
        }
    }
    std::string finish() {
        const auto n = static_cast<std::uint32_t>(out_.size());
        for (int i = 0; i < 4; ++i) {
            out_[static_cast<std::size_t>(i)] = static_cast<char>(n >> (24 - 8 * i));
        }
        return std::move(out_);
    }

private:
    std::string out_;
};

// Reads fields in order; the first one that does not fit sets `bad` and every later read
// returns zero, so decode() checks once at the end.
class reader {
public:
    explicit reader(std::span<const std::uint8_t> in) : in_(in) {}
    bool bad = false;

    std::uint8_t u8() {
        if (!need(1)) {
            return 0;
        }
        return in_[pos_++];
    }
    std::uint16_t u16() {
        std::uint16_t v = 0;
        for (int i = 0; i < 2; ++i) {
            v = static_cast<std::uint16_t>(v << 8 | u8());
        }
        return v;
    }
    std::uint32_t u32() {
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) {
            v = v << 8 | u8();
        }
        return v;
    }
    std::uint64_t u64() {
        std::uint64_t v = 0;
        for (int i = 0; i < 8; ++i) {
            v = v << 8 | u8();
        }
        return v;
    }
    std::string bytes() {
        const std::uint32_t n = u32();
        if (!need(n)) {
            return {};
        }
        std::string s(reinterpret_cast<const char*>(in_.data() + pos_), n);
        pos_ += n;
        return s;
    }
    address addr() {
        address a{};
        if (!need(a.size())) {
            return a;
        }
        std::copy_n(in_.begin() + static_cast<std::ptrdiff_t>(pos_), a.size(), a.begin());
        pos_ += a.size();
        return a;
    }
    bool flag() {
        const std::uint8_t v = u8();
        if (v > 1) {
            bad = true;
        }
        return v == 1;
    }
    std::vector<mechanism> mechanisms() {
        const std::uint16_t n = u16();
        if (n > max_mechanisms) {
            bad = true;
            return {};
        }
        std::vector<mechanism> out;
        for (std::uint16_t i = 0; i < n && !bad; ++i) {
            mechanism m;
            m.name = bytes();
            m.sends_plaintext = flag();
            m.initial_challenge = bytes();
            out.push_back(std::move(m));
        }
        return out;
    }
    bool at_end() const { return pos_ == in_.size(); }

private:
    bool need(std::size_t n) {
        if (bad || in_.size() - pos_ < n) {
            bad = true;
            return false;
        }
        return true;
    }
    std::span<const std::uint8_t> in_;
    std::size_t pos_ = 0;
};

template <class... Ts>
struct overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
overloaded(Ts...) -> overloaded<Ts...>;

}  // namespace

std::string encode(const message& m) {
    return std::visit(
        overloaded{
            [](const hello& h) {
                writer w(message_type::hello, 0);
                w.u32(h.generation);
                w.mechanisms(h.mechanisms);
                return w.finish();
            },
            [](const step& s) {
                writer w(message_type::step, s.exchange);
                w.u32(s.generation);
                w.u8(s.first ? 1 : 0);
                w.u8(s.tls ? 1 : 0);
                w.bytes(s.mechanism);
                w.bytes(s.log_mechanism);
                w.bytes(s.apop_timestamp);
                w.addr(s.client);
                w.bytes(s.client_text);
                w.bytes(s.response);
                return w.finish();
            },
            [](const resume& r) {
                writer w(message_type::resume, r.exchange);
                w.u32(r.generation);
                return w.finish();
            },
            [](const end& e) {
                writer w(message_type::end, e.exchange);
                w.u32(e.generation);
                w.u8(static_cast<std::uint8_t>(e.why));
                return w.finish();
            },
            [](const reply& r) {
                writer w(message_type::reply, r.exchange);
                w.u8(static_cast<std::uint8_t>(r.kind));
                w.u32(r.delay_ms);
                w.u8(static_cast<std::uint8_t>(r.result));
                w.u8(static_cast<std::uint8_t>(r.refused));
                w.bytes(r.user);
                w.bytes(r.log_reason);
                w.bytes(r.client_message);
                w.bytes(r.challenge);
                w.u64(r.penalty_keys);
                w.u32(r.address_blocked_ms);
                return w.finish();
            },
            [](const reload& r) {
                writer w(message_type::reload, r.request);
                w.u32(r.generation);
                w.u8(r.commit ? 1 : 0);
                return w.finish();
            },
            [](const reload_reply& r) {
                writer w(message_type::reload_reply, r.request);
                w.u8(r.ok ? 1 : 0);
                w.bytes(r.message);
                w.mechanisms(r.mechanisms);
                w.bytes(r.config_text);
                return w.finish();
            },
            [](const reset& r) {
                writer w(message_type::reset, 0);
                w.u32(r.generation);
                return w.finish();
            },
            [](const lookup& l) {
                writer w(message_type::lookup, l.request);
                w.u32(l.generation);
                w.bytes(l.address);
                return w.finish();
            },
            [](const lookup_reply& l) {
                writer w(message_type::lookup_reply, l.request);
                w.u8(static_cast<std::uint8_t>(l.result));
                w.bytes(l.user);
                w.u64(l.quota_bytes);
                w.u64(l.quota_messages);
                w.bytes(l.log_reason);
                return w.finish();
            },
        },
        m);
}

result<message, std::string> decode(std::span<const std::uint8_t> frame) {
    if (frame.size() < header_size) {
        return unexpected(fmt::format("frame of {} bytes is shorter than a header", frame.size()));
    }
    if (frame.size() > max_frame) {
        return unexpected(fmt::format("frame of {} bytes is longer than {}", frame.size(), max_frame));
    }
    reader r(frame);
    const std::uint32_t length = r.u32();
    if (length != frame.size()) {
        return unexpected(fmt::format("frame says {} bytes but {} arrived", length, frame.size()));
    }
    const std::uint8_t version = r.u8();
    if (version != protocol_version) {
        return unexpected(fmt::format("protocol version {} (this side speaks {})", version, protocol_version));
    }
    const std::uint8_t type = r.u8();
    const std::uint64_t id = r.u64();
    const auto t = static_cast<message_type>(type);
    if ((t == message_type::hello || t == message_type::reset) && id != 0) {
        // These carry no id; one that is not 0 is not a frame poplar made.
        return unexpected(fmt::format("message type {} with an id", type));
    }
    message out;
    switch (t) {
        case message_type::hello: {
            hello h;
            h.generation = r.u32();
            h.mechanisms = r.mechanisms();
            out = std::move(h);
            break;
        }
        case message_type::step: {
            step s;
            s.exchange = id;
            s.generation = r.u32();
            s.first = r.flag();
            s.tls = r.flag();
            s.mechanism = r.bytes();
            s.log_mechanism = r.bytes();
            s.apop_timestamp = r.bytes();
            s.client = r.addr();
            s.client_text = r.bytes();
            s.response = r.bytes();
            out = std::move(s);
            break;
        }
        case message_type::resume: {
            resume s;
            s.exchange = id;
            s.generation = r.u32();
            out = s;
            break;
        }
        case message_type::end: {
            end e;
            e.exchange = id;
            e.generation = r.u32();
            const std::uint8_t why = r.u8();
            if (why > static_cast<std::uint8_t>(end_reason::client_left)) {
                return unexpected(fmt::format("end reason {} is unknown", why));
            }
            e.why = static_cast<end_reason>(why);
            out = e;
            break;
        }
        case message_type::reply: {
            reply p;
            p.exchange = id;
            const std::uint8_t kind = r.u8();
            p.delay_ms = r.u32();
            const std::uint8_t v = r.u8();
            const std::uint8_t refused = r.u8();
            if (kind > static_cast<std::uint8_t>(reply_kind::done) ||
                v > static_cast<std::uint8_t>(verdict::temporary_failure) ||
                refused > static_cast<std::uint8_t>(refusal::account_blocked)) {
                return unexpected(std::string("reply with an unknown kind, verdict or refusal"));
            }
            p.kind = static_cast<reply_kind>(kind);
            p.result = static_cast<verdict>(v);
            p.refused = static_cast<refusal>(refused);
            p.user = r.bytes();
            p.log_reason = r.bytes();
            p.client_message = r.bytes();
            p.challenge = r.bytes();
            p.penalty_keys = r.u64();
            p.address_blocked_ms = r.u32();
            out = std::move(p);
            break;
        }
        case message_type::reload: {
            reload q;
            q.request = id;
            q.generation = r.u32();
            q.commit = r.flag();
            out = q;
            break;
        }
        case message_type::reload_reply: {
            reload_reply q;
            q.request = id;
            q.ok = r.flag();
            q.message = r.bytes();
            q.mechanisms = r.mechanisms();
            q.config_text = r.bytes();
            out = std::move(q);
            break;
        }
        case message_type::reset: {
            reset q;
            q.generation = r.u32();
            out = q;
            break;
        }
        case message_type::lookup: {
            lookup l;
            l.request = id;
            l.generation = r.u32();
            l.address = r.bytes();
            out = std::move(l);
            break;
        }
        case message_type::lookup_reply: {
            lookup_reply l;
            l.request = id;
            const std::uint8_t result = r.u8();
            if (result > static_cast<std::uint8_t>(lookup_result::temporary_failure)) {
                return unexpected(fmt::format("lookup result {} is unknown", result));
            }
            l.result = static_cast<lookup_result>(result);
            l.user = r.bytes();
            l.quota_bytes = r.u64();
            l.quota_messages = r.u64();
            l.log_reason = r.bytes();
            out = std::move(l);
            break;
        }
        default:
            return unexpected(fmt::format("message type {} is unknown", type));
    }
    if (r.bad) {
        return unexpected(fmt::format("message type {} is truncated or has a field out of range", type));
    }
    if (!r.at_end()) {
        return unexpected(fmt::format("message type {} has bytes after its last field", type));
    }
    return out;
}

}  // namespace poplar::auth_wire
