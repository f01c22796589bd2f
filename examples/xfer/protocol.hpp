// SPDX-License-Identifier: MIT
// xfer/protocol.hpp — the xfer wire protocol: one request per line, replies as lines.
//   PUT <name> <size>\n + <size> bytes  →  OK <size> <sha256-hex>\n | ERR <code> <reason>\n
//   PING\n                              →  PONG\n
// Pure parsing and formatting: no I/O, so it is unit-tested without sockets.
#pragma once

#include <ringd/result.hpp>

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace xfer {

// The error codes of the protocol (HTTP's numbers, so that they read as they mean).
enum class status : int {
    bad_request = 400, // bad name, bad syntax, size mismatch, idle client
    conflict = 409,    // the name exists with other content
    too_large = 413,   // size above max_file_size
    internal = 500,    // an I/O error on our side
    busy = 503,        // max_connections reached: this connection is refused, the rest served
    no_space = 507,    // the spool's file system cannot hold the file
};

inline constexpr std::size_t max_name_length = 255;
// "PUT " + name + " " + 20 digits: anything longer without a newline is not a request.
inline constexpr std::size_t max_line_length = 4 + max_name_length + 1 + 20;

struct protocol_error {
    status code = status::bad_request;
    std::string reason; // one line, no newline
};

enum class command { put, ping };

struct request {
    command kind = command::ping;
    std::string name;       // PUT only
    std::uint64_t size = 0; // PUT only
};

// Names: 1–255 of [A-Za-z0-9._-], not starting with '.' (so never "." or ".." or a dot file).
[[nodiscard]] constexpr bool valid_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > max_name_length || name.front() == '.') return false;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

// Parses one request line (without its '\n'; a trailing '\r' is tolerated for telnet-like
// peers). Errors are 400 with a reason that quotes what was wrong.
[[nodiscard]] ringd::expected<request, protocol_error> parse_request(std::string_view line);

// Replies, each one complete line.
[[nodiscard]] std::string ok_reply(std::uint64_t size, std::string_view sha256_hex);
[[nodiscard]] std::string err_reply(status code, std::string_view reason);
inline constexpr std::string_view pong_reply = "PONG\n";

// What a sender reads back: OK with size and digest, or the error.
struct reply {
    bool ok = false;
    std::uint64_t size = 0; // OK only
    std::string sha256_hex; // OK only
    int code = 0;           // ERR only
    std::string reason;     // ERR only
};
// Parses a reply line (without '\n'). Error: the line is neither a well-formed OK nor ERR.
[[nodiscard]] ringd::expected<reply, std::string> parse_reply(std::string_view line);

// ---------------------------------------------------------------------------------------------

namespace detail {

inline std::string quoted(std::string_view text) {
    constexpr std::size_t shown = 40; // enough to recognise, not enough to flood a log
    std::string out = "'";
    for (char c : text.substr(0, shown)) {
        bool printable = c >= 0x20 && c < 0x7f;
        out += printable ? c : '?';
    }
    if (text.size() > shown) out += "...";
    return out + "'";
}

inline bool parse_u64(std::string_view text, std::uint64_t& out) noexcept {
    if (text.empty() || text.size() > 20) return false;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size();
}

inline ringd::unexpected<protocol_error> bad(std::string reason) {
    return ringd::unexpected<protocol_error>(
        protocol_error{status::bad_request, std::move(reason)});
}

} // namespace detail

inline ringd::expected<request, protocol_error> parse_request(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line == "PING") return request{command::ping, {}, 0};
    if (!line.starts_with("PUT ")) return detail::bad("unknown request " + detail::quoted(line));
    std::string_view rest = line.substr(4);
    auto space = rest.find(' ');
    if (space == std::string_view::npos)
        return detail::bad("PUT needs a name and a size, got " + detail::quoted(line));
    std::string_view name = rest.substr(0, space);
    std::string_view size_text = rest.substr(space + 1);
    if (!valid_name(name))
        return detail::bad("bad name " + detail::quoted(name) +
                           ": use 1-255 of [A-Za-z0-9._-], not starting with '.'");
    request r{command::put, std::string(name), 0};
    if (!detail::parse_u64(size_text, r.size))
        return detail::bad("bad size " + detail::quoted(size_text) + ": not a decimal byte count");
    return r;
}

inline std::string ok_reply(std::uint64_t size, std::string_view sha256_hex) {
    std::string out = "OK ";
    out += std::to_string(size);
    out += ' ';
    out += sha256_hex;
    out += '\n';
    return out;
}

inline std::string err_reply(status code, std::string_view reason) {
    std::string out = "ERR ";
    out += std::to_string(static_cast<int>(code));
    out += ' ';
    for (char c : reason) out += (c == '\n' || c == '\r') ? ' ' : c; // one line, always
    out += '\n';
    return out;
}

inline ringd::expected<reply, std::string> parse_reply(std::string_view line) {
    auto fail = [&] { return ringd::unexpected<std::string>("bad reply " + detail::quoted(line)); };
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    reply r;
    if (line.starts_with("OK ")) {
        std::string_view rest = line.substr(3);
        auto space = rest.find(' ');
        if (space == std::string_view::npos || !detail::parse_u64(rest.substr(0, space), r.size))
            return fail();
        r.sha256_hex = std::string(rest.substr(space + 1));
        if (r.sha256_hex.size() != 64) return fail();
        r.ok = true;
        return r;
    }
    if (line.starts_with("ERR ")) {
        std::string_view rest = line.substr(4);
        std::uint64_t code = 0;
        auto space = rest.find(' ');
        if (!detail::parse_u64(rest.substr(0, space), code) || code < 100 || code > 999)
            return fail();
        r.code = static_cast<int>(code);
        if (space != std::string_view::npos) r.reason = std::string(rest.substr(space + 1));
        return r;
    }
    return fail();
}

} // namespace xfer
