// SPDX-License-Identifier: MIT
// ringd/buffer_ring.hpp — a pool of receive buffers shared by every connection of a loop. The
// kernel picks a buffer only when data arrives (a registered ring of provided buffers, Linux
// 5.19), so a connection that waits holds no buffer at all; recv_stream reads through it.
#pragma once

#include <ringd/detail/io_op.hpp>
#include <ringd/io_context.hpp>

#include <liburing.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

namespace ringd {

struct buffer_ring_stats {
    std::uint64_t enobufs = 0;       // a read found the pool empty and waited for a buffer back
    std::uint64_t reader_pauses = 0; // a reader reached its limit and stopped reading
};

namespace detail {
struct buffer_pool_core;
}

class buffer_ring {
public:
    struct options {
        unsigned count = 256; // buffers: a power of two, 1..32768
        unsigned size = 4096; // bytes in each
        // Buffers one reader may hold (read and not yet released) before it stops reading, so
        // that a connection whose consumer stalls cannot take the whole pool; 0: count / 8,
        // at least 4 (or count). A consumer holding that many views gets ENOBUFS from next().
        // With multishot recv the kernel may read up to one pass more (32 buffers on 6.x)
        // before the reader can stop it.
        unsigned per_reader = 0;
        // false: use the fallback (poll, then recv into a free buffer) even where the kernel
        // has buffer rings. For tests of older kernels' path.
        bool kernel_ring = true;
        // false: one buffer-select recv per arrival even where the kernel has multishot recv
        // (what Linux 5.19 gets). For tests of that path.
        bool multishot = true;
    };

    // Allocates count × size bytes (mmap: pages are only backed once used) and registers them
    // with the ring; where the kernel cannot (before 5.19), readers fall back to poll + recv.
    // Throws std::invalid_argument for a bad count or size, std::system_error ("mmap: ...")
    // when the memory cannot be had. Make it after its io_context, destroy it before.
    buffer_ring(io_context& ctx, options opts);
    explicit buffer_ring(io_context& ctx) : buffer_ring(ctx, options{}) {}
    // Unregisters the ring. Readers and buffers still out keep the memory alive until released.
    ~buffer_ring();
    buffer_ring(const buffer_ring&) = delete;
    buffer_ring& operator=(const buffer_ring&) = delete;

    // Whether the kernel picks the buffers (else the poll + recv fallback).
    [[nodiscard]] bool kernel_provided() const noexcept;
    // Whether readers use multishot recv (Linux 6.0); known after the first read.
    [[nodiscard]] bool multishot() const noexcept;
    [[nodiscard]] unsigned buffer_size() const noexcept;
    [[nodiscard]] unsigned count() const noexcept;
    [[nodiscard]] unsigned per_reader() const noexcept;
    // Buffers in the pool now (not held by any reader).
    [[nodiscard]] unsigned available() const noexcept;
    [[nodiscard]] const buffer_ring_stats& stats() const noexcept;

    [[nodiscard]] detail::buffer_pool_core* core() const noexcept { return core_; }

private:
    detail::buffer_pool_core* core_;
};

namespace detail {

// The pool's memory and bookkeeping. Shared (single-threaded reference count) by the
// buffer_ring and every reader of it, so that a reader or a received view may outlive the
// buffer_ring: what it gives back then goes nowhere, and the memory goes with the last user.
struct buffer_pool_core {
    static constexpr std::uint16_t no_buffer = 0xffff;
    // complete_later() result that wakes a reader parked in `starved`: buffers came back.
    static constexpr int refilled = -0x7fff'0000;

    struct slot {
        std::uint32_t length = 0;       // bytes received into the buffer
        std::uint16_t next = no_buffer; // the next buffer in the same reader's queue
    };

    buffer_pool_core(io_context& c, buffer_ring::options o);
    ~buffer_pool_core() {
        if (memory != nullptr) ::munmap(memory, bytes());
    }

    [[nodiscard]] std::size_t bytes() const noexcept { return std::size_t(count) * size; }
    [[nodiscard]] std::byte* buffer(std::uint16_t id) const noexcept {
        return memory + std::size_t(id) * size;
    }
    [[nodiscard]] unsigned available() const noexcept { return count - lent; }

    // Fallback only: takes a free buffer, or answers false.
    bool take(std::uint16_t& id) noexcept {
        if (free_top == 0) return false;
        id = free_ids[--free_top];
        ++lent;
        return true;
    }
    // A reader is done with buffer `id`: back into the kernel's ring (or the free list), and
    // the first reader that waits for one is woken (from the loop, not from here).
    void give_back(std::uint16_t id) noexcept {
        --lent;
        if (!alive) return;
        if (ring != nullptr) {
            io_uring_buf_ring_add(ring, buffer(id), size, id, io_uring_buf_ring_mask(count), 0);
            io_uring_buf_ring_advance(ring, 1);
        } else {
            free_ids[free_top++] = id;
        }
        if (io_op* reader = starved.pop_front()) ctx->complete_later(reader, refilled);
    }
    // A woken reader that will not take the buffer it was woken for (its socket has nothing
    // queued, or it no longer reads) passes the wake-up on, or the buffer would lie free while
    // readers with data stay parked until some other buffer comes back.
    void pass_wake_on() noexcept {
        if (available() == 0) return; // all lent: a give_back will wake the next one
        if (io_op* reader = starved.pop_front()) ctx->complete_later(reader, refilled);
    }
    void unregister() noexcept;
    void unref() noexcept {
        if (--refs == 0) delete this;
    }

