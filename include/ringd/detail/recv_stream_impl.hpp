// SPDX-License-Identifier: MIT
// ringd/detail/recv_stream_impl.hpp — the machinery behind recv_stream (recv_stream.hpp).
// One recv per connection stays armed (multishot where the kernel has it) and queues what it
// receives in the pool's buffers; the consumer takes them in order. ENOBUFS (pool empty) parks
// the reader until a buffer comes back: back-pressure, never a busy loop.
#pragma once

#include <ringd/buffer_ring.hpp>
#include <ringd/detail/frame_allocator.hpp>
#include <ringd/detail/io_op.hpp>
#include <ringd/detail/stop_binding.hpp>
#include <ringd/recv_stream.hpp>

#include <liburing.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <new>

namespace ringd {
namespace detail {

// A reader's state. Heap-allocated (from the frame allocator: recycled, no heap traffic in
// steady state) because the kernel may still hold its io_op after the recv_stream is gone.
struct recv_state : ring_op<recv_state> {
    static constexpr std::uint16_t none = buffer_pool_core::no_buffer;

    recv_state(buffer_pool_core* p, int socket, unsigned limit) noexcept
        : pool(p), fd(socket),
          per_reader(static_cast<std::uint16_t>(limit > 0xfffe ? 0xfffe : limit)) {
        ++pool->refs;
    }

    static void* operator new(std::size_t n) { return frame_allocator::allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept {
        frame_allocator::deallocate(p, n);
    }

    // Something for next(): data, the end, an error, or — a consumer that holds its whole limit
    // in views and asks for more would wait forever — ENOBUFS at once.
    [[nodiscard]] bool has_news() const noexcept {
        return head != none || eof || error != 0 || held >= per_reader;
    }
    [[nodiscard]] bool wants_data() const noexcept {
        return !eof && error == 0 && !cancel_wait && held < per_reader;
    }

    // Whether a recv armed now takes a pool buffer at once. The kernel picks a buffer before
    // it receives and puts it back when the socket has nothing (nor when it is at its end), so
    // only queued bytes take one.
    [[nodiscard]] bool will_take_buffer() const noexcept {
        int queued = 0;
        return !orphaned && wants_data() && ::ioctl(fd, FIONREAD, &queued) == 0 && queued > 0;
    }

    // Arms the recv (or, in the fallback, the poll) unless it is armed, parked or not wanted.
    void arm() noexcept {
        if (armed || starved || orphaned || !wants_data()) return;
        if (pool->ctx->stopping()) {
            error = ECANCELED;
            return;
        }
        if (!pool->alive) {
            error = ENOBUFS;
            return;
        }
        armed = true;
        pool->ctx->submit(this);
    }
    void starve() noexcept {
        starved = true;
        ++pool->stats.enobufs;
        pool->starved.push_back(this);
    }
    void enqueue(std::uint16_t id, std::uint32_t length) noexcept {
        pool->slots[id].length = length;
        pool->slots[id].next = none;
        if (tail == none)
            head = id;
        else
            pool->slots[tail].next = id;
        tail = id;
        ++held;
        if (held == per_reader) ++pool->stats.reader_pauses; // the step onto the limit
    }
    std::uint16_t dequeue() noexcept {
        std::uint16_t id = head;
        head = pool->slots[id].next;
        if (head == none) tail = none;
        return id;
    }
    // Gives back what was read and not taken (the stream is gone).
    void drop_queue() noexcept {
        while (head != none) {
            --held;
            pool->give_back(dequeue());
        }
    }
    // Leaves pool->starved, if parked there (a refill already on its way is left to arrive).
    void leave_starved() noexcept {
        if (!starved || where != place::idle) return;
        starved = false;
        pool->starved.unlink(this);
    }
    // A view gives buffer `id` back.
    void release(std::uint16_t id) noexcept {
        --held;
        pool->give_back(id);
        if (orphaned) return free_if_done();
        arm();
    }
    // Fallback: the socket is readable; read into a free buffer without blocking.
    void read_now() noexcept {
        std::uint16_t id = 0;
        if (!pool->take(id)) return starve();
        ssize_t n = ::recv(fd, pool->buffer(id), pool->size, MSG_DONTWAIT);
        if (n > 0) return enqueue(id, static_cast<std::uint32_t>(n));
        const int e = errno;
        pool->give_back(id);
        if (n == 0)
            eof = true;
        else if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR)
            error = e;
    }
    void free_if_done() noexcept {
        if (!armed && held == 0 && where == place::idle) {
            pool->unref();
            delete this;
        }
    }

    // The consumer's stop request: end its wait (from the loop) with operation_canceled.
    void cancel_waiter() noexcept {
        if (!waiter) return;
        cancel_wait = true;
        if (armed) return pool->ctx->cancel(this);
        leave_starved();
        if (where == place::idle) pool->ctx->complete_later(this, -ECANCELED);
    }

    void prepare(io_uring_sqe* sqe) noexcept;
    void complete(int res, std::uint32_t flags) noexcept;

