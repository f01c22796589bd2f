// SPDX-License-Identifier: MIT
// xfer/receiver.hpp — one receiving connection: requests in, files to the spool, replies out.
// Works on any inbound_stream (inbound.hpp: plain_inbound, tls_inbound).
// Memory per connection does not grow with the files: a body streams from the child's shared
// buffer_ring to the spool, and a connection that waits for a request holds no buffer.
#pragma once

#include "idle_timer.hpp"
#include "inbound.hpp"
#include "protocol.hpp"
#include "spool.hpp"

#include <ringd/io_context.hpp>
#include <ringd/log.hpp>
#include <ringd/result.hpp>
#include <ringd/scope.hpp>
#include <ringd/task.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <string_view>

namespace xfer {

struct receive_limits {
    std::uint64_t max_file_size = 4294967296;      // larger PUTs get 413
    std::chrono::milliseconds idle_timeout{60000}; // the window of idle_timer (see there)
    std::uint64_t min_rate = 1024;                 // bytes/s a body must keep up, per window
};

// What a receiver needs from its daemon; all of it outlives every connection.
struct receive_context {
    ringd::io_context& io;
    spool& files;
    ringd::logger& log;
};

// Serves one connection until the peer closes, an error ends it, or it is cancelled. Replies to
// bad input with ERR and then closes; the one exception is 409, after which the stream is still
// in step and the connection goes on. `stream` is a plain_inbound or tls_inbound (inbound.hpp):
// the bytes come as chunks of the child's buffer_ring, so a connection that waits for a request
// holds no buffer; a request line that spans chunks is gathered in a string of at most
// max_line_length bytes. `peer` names the client in log lines.
template <inbound_stream Stream>
ringd::task<void> serve_connection(receive_context rc, Stream& stream, receive_limits limits,
                                   std::string peer);

// The same for a connection beyond max_connections: after the handshake (TLS) it is told
// "ERR 503 too many connections" and closed.
template <inbound_stream Stream>
ringd::task<void> refuse_connection(receive_context rc, Stream& stream, receive_limits limits,
                                    std::string peer);

// =============================================================================================

namespace detail {

enum class read_outcome { data, eof, idle, failed };

// Takes the next chunk into `pending` (which must be empty). The idle timer counts the wait.
template <inbound_stream Stream>
ringd::task<read_outcome> fill(Stream& stream, std::span<const std::byte>& pending,
                               idle_timer& idle) {
    if (idle.expired()) co_return read_outcome::idle;
    idle.begin_wait();
    auto chunk = co_await stream.next();
    idle.end_wait();
    if (idle.expired()) co_return read_outcome::idle;
    if (!chunk) co_return read_outcome::failed;
    if (chunk->empty()) co_return read_outcome::eof;
    idle.received(chunk->size());
    pending = *chunk;
    co_return read_outcome::data;
}

template <inbound_stream Stream>
ringd::task<bool> send_text(Stream& stream, std::string text) {
    auto sent = co_await stream.connection().write(std::as_bytes(std::span(text)));
    co_return sent.has_value();
}

// After an error the peer may still be sending (a body we refused): say why, end our side, and
// read and drop a bounded amount (for at most one idle window), so that closing does not reset
// the connection before the peer has read the reply.
template <inbound_stream Stream>
ringd::task<void> reply_and_close(Stream& stream, idle_timer& idle, std::string text) {
    constexpr std::uint64_t max_drained = 16u << 20;
    bool sent = co_await send_text(stream, std::move(text));
    if (!sent) co_return;
    auto ended = co_await stream.connection().shutdown();
    if (!ended) co_return;
    idle.expect_line();
    for (std::uint64_t drained = 0; drained < max_drained;) {
        std::span<const std::byte> pending;
        auto r = co_await fill(stream, pending, idle);
        if (r != read_outcome::data) co_return;
        drained += pending.size();
    }
}

inline status status_for_write_error(const std::error_code& ec) noexcept {
    if (ec == std::errc::no_space_on_device || ec.value() == EDQUOT) return status::no_space;
    if (ec == std::errc::file_too_large) return status::too_large;
    return status::internal;
}

// How reading a request line ended.
enum class line_outcome { line, closed, refused };

// [read-line]
// Reads one request line from `pending` and, as needed, further chunks. A line inside one chunk
// is used in place; one that spans chunks is gathered in `gathered`, which never holds more
// than max_line_length bytes: a longer line is refused with 400 before it is complete.
template <inbound_stream Stream>
ringd::task<line_outcome> read_line(receive_context rc, Stream& stream,
                                    std::span<const std::byte>& pending, std::string& gathered,
                                    std::string_view& line, idle_timer& idle,
                                    const std::string& peer) {
    using detail::read_outcome;
    gathered.clear();
    idle.expect_line();
    for (;;) {
        if (pending.empty()) {
            if (gathered.empty()) stream.rest(); // between requests: hold nothing while waiting
            auto r = co_await detail::fill(stream, pending, idle);
            if (r == read_outcome::data) continue;
            if (r == read_outcome::idle) {
                co_await detail::reply_and_close(stream, idle,
                                                 err_reply(status::bad_request, idle.reason()));
                rc.log.logf(ringd::log_level::info, "close %s: %s", peer.c_str(),
                            idle.reason().c_str());
            } else if (r == read_outcome::eof && !gathered.empty()) {
                co_await detail::reply_and_close(
                    stream, idle,
                    err_reply(status::bad_request, "connection closed inside a request line"));
            }
            co_return line_outcome::closed; // a clean close between requests, or a broken one
        }
        std::string_view text(reinterpret_cast<const char*>(pending.data()), pending.size());
        std::size_t newline = text.find('\n');
        std::size_t length = gathered.size() + std::min(newline, text.size());
        if (length > max_line_length) {
            rc.log.logf(ringd::log_level::warning, "refuse request from %s: line too long",
                        peer.c_str());
            co_await detail::reply_and_close(
                stream, idle,
                err_reply(status::bad_request, "request line longer than " +
                                                   std::to_string(max_line_length) + " bytes"));
            co_return line_outcome::refused;
        }
        if (newline == std::string_view::npos) {
            gathered.append(text);
            pending = {};
            continue;
        }
        pending = pending.subspan(newline + 1);
        if (gathered.empty()) {
            line = text.substr(0, newline); // valid until the next chunk is taken
        } else {
            gathered.append(text.substr(0, newline));
            line = gathered;
        }
        co_return line_outcome::line;
    }
}
// [/read-line]

} // namespace detail

// One request, its line read: PING, or PUT name size, whose body streams from the pool's
// buffers (what is left of the current chunk first) into the spool. Its own coroutine, so that
// the frame of a connection that waits for a request does not carry what a request needs.
// Returns whether the connection goes on.
template <inbound_stream Stream>
ringd::task<bool> serve_request(receive_context rc, Stream& stream, receive_limits limits,
                                std::string_view line, std::span<const std::byte>& pending,
                                const std::string& peer, idle_timer& idle) {
    using detail::read_outcome;
    auto parsed = parse_request(line);
    if (!parsed) {
        rc.log.logf(ringd::log_level::warning, "refuse request from %s: %s", peer.c_str(),
                    parsed.error().reason.c_str());
        co_await detail::reply_and_close(stream, idle,
                                         err_reply(parsed.error().code, parsed.error().reason));
        co_return false;
    }
    if (parsed->kind == command::ping)
        co_return co_await detail::send_text(stream, std::string(pong_reply));
    const request& put = *parsed;
    if (put.size > limits.max_file_size) {
        rc.log.logf(ringd::log_level::warning,
                    "refuse %s from %s: %llu bytes is above the limit of %llu", put.name.c_str(),
                    peer.c_str(), static_cast<unsigned long long>(put.size),
                    static_cast<unsigned long long>(limits.max_file_size));
        co_await detail::reply_and_close(
            stream, idle,
            err_reply(status::too_large, std::to_string(put.size) +
                                             " bytes is above the limit of " +
                                             std::to_string(limits.max_file_size)));
        co_return false;
    }
    auto file = rc.files.begin(put.size);
    if (!file) {
        status code = detail::status_for_write_error(file.error());
        rc.log.logf(ringd::log_level::err, "receive %s from %s: %s", put.name.c_str(), peer.c_str(),
                    file.error().message().c_str());
        co_await detail::reply_and_close(stream, idle,
                                         err_reply(code, "cannot store " +
                                                             std::to_string(put.size) +
                                                             " bytes: " + file.error().message()));
        co_return false;
    }
    idle.expect_body();
    std::uint64_t remaining = put.size;
    while (remaining > 0) {
        if (pending.empty()) {
            auto r = co_await detail::fill(stream, pending, idle);
            if (r != read_outcome::data) {
                std::string why = r == read_outcome::idle
                                      ? idle.reason()
                                      : "connection closed after " +
                                            std::to_string(put.size - remaining) + " of " +
                                            std::to_string(put.size) + " bytes";
                rc.log.logf(ringd::log_level::warning, "drop %s from %s: %s", put.name.c_str(),
                            peer.c_str(), why.c_str());
                if (r != read_outcome::failed)
                    co_await detail::reply_and_close(stream, idle,
                                                     err_reply(status::bad_request, why));
                co_return false; // the incoming file is discarded with nothing left behind
            }
        }
        auto piece = pending.first(
            static_cast<std::size_t>(std::min<std::uint64_t>(remaining, pending.size())));
        auto appended = co_await file->append(rc.io, piece);
        if (!appended) {
            rc.log.logf(ringd::log_level::err, "write %s from %s: %s", put.name.c_str(),
                        peer.c_str(), appended.error().message().c_str());
            co_await detail::reply_and_close(
                stream, idle,
                err_reply(detail::status_for_write_error(appended.error()),
                          "write: " + appended.error().message()));
            co_return false;
        }
        pending = pending.subspan(piece.size());
        remaining -= piece.size();
    }
    // `pending` may hold the start of the next request: it stays in its chunk meanwhile.
    std::string digest;
    auto committed = co_await file->commit(rc.io, put.name, {}, digest);
    if (!committed) {
        rc.log.logf(ringd::log_level::err, "store %s from %s: %s", put.name.c_str(), peer.c_str(),
                    committed.error().message().c_str());
        co_await detail::reply_and_close(
            stream, idle,
            err_reply(detail::status_for_write_error(committed.error()),
                      "store: " + committed.error().message()));
        co_return false;
    }
    if (*committed == commit_outcome::conflict) {
        rc.log.logf(ringd::log_level::warning, "refuse %s from %s: exists with other content",
                    put.name.c_str(), peer.c_str());
        bool sent = co_await detail::send_text(
            stream, err_reply(status::conflict, put.name + " exists with other content"));
        co_return sent;
    }
    rc.log.logf(ringd::log_level::info, "%s %s from %s: %llu bytes, sha256 %s",
                *committed == commit_outcome::stored ? "received" : "already have",
                put.name.c_str(), peer.c_str(), static_cast<unsigned long long>(put.size),
                digest.c_str());
    bool sent = co_await detail::send_text(stream, ok_reply(put.size, digest));
    co_return sent;
}

template <inbound_stream Stream>
ringd::task<void> serve_requests(receive_context rc, Stream& stream, receive_limits limits,
                                 const std::string& peer, idle_timer& idle) {
    std::span<const std::byte> pending; // received and not yet consumed, in the current chunk
    std::string gathered;               // a request line that spans chunks
    for (;;) {
        // ---- one request line
        std::string_view line;
        auto got = co_await detail::read_line(rc, stream, pending, gathered, line, idle, peer);
        if (got != detail::line_outcome::line) co_return;
        bool go_on = co_await serve_request(rc, stream, limits, line, pending, peer, idle);
        if (!go_on) co_return;
    }
}

namespace detail {

// Runs `body(idle)` beside the connection's idle timer, after the TLS handshake (under the same
// timer) where the stream has one.
template <inbound_stream Stream, class Body>
ringd::task<void> with_idle_timer(receive_context rc, Stream& stream, receive_limits limits,
                                  const std::string& peer, Body body) {
    idle_timer idle(limits.idle_timeout, limits.min_rate);
    ringd::scope watcher;
    watcher.spawn(idle.watch(rc.io, stream.connection().socket()));
    std::exception_ptr failure; // e.g. bad_alloc: the watcher must still be joined first
    try {
        bool secured = true;
        auto& connection = stream.connection();
        if constexpr (requires { connection.handshake(); }) { // TLS: under the same idle limit
            idle.expect_line();
            idle.begin_wait();
            auto hs = co_await connection.handshake();
            idle.end_wait();
            if (!hs) {
                rc.log.logf(ringd::log_level::warning, "TLS handshake with %s: %s", peer.c_str(),
                            idle.expired() ? "idle" : hs.error().message().c_str());
                secured = false;
            }
        }
        if (secured) co_await body(idle);
    } catch (...) {
        failure = std::current_exception();
    }
    watcher.request_stop();
    co_await watcher.join();
    if (failure) std::rethrow_exception(failure);
}

} // namespace detail

// [serve-connection]
template <inbound_stream Stream>
ringd::task<void> serve_connection(receive_context rc, Stream& stream, receive_limits limits,
                                   std::string peer) {
    auto requests = [&](idle_timer& idle) {
        return serve_requests(rc, stream, limits, peer, idle);
    };
    co_await detail::with_idle_timer(rc, stream, limits, peer, requests);
}
// [/serve-connection]

template <inbound_stream Stream>
ringd::task<void> refuse_connection(receive_context rc, Stream& stream, receive_limits limits,
                                    std::string peer) {
    auto refusal = [&](idle_timer& idle) {
        return detail::reply_and_close(stream, idle,
                                       err_reply(status::busy, "too many connections"));
    };
    co_await detail::with_idle_timer(rc, stream, limits, peer, refusal);
}

} // namespace xfer
