// SPDX-License-Identifier: MIT
// ringd/recv_stream.hpp — reads a socket as a stream of buffers from a buffer_ring: one multishot
// recv per connection, each chunk handed over as a view that gives its buffer back when
// released. A connection with nothing to read holds no buffer, so idle connections cost only
// this stream's state (~128 bytes) and the caller's coroutine frame.
#pragma once

#include <ringd/buffer_ring.hpp>
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/result.hpp>
#include <ringd/task.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stop_token>
#include <string_view>
#include <utility>

namespace ringd {

namespace detail {
struct recv_state;
}

// Bytes received into one buffer of the pool. Move-only; the buffer returns to the pool when the
// view is destroyed or release() is called. May outlive the recv_stream and the buffer_ring.
class received {
public:
    received() noexcept = default;
    received(received&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), data_(other.data_), size_(other.size_),
          id_(other.id_) {}
    received& operator=(received&& other) noexcept {
        if (this != &other) {
            release();
            owner_ = std::exchange(other.owner_, nullptr);
            data_ = other.data_;
            size_ = other.size_;
            id_ = other.id_;
        }
        return *this;
    }
    received(const received&) = delete;
    received& operator=(const received&) = delete;
    ~received() { release(); }

    // Empty: the peer closed its end (what recv(2) reports as 0), or everything was consumed.
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
    [[nodiscard]] std::string_view text() const noexcept {
        return {reinterpret_cast<const char*>(data_), size_};
    }
    // Drops the first `n` bytes (consumed); the buffer stays held until the view goes.
    void remove_prefix(std::size_t n) noexcept {
        n = n < size_ ? n : size_;
        data_ += n;
        size_ -= static_cast<std::uint32_t>(n);
    }
    // Gives the buffer back now.
    void release() noexcept;

private:
    friend class recv_stream;
    received(detail::recv_state* owner, const std::byte* data, std::uint32_t size,
             std::uint16_t id) noexcept
        : owner_(owner), data_(data), size_(size), id_(id) {}

    detail::recv_state* owner_ = nullptr; // whom to give the buffer back to; null: none
    const std::byte* data_ = nullptr;
    std::uint32_t size_ = 0;
    std::uint16_t id_ = 0; // the buffer's id in the pool
};

class recv_stream {
public:
    // Starts reading `socket` (which must outlive the stream) into buffers of `pool`, on the
    // pool's loop. Reading pauses once `per_reader` buffers (0: the pool's default) are read
    // and not yet released, and resumes as they are released. Never fails: errors come from
    // next(). Allocates its state from the frame allocator (recycled: no heap in steady state).
    recv_stream(buffer_ring& pool, borrowed_fd socket, unsigned per_reader = 0);
    recv_stream(recv_stream&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
    recv_stream& operator=(recv_stream&&) = delete;
    recv_stream(const recv_stream&) = delete;
    recv_stream& operator=(const recv_stream&) = delete;
    // Stops reading. Bytes read and not yet taken are dropped (their buffers go back); views
    // already taken stay valid.
    ~recv_stream();

    class next_operation;
    // The next chunk, in order: a non-empty view; an empty one once the peer has closed (and
    // every chunk before was taken); or the error — recv(2)'s, ENOBUFS once the pool is gone,
    // or operation_canceled on a stop request (nothing read is lost: the next call has it).
    [[nodiscard]] next_operation next() noexcept;

private:
    detail::recv_state* state_;
};

} // namespace ringd

#include <ringd/detail/recv_stream_impl.hpp>