    buffer_pool_core* pool;
    int fd;
    std::uint16_t head = none;      // the first buffer read and not yet taken
    std::uint16_t tail = none;      // the last one
    std::uint16_t held = 0;         // buffers queued or in views not yet released
    std::uint16_t per_reader;       // at this many held, stop reading
    int error = 0;                  // errno to report once the queue is empty (sticky)
    bool armed = false;             // the recv/poll is in the ring
    bool starved = false;           // parked in pool->starved until a buffer comes back
    bool eof = false;               // the peer closed: report once the queue is empty
    bool orphaned = false;          // the recv_stream is gone
    bool cancel_wait = false;       // the consumer's wait is being cancelled
    std::coroutine_handle<> waiter; // the consumer suspended in next()
};

inline void recv_state::prepare(io_uring_sqe* sqe) noexcept {
    buffer_pool_core& p = *pool;
    if (p.ring == nullptr) return io_uring_prep_poll_add(sqe, fd, POLLIN);
    // Length 0: the kernel uses the length of the buffer it picks.
    if (p.multishot)
        io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
    else
        io_uring_prep_recv(sqe, fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = p.group;
}

inline void recv_state::complete(int res, std::uint32_t flags) noexcept {
    buffer_pool_core& p = *pool;
    if (res == buffer_pool_core::refilled) {
        // Woken from pool->starved: a buffer came back (or the pool went away).
        starved = false;
        if (!p.alive) error = ENOBUFS;
        if (p.ring == nullptr && p.alive && !orphaned)
            read_now();
        else if (p.ring != nullptr && p.alive && !will_take_buffer())
            p.pass_wake_on();
    } else {
        if (ends_multishot(flags)) armed = false;
        if (res > 0 && p.ring != nullptr) {
            p.multishot_proven |= p.multishot;
            ++p.lent;
            enqueue(static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT),
                    static_cast<std::uint32_t>(res));
        } else if (res > 0) {
            read_now(); // the fallback's poll: readable (or hung up: recv says which)
        } else if (res == 0) {
            eof = true;
        } else if (res == -ENOBUFS) {
            // Back-pressure. A buffer may have come back since the kernel looked: then retry
            // at once; else park until one does.
            if (p.available() == 0 && !orphaned && p.alive) starve();
        } else if (res == -ECANCELED) {
            // Our own cancel (reader limit, consumer's stop, stream gone) or the loop stopping.
            if (p.ctx->stopping()) error = ECANCELED;
        } else if (res == -EINVAL && p.multishot && !p.multishot_proven) {
            p.multishot = false; // before Linux 6.0: one recv per chunk, still pool buffers
        } else {
            error = -res;
        }
    }
    if (orphaned) {
        drop_queue();
        return free_if_done();
    }
    // At its limit, a multishot recv is cancelled: it would go on filling buffers.
    if (armed && held >= per_reader && !cancel_wait) p.ctx->cancel(this);
    arm();
    if (waiter && (has_news() || cancel_wait)) std::exchange(waiter, {}).resume();
}

} // namespace detail

inline void received::release() noexcept {
    if (owner_ == nullptr) return;
    std::exchange(owner_, nullptr)->release(id_);
    size_ = 0;
}

class recv_stream::next_operation {
public:
    explicit next_operation(detail::recv_state* s) noexcept : state_(s) {}

    bool await_ready() const noexcept { return state_->has_news(); }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> awaiting) noexcept {
        const std::stop_token* token = detail::stop_token_of(awaiting);
        if (detail::stop_requested(token)) {
            cancelled_ = true;
            return false;
        }
        state_->waiter = awaiting;
        state_->arm();
        stop_.bind(token, canceller{state_});
        return true;
    }

    result<received> await_resume() noexcept {
        stop_.unbind();
        detail::recv_state& s = *state_;
        s.waiter = {};
        if (cancelled_ || std::exchange(s.cancel_wait, false)) {
            s.arm(); // reading goes on for the next call
            return errno_error(ECANCELED);
        }
        if (s.head != detail::recv_state::none) {
            std::uint16_t id = s.dequeue();
            return received(&s, s.pool->buffer(id), s.pool->slots[id].length, id);
        }
        if (s.error != 0) return errno_error(s.error);
        if (s.eof) return received(); // end of stream
        return errno_error(ENOBUFS);  // every buffer this reader may hold is in a view
    }

private:
    struct canceller {
        detail::recv_state* s;
        void operator()() const noexcept { s->cancel_waiter(); }
    };
    detail::recv_state* state_;
    bool cancelled_ = false;               // stop was requested before the wait began
    detail::stop_binding<canceller> stop_; // bound while waiting
};

inline recv_stream::recv_stream(buffer_ring& pool, borrowed_fd socket, unsigned per_reader)
    : state_(new detail::recv_state(pool.core(), socket.get(),
                                    per_reader != 0 ? per_reader : pool.per_reader())) {
    state_->arm();
}

inline recv_stream::~recv_stream() {
    if (state_ == nullptr) return;
    detail::recv_state* s = std::exchange(state_, nullptr);
    s->orphaned = true;
    s->drop_queue();
    s->leave_starved();
    if (s->armed) s->pool->ctx->cancel(s);
    s->free_if_done();
}

inline recv_stream::next_operation recv_stream::next() noexcept {
    return next_operation(state_);
}

} // namespace ringd
