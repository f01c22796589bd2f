// xfer/receiver.hpp — one receiving connection: requests in, files to the spool, replies out.
// Works on any stream with read/write/shutdown/socket (plain_stream, ringd::tls_stream).
// Memory per connection is the one buffer it is given, whatever the size of the files.
#pragma once

#include "idle_timer.hpp"
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
    std::chrono::milliseconds idle_timeout{60000}; // silence from the peer that ends it
};

// What a receiver needs from its daemon; all of it outlives every connection.
struct receive_context {
    ringd::io_context& io;
    spool& files;
    ringd::logger& log;
};

// Serves one connection until the peer closes, an error ends it, or it is cancelled. Replies to
// bad input with ERR and then closes; the one exception is 409, after which the stream is still
// in step and the connection goes on. `buffer` (at least max_line_length + 1 bytes; 64 KiB is
// good) is the connection's only I/O memory. `peer` names the client in log lines.
template <class Stream>
ringd::task<void> serve_connection(receive_context rc, Stream& stream, receive_limits limits,
                                   std::span<std::byte> buffer, std::string peer);

// =============================================================================================

namespace detail {

// The connection's buffer: [begin, end) holds bytes received and not yet consumed.
struct input_window {
    std::span<std::byte> buffer;
    std::size_t begin = 0;
    std::size_t end = 0;

    [[nodiscard]] std::span<std::byte> pending() const noexcept {
        return buffer.subspan(begin, end - begin);
    }
    void consume(std::size_t n) noexcept {
        begin += n;
        if (begin == end) begin = end = 0;
    }
    // Moves the pending bytes to the front, so the rest of the buffer can be filled.
    void compact() noexcept {
        if (begin == 0) return;
        std::memmove(buffer.data(), buffer.data() + begin, end - begin);
        end -= begin;
        begin = 0;
    }
};

enum class read_outcome { data, eof, idle, failed };

template <class Stream>
ringd::task<read_outcome> fill(Stream& stream, input_window& in, idle_timer& idle) {
    if (idle.expired()) co_return read_outcome::idle;
    in.compact();
    idle.begin_wait();
    auto n = co_await stream.read(in.buffer.subspan(in.end));
    idle.end_wait();
    if (idle.expired()) co_return read_outcome::idle;
    if (!n) co_return read_outcome::failed;
    if (*n == 0) co_return read_outcome::eof;
    in.end += *n;
    co_return read_outcome::data;
}

template <class Stream>
ringd::task<bool> send_text(Stream& stream, std::string text) {
    auto sent = co_await stream.write(std::as_bytes(std::span(text)));
    co_return sent.has_value();
}

// After an error the peer may still be sending (a body we refused): say why, end our side, and
// read and drop a bounded amount, so that closing does not reset the connection before the
// peer has read the reply.
template <class Stream>
ringd::task<void> reply_and_close(Stream& stream, input_window& in, idle_timer& idle,
                                  std::string text) {
    constexpr std::uint64_t max_drained = 16u << 20;
    bool sent = co_await send_text(stream, std::move(text));
    if (!sent) co_return;
    auto ended = co_await stream.shutdown();
    if (!ended) co_return;
    in.begin = in.end = 0;
    for (std::uint64_t drained = 0; drained < max_drained;) {
        auto r = co_await fill(stream, in, idle);
        if (r != read_outcome::data) co_return;
        drained += in.end;
        in.begin = in.end = 0;
    }
}

inline status status_for_write_error(const std::error_code& ec) noexcept {
    if (ec == std::errc::no_space_on_device || ec.value() == EDQUOT) return status::no_space;
    if (ec == std::errc::file_too_large) return status::too_large;
    return status::internal;
}

} // namespace detail