    io_context* ctx;
    std::byte* memory = nullptr;       // count × size bytes, page-aligned
    io_uring_buf_ring* ring = nullptr; // the kernel's view of the free buffers; null: fallback
    std::unique_ptr<slot[]> slots;     // per buffer: its length and its queue link
    std::unique_ptr<std::uint16_t[]> free_ids; // fallback: the free buffers, a stack
    unsigned free_top = 0;
    unsigned count;
    unsigned size;
    unsigned per_reader;
    unsigned lent = 0;             // buffers in readers' queues or in released-not-yet views
    unsigned refs = 1;             // the buffer_ring and every live reader
    std::uint16_t group = 0;       // the buffer group id SQEs name
    bool alive = true;             // the buffer_ring exists (the ring is registered)
    bool multishot = true;         // multishot recv works, or is still presumed to
    bool multishot_proven = false; // a multishot recv has delivered data
    op_queue starved;              // readers that found the pool empty (through their io_op links)
    buffer_ring_stats stats;
};

inline buffer_pool_core::buffer_pool_core(io_context& c, buffer_ring::options o)
    : ctx(&c), count(o.count), size(o.size),
      per_reader(o.per_reader != 0 ? o.per_reader : std::max(o.count / 8, std::min(o.count, 4u))) {
    if (count == 0 || count > 32768 || (count & (count - 1)) != 0)
        throw std::invalid_argument("ringd::buffer_ring: count " + std::to_string(count) +
                                    " is not a power of two in 1..32768");
    if (size == 0 || size > (1u << 30))
        throw std::invalid_argument("ringd::buffer_ring: size " + std::to_string(size) +
                                    " is not in 1..2^30");
    void* mem =
        ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) throw std::system_error(errno, std::system_category(), "mmap");
    memory = static_cast<std::byte*>(mem);
    slots = std::make_unique<slot[]>(count);
    if (o.kernel_ring) {
        const std::size_t ring_bytes = count * sizeof(io_uring_buf);
        void* r =
            ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (r != MAP_FAILED) {
            // liburing 2.3 has no io_uring_setup_buf_ring: register page-aligned memory by hand.
            io_uring_buf_reg reg{};
            reg.ring_addr = reinterpret_cast<std::uintptr_t>(r);
            reg.ring_entries = count;
            group = c.allocate_buffer_group();
            reg.bgid = group;
            if (io_uring_register_buf_ring(&c.native_handle(), &reg, 0) == 0) {
                ring = static_cast<io_uring_buf_ring*>(r);
                io_uring_buf_ring_init(ring);
                for (unsigned i = 0; i < count; ++i)
                    io_uring_buf_ring_add(ring, buffer(static_cast<std::uint16_t>(i)), size,
                                          static_cast<unsigned short>(i),
                                          io_uring_buf_ring_mask(count), static_cast<int>(i));
                io_uring_buf_ring_advance(ring, static_cast<int>(count));
            } else {
                ::munmap(r, ring_bytes); // before 5.19: the fallback below
            }
        }
    }
    multishot = o.multishot;
    if (ring == nullptr) {
        multishot = false;
        free_ids = std::make_unique<std::uint16_t[]>(count);
        for (unsigned i = count; i-- > 0;) free_ids[free_top++] = static_cast<std::uint16_t>(i);
    }
}

// The buffer_ring goes away: the kernel forgets the ring; readers keep what they hold.
inline void buffer_pool_core::unregister() noexcept {
    alive = false;
    // Readers waiting for a buffer would wait forever: they wake and report ENOBUFS.
    while (io_op* reader = starved.pop_front()) ctx->complete_later(reader, refilled);
    if (ring == nullptr) return;
    (void)io_uring_unregister_buf_ring(&ctx->native_handle(), group);
    ::munmap(ring, count * sizeof(io_uring_buf));
    ring = nullptr;
}

} // namespace detail

inline buffer_ring::buffer_ring(io_context& ctx, options opts)
    : core_(new detail::buffer_pool_core(ctx, opts)) {}

inline buffer_ring::~buffer_ring() {
    core_->unregister();
    core_->unref();
}

inline bool buffer_ring::kernel_provided() const noexcept {
    return core_->ring != nullptr;
}
inline bool buffer_ring::multishot() const noexcept {
    return core_->multishot;
}
inline unsigned buffer_ring::buffer_size() const noexcept {
    return core_->size;
}
inline unsigned buffer_ring::count() const noexcept {
    return core_->count;
}
inline unsigned buffer_ring::per_reader() const noexcept {
    return core_->per_reader;
}
inline unsigned buffer_ring::available() const noexcept {
    return core_->available();
}
inline const buffer_ring_stats& buffer_ring::stats() const noexcept {
    return core_->stats;
}

} // namespace ringd
