// SPDX-License-Identifier: MIT
// xfer/sender.hpp — the sending side of the wire protocol: one file over an open stream
// (any ringd::byte_stream: plain_stream, tls_stream), read from disk through the ring, and the
// reply checked.
#pragma once

#include "protocol.hpp"
#include "sha256.hpp"

#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/result.hpp>
#include <ringd/stream.hpp>
#include <ringd/task.hpp>

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <string>

namespace xfer {

// How one PUT ended, when the connection itself did not fail.
struct send_outcome {
    bool confirmed = false; // OK with our size and sha256: the partner has the file
    std::string problem;    // otherwise why: "ERR 409 ...", "digest mismatch", ...
    bool permanent =
        false; // the partner refused this file (4xx): retrying the same bytes won't help soon
    std::uint64_t size = 0;
};

// Reads one reply line from `stream`. The partner answers each request with exactly one line
// and we never pipeline, so nothing can follow the newline: reading in chunks loses nothing.
template <ringd::byte_stream Stream>
ringd::task<ringd::result<std::string>> read_reply_line(Stream& stream) {
    std::string line;
    std::byte chunk[256];
    while (line.size() < 1024) {
        auto n = co_await stream.read(chunk);
        if (!n) co_return ringd::error_of(n);
        if (*n == 0) co_return ringd::errno_error(ECONNRESET);
        line.append(reinterpret_cast<const char*>(chunk), *n);
        if (auto nl = line.find('\n'); nl != std::string::npos) {
            line.resize(nl);
            co_return line;
        }
    }
    co_return ringd::errno_error(EPROTO);
}

// Sends dir/name as "PUT name size" + content and waits for the reply. `buffer` carries the
// content (its size bounds the memory used). Errors: the connection's or the file's.
template <ringd::byte_stream Stream>
ringd::task<ringd::result<send_outcome>> send_file(ringd::io_context& ctx, Stream& stream,
                                                   ringd::borrowed_fd dir, std::string name,
                                                   std::span<std::byte> buffer) {
    ringd::unique_fd file(::openat(dir.get(), name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!file) co_return ringd::last_error();
    struct stat st {};
    if (::fstat(file.get(), &st) != 0) co_return ringd::last_error();
    auto size = static_cast<std::uint64_t>(st.st_size);
    std::string header = "PUT " + name + " " + std::to_string(size) + "\n";
    auto sent_header = co_await stream.write(std::as_bytes(std::span(header)));
    if (!sent_header) co_return ringd::error_of(sent_header);
    sha256 hash;
    std::uint64_t offset = 0;
    while (offset < size) {
        auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), size - offset));
        auto n = co_await ringd::async_read(ctx, file, buffer.first(want), offset);
        if (!n) co_return ringd::error_of(n);
        if (*n == 0)
            co_return ringd::errno_error(EIO); // shrank while we sent it: the stream is out of step
        hash.update(buffer.first(*n));
        auto w = co_await stream.write(buffer.first(*n));
        if (!w) co_return ringd::error_of(w);
        offset += *n;
    }
    std::string digest = hash.finish_hex();
    auto line = co_await read_reply_line(stream);
    if (!line) co_return ringd::error_of(line);
    send_outcome out;
    out.size = size;
    auto reply = parse_reply(*line);
    if (!reply) {
        out.problem = reply.error();
        co_return out;
    }
    if (!reply->ok) {
        out.problem = *line;
        out.permanent = reply->code >= 400 && reply->code < 500;
        co_return out;
    }
    if (reply->size != size || reply->sha256_hex != digest) {
        out.problem =
            "the partner confirmed other content (" + *line + ", we sent sha256 " + digest + ")";
        co_return out;
    }
    out.confirmed = true;
    co_return out;
}

} // namespace xfer