template <class Stream>
ringd::task<void> serve_requests(receive_context rc, Stream& stream, receive_limits limits,
                                 std::span<std::byte> buffer, const std::string& peer,
                                 idle_timer& idle) {
    using detail::read_outcome;
    detail::input_window in{buffer};
    for (;;) {
        // ---- one request line
        std::size_t newline = std::string_view::npos;
        for (;;) {
            auto pending = in.pending();
            const char* text = reinterpret_cast<const char*>(pending.data());
            const void* nl = std::memchr(text, '\n', pending.size());
            if (nl != nullptr) {
                newline = static_cast<std::size_t>(static_cast<const char*>(nl) - text);
                break;
            }
            if (pending.size() > max_line_length) {
                rc.log.logf(ringd::log_level::warning, "refuse request from %s: line too long",
                            peer.c_str());
                co_await detail::reply_and_close(
                    stream, in, idle,
                    err_reply(status::bad_request, "request line longer than " +
                                                       std::to_string(max_line_length) + " bytes"));
                co_return;
            }
            auto r = co_await detail::fill(stream, in, idle);
            if (r == read_outcome::data) continue;
            if (r == read_outcome::idle) {
                co_await detail::reply_and_close(
                    stream, in, idle,
                    err_reply(status::bad_request,
                              "idle for " + std::to_string(idle.limit().count()) + " ms"));
                rc.log.logf(ringd::log_level::info, "close %s: idle", peer.c_str());
            } else if (r == read_outcome::eof && !in.pending().empty()) {
                co_await detail::reply_and_close(
                    stream, in, idle,
                    err_reply(status::bad_request, "connection closed inside a request line"));
            }
            co_return; // a clean close between requests, or a broken connection
        }
        std::string_view line(reinterpret_cast<const char*>(in.pending().data()), newline);
        auto parsed = parse_request(line);
        in.consume(newline + 1);
        if (!parsed) {
            rc.log.logf(ringd::log_level::warning, "refuse request from %s: %s", peer.c_str(),
                        parsed.error().reason.c_str());
            co_await detail::reply_and_close(stream, in, idle,
                                             err_reply(parsed.error().code, parsed.error().reason));
            co_return;
        }
        if (parsed->kind == command::ping) {
            bool sent = co_await detail::send_text(stream, std::string(pong_reply));
            if (!sent) co_return;
            continue;
        }

        // ---- PUT name size: the body streams through the buffer into the spool
        const request& put = *parsed;
        if (put.size > limits.max_file_size) {
            rc.log.logf(ringd::log_level::warning,
                        "refuse %s from %s: %llu bytes is above the limit of %llu",
                        put.name.c_str(), peer.c_str(), static_cast<unsigned long long>(put.size),
                        static_cast<unsigned long long>(limits.max_file_size));
            co_await detail::reply_and_close(
                stream, in, idle,
                err_reply(status::too_large, std::to_string(put.size) +
                                                 " bytes is above the limit of " +
                                                 std::to_string(limits.max_file_size)));
            co_return;
        }
        auto file = rc.files.begin(put.size);
        if (!file) {
            status code = detail::status_for_write_error(file.error());
            rc.log.logf(ringd::log_level::err, "receive %s from %s: %s", put.name.c_str(),
                        peer.c_str(), file.error().message().c_str());
            co_await detail::reply_and_close(
                stream, in, idle,
                err_reply(code, "cannot store " + std::to_string(put.size) +
                                    " bytes: " + file.error().message()));
            co_return;
        }
        std::uint64_t remaining = put.size;
        while (remaining > 0) {
            if (in.pending().empty()) {
                auto r = co_await detail::fill(stream, in, idle);
                if (r != read_outcome::data) {
                    std::string why =
                        r == read_outcome::idle
                            ? "idle for " + std::to_string(idle.limit().count()) + " ms"
                            : "connection closed after " + std::to_string(put.size - remaining) +
                                  " of " + std::to_string(put.size) + " bytes";
                    rc.log.logf(ringd::log_level::warning, "drop %s from %s: %s", put.name.c_str(),
                                peer.c_str(), why.c_str());
                    if (r != read_outcome::failed)
                        co_await detail::reply_and_close(stream, in, idle,
                                                         err_reply(status::bad_request, why));
                    co_return; // the incoming file is discarded with nothing left behind
                }
            }
            auto piece = in.pending().first(
                static_cast<std::size_t>(std::min<std::uint64_t>(remaining, in.pending().size())));
            auto appended = co_await file->append(rc.io, piece);
            if (!appended) {
                rc.log.logf(ringd::log_level::err, "write %s from %s: %s", put.name.c_str(),
                            peer.c_str(), appended.error().message().c_str());
                co_await detail::reply_and_close(
                    stream, in, idle,
                    err_reply(detail::status_for_write_error(appended.error()),
                              "write: " + appended.error().message()));
                co_return;
            }
            in.consume(piece.size());
            remaining -= piece.size();
        }
        // The buffer may hold the start of the next request: commit reads through its free end.
        in.compact();
        std::string digest;
        auto committed = co_await file->commit(rc.io, put.name, buffer.subspan(in.end), digest);
        if (!committed) {
            rc.log.logf(ringd::log_level::err, "store %s from %s: %s", put.name.c_str(),
                        peer.c_str(), committed.error().message().c_str());
            co_await detail::reply_and_close(
                stream, in, idle,
                err_reply(detail::status_for_write_error(committed.error()),
                          "store: " + committed.error().message()));
            co_return;
        }
        if (*committed == commit_outcome::conflict) {
            rc.log.logf(ringd::log_level::warning, "refuse %s from %s: exists with other content",
                        put.name.c_str(), peer.c_str());
            bool sent = co_await detail::send_text(
                stream, err_reply(status::conflict, put.name + " exists with other content"));
            if (!sent) co_return;
            continue;
        }
        rc.log.logf(ringd::log_level::info, "%s %s from %s: %llu bytes, sha256 %s",
                    *committed == commit_outcome::stored ? "received" : "already have",
                    put.name.c_str(), peer.c_str(), static_cast<unsigned long long>(put.size),
                    digest.c_str());
        bool sent = co_await detail::send_text(stream, ok_reply(put.size, digest));
        if (!sent) co_return;
    }
}

// [serve-connection]
template <class Stream>
ringd::task<void> serve_connection(receive_context rc, Stream& stream, receive_limits limits,
                                   std::span<std::byte> buffer, std::string peer) {
    idle_timer idle(limits.idle_timeout);
    ringd::scope watcher;
    watcher.spawn(idle.watch(rc.io, stream.socket()));
    std::exception_ptr failure; // e.g. bad_alloc: the watcher must still be joined first
    try {
        bool secured = true;
        if constexpr (requires { stream.handshake(); }) { // TLS: under the same idle limit
            idle.begin_wait();
            auto hs = co_await stream.handshake();
            idle.end_wait();
            if (!hs) {
                rc.log.logf(ringd::log_level::warning, "TLS handshake with %s: %s", peer.c_str(),
                            idle.expired() ? "idle" : hs.error().message().c_str());
                secured = false;
            }
        }
        if (secured) co_await serve_requests(rc, stream, limits, buffer, peer, idle);
    } catch (...) {
        failure = std::current_exception();
    }
    watcher.request_stop();
    co_await watcher.join();
    if (failure) std::rethrow_exception(failure);
}
// [/serve-connection]

} // namespace xfer
