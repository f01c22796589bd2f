// SPDX-License-Identifier: MIT
// ringd/detail/accept_stream_impl.hpp — the machinery behind accept_stream (net.hpp).
// One multishot accept SQE feeds a bounded buffer; a waiting consumer gets each connection
// directly. Descriptor exhaustion pauses accepting behind a doubling timer: never a busy loop.
// stop_accepting() ends with a sweep of the backlog (see sweep_op): the kernel wakes one accept
// per connection, and a cancelled one must not leave a connection nobody is woken for.
#pragma once

#include <ringd/detail/io_op.hpp>
#include <ringd/detail/stop_binding.hpp>
#include <ringd/detail/timeout_op.hpp>
#include <ringd/io_context.hpp>
#include <ringd/net.hpp>

#include <poll.h>

#include <memory>
#include <optional>

namespace ringd {

namespace detail {
// An accept that fails with EAGAIN instead of waiting for a connection (Linux 6.10; in the
// SQE's ioprio). liburing 2.3 does not name it yet.
#ifdef IORING_ACCEPT_DONTWAIT
inline constexpr std::uint16_t accept_dontwait = IORING_ACCEPT_DONTWAIT;
#else
inline constexpr std::uint16_t accept_dontwait = 1U << 1;
#endif
} // namespace detail

struct accept_stream::state {
    // The multishot (or single-shot) accept SQE.
    struct accept_op : detail::ring_op<accept_op> {
        explicit accept_op(state* s) noexcept : owner(s) {}
        void prepare(io_uring_sqe* sqe) noexcept { owner->prepare_accept(sqe); }
        void complete(int res, std::uint32_t flags) noexcept { on_accept(owner, res, flags); }
        state* owner;
    };
    // The back-off pause after descriptor exhaustion.
    struct timer_op : detail::timeout_op<timer_op> {
        explicit timer_op(state* s) noexcept : owner(s) {}
        void complete(int, std::uint32_t) noexcept { on_timer(owner); }
        state* owner;
    };
    // The sweep after stop_accepting(). The kernel wakes only one of the accepts waiting on a
    // socket per connection (exclusive wake-ups), and ours may be the one woken just before its
    // cancellation: the connection then stays in the backlog while the successor's accept,
    // never woken, sleeps until the next connection comes. So once our accept has ended, we
    // take what is left in the backlog ourselves, without waiting: IORING_ACCEPT_DONTWAIT
    // (Linux 6.10), else an accept cancelled in the same submission. It ends when the backlog
    // is empty; from then on no accept of ours is left to swallow a wake-up.
    struct sweep_op : detail::ring_op<sweep_op> {
        explicit sweep_op(state* s) noexcept : owner(s) {}
        void prepare(io_uring_sqe* sqe) noexcept { owner->prepare_sweep(sqe); }
        void complete(int res, std::uint32_t) noexcept { on_sweep(owner, res); }
        state* owner;
    };

    state(io_context& c, int fd, accept_stream_options o)
        : ctx(&c), listen_fd(fd), options(o), ring(new int[o.buffer == 0 ? 1 : o.buffer]),
          capacity(o.buffer == 0 ? 1 : o.buffer) {
        stats.multishot = options.multishot;
    }
    ~state() {
        while (count != 0) ::close(pop());
    }

    void arm() noexcept {
        if (accept_armed || timer_armed || paused || ending || orphaned || ctx->stopping()) return;
        accept_armed = true;
        ctx->submit(&accept);
    }

    void push(int fd) noexcept {
        ring[(head + count) % capacity] = fd;
        if (++count == capacity) pause();
    }
    int pop() noexcept {
        int fd = ring[head];
        head = (head + 1) % capacity;
        --count;
        return fd;
    }
    // Stop taking connections from the kernel; they wait in the listen backlog meanwhile.
    void pause() noexcept {
        paused = true;
        if (accept_armed) ctx->cancel(&accept);
    }
    void unpause_if_room() noexcept {
        if (paused && count <= capacity / 2) {
            paused = false;
            arm();
        }
    }

    void deliver(int fd_or_error) noexcept; // to the waiting consumer, or into the buffer
    void back_off() noexcept {
        backoff =
            backoff.count() == 0 ? options.min_backoff : std::min(2 * backoff, options.max_backoff);
        timer.spec = detail::timeout_spec::after(backoff);
        timer_armed = true;
        ++stats.backoffs;
        ctx->submit(&timer);
    }
    // Frees the state once the stream is gone and the kernel holds no reference to it.
    static void release_if_done(state* s) noexcept {
        if (s->orphaned && !s->accept_armed && !s->timer_armed && !s->sweep_armed &&
            s->callbacks_running == 0)
            delete s;
    }

    // After stop_accepting(), once the kernel holds no accept or timer of ours: the sweep.
    void sweep_when_idle() noexcept {
        if (!ending || swept || accept_armed || timer_armed || sweep_armed || orphaned) return;
        if (ctx->stopping()) {
            swept = true; // the loop is going: nothing more is handed out
            if (count == 0) cancel_waiter();
            return;
        }
        sweep_armed = true;
        ctx->submit(&sweep);
        if (!sweep_dontwait) ctx->cancel(&sweep); // it still accepts what is there now
    }
    [[nodiscard]] bool backlog_has_connections() const noexcept {
        pollfd p{listen_fd, POLLIN, 0};
        return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
    }

    void prepare_accept(io_uring_sqe* sqe) const noexcept {
        if (options.multishot)
            io_uring_prep_multishot_accept(sqe, listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        else
            io_uring_prep_accept(sqe, listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    }
    void prepare_sweep(io_uring_sqe* sqe) const noexcept {
        io_uring_prep_accept(sqe, listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (sweep_dontwait) sqe->ioprio |= detail::accept_dontwait;
    }
    // Completions. Static, taking the state: each may free it (release_if_done).
    static void on_accept(state* s, int res, std::uint32_t flags) noexcept;
    static void on_sweep(state* s, int res) noexcept;
    static void on_timer(state* s) noexcept {
        s->timer_armed = false;
        if (s->orphaned) return release_if_done(s);
        s->arm();
        s->sweep_when_idle();
    }

    // stop_accepting() was called, the kernel holds no accept of ours any more and the sweep
    // has emptied the backlog.
    [[nodiscard]] bool ended() const noexcept { return ending && !accept_armed && swept; }

    // The consumer's stop request: ends its wait with operation_canceled, from the loop.
    void cancel_waiter() noexcept;
    struct stop_canceller {
        state* s;
        void operator()() const noexcept { s->cancel_waiter(); }
    };

    io_context* ctx;
    int listen_fd;
    accept_stream_options options;
    accept_stream_stats stats;
    std::unique_ptr<int[]> ring; // accepted descriptors not yet taken (a circular buffer)
    std::size_t capacity;
    std::size_t head = 0;
    std::size_t count = 0;
    int pending_error = 0;                           // a listener error for the next next()
    accept_stream::next_operation* waiter = nullptr; // the consumer suspended in next()
    std::chrono::milliseconds backoff{0};         // the current pause; 0 after a successful accept
    bool accept_armed = false;                    // the accept SQE is in the ring
    bool timer_armed = false;                     // the back-off timer is in the ring
    bool paused = false;                          // buffer full or consumer cancelled: do not arm
    bool orphaned = false;                        // the accept_stream object is gone
    bool ending = false;                          // stop_accepting(): never arm again
    bool tried_multishot = false;                 // a multishot accept has succeeded at least once
    bool sweep_armed = false;                     // the sweep's accept is in the ring
    bool swept = false;                           // the sweep found the backlog empty
    bool sweep_dontwait = options.sweep_dontwait; // until the kernel refuses it
    int sweep_retries = 0;     // cancelled sweeps that found the backlog not empty
    int callbacks_running = 0; // >0 while a completion resumes the consumer
    accept_op accept{this};
    timer_op timer{this};
    sweep_op sweep{this};
    // The stop token of the coroutine awaiting next(), kept while later next() calls come with
    // the same token (a consumer loop): a steady consumer registers once, not per connection.
    detail::stop_binding<stop_canceller> stop;
};

class accept_stream::next_operation {
public:
    explicit next_operation(state* s) noexcept : state_(s) {}

    bool await_ready() noexcept {
        return state_->count != 0 || state_->pending_error != 0 || state_->ended();
    }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> awaiting) noexcept {
        const std::stop_token* token = detail::stop_token_of(awaiting);
        if (detail::stop_requested(token)) {
            result_.emplace(errno_error(ECANCELED));
            return false;
        }
        waiting_ = awaiting;
        state_->waiter = this;
        state_->paused = false; // a consumer is back: accept again
        state_->arm();
        state_->stop.rebind(token, state::stop_canceller{state_});
        return true;
    }

    result<unique_fd> await_resume() noexcept {
        if (result_) return std::move(*result_);
        if (state_->count != 0) {
            int fd = state_->pop();
            state_->unpause_if_room();
            return unique_fd(fd);
        }
        if (state_->pending_error == 0 && state_->ended()) return errno_error(ECANCELED);
        return errno_error(std::exchange(state_->pending_error, 0));
    }

private:
    friend struct accept_stream::state;

    // Completes a wait cancelled by a stop request from the loop, not inside request_stop().
    struct wake_op : detail::ring_op<wake_op> {
        static constexpr bool completed_by_loop_only = true; // never submitted
        explicit wake_op(next_operation* o) noexcept : owner(o) {}
        void complete(int, std::uint32_t) noexcept { owner->waiting_.resume(); }
        next_operation* owner;
    };

    void complete(result<unique_fd> r) noexcept {
        result_.emplace(std::move(r));
        waiting_.resume();
    }

    state* state_;
    std::coroutine_handle<> waiting_;
    std::optional<result<unique_fd>> result_; // set when handed over directly
    wake_op wake_{this};                      // for completing a cancelled wait from the loop
};

// On stop: stop accepting and complete the waiting next() with operation_canceled.
inline void accept_stream::state::cancel_waiter() noexcept {
    next_operation* w = std::exchange(waiter, nullptr);
    if (w == nullptr) return;
    pause();
    w->result_.emplace(errno_error(ECANCELED));
    ctx->complete_later(&w->wake_, 0);
}

inline void accept_stream::state::deliver(int fd_or_error) noexcept {
    if (next_operation* w = std::exchange(waiter, nullptr)) {
        ++callbacks_running;
        if (fd_or_error >= 0)
            w->complete(unique_fd(fd_or_error));
        else
            w->complete(errno_error(-fd_or_error));
        --callbacks_running;
        return;
    }
    if (fd_or_error >= 0)
        push(fd_or_error);
    else
        pending_error = -fd_or_error;
}

inline void accept_stream::state::on_accept(state* s, int res, std::uint32_t flags) noexcept {
    if (accept_op::ends_multishot(flags)) s->accept_armed = false;
    if (s->orphaned) {
        if (res >= 0) ::close(res);
        return release_if_done(s);
    }
    ++s->callbacks_running;
    if (res >= 0) {
        ++s->stats.accepted;
        s->tried_multishot = s->options.multishot;
        s->backoff = std::chrono::milliseconds(0);
        s->deliver(res);
    } else {
        switch (-res) {
        case ECANCELED:
            // We paused, or the loop is stopping: then the consumer hears of it.
            if (s->ctx->stopping()) s->deliver(res);
            break;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            // Out of descriptors or memory: the connection stays in the backlog. Retrying now
            // would fail again at once, so wait, doubling the pause while it lasts.
            ++s->stats.descriptor_errors;
            if (s->accept_armed) s->ctx->cancel(&s->accept);
            if (!s->timer_armed) s->back_off();
            break;
        case EINVAL:
            if (s->options.multishot && !s->tried_multishot) {
                // This kernel has no multishot accept (before 5.19): one SQE per connection.
                s->options.multishot = false;
                s->stats.multishot = false;
                break;
            }
            s->deliver(res);
            break;
        case ECONNABORTED: // the peer gave up before we accepted: nothing to hand over
        case EPROTO:
        case EPERM: // refused by a firewall rule
        case EINTR:
        case EAGAIN:
        case ENETDOWN:
        case EHOSTUNREACH:
        case ENETUNREACH:
            break;
        default:
            s->deliver(res); // EBADF, ENOTSOCK...: the listener itself is broken
            break;
        }
    }
    --s->callbacks_running;
    if (s->orphaned) return release_if_done(s);
    if (!s->accept_armed && s->pending_error == 0) {
        if (s->options.multishot && res != -ECANCELED) ++s->stats.rearmed;
        s->arm();
    }
    s->sweep_when_idle(); // after stop_accepting(): our accept has ended
}

inline void accept_stream::state::on_sweep(state* s, int res) noexcept {
    s->sweep_armed = false;
    if (s->orphaned) {
        if (res >= 0) ::close(res);
        return release_if_done(s);
    }
    ++s->callbacks_running;
    if (res >= 0) {
        ++s->stats.accepted;
        ++s->stats.swept;
        s->deliver(res);
    } else if (res == -EINVAL && s->sweep_dontwait) {
        s->sweep_dontwait = false; // before Linux 6.10: cancel a plain accept instead
    } else if (res == -ECANCELED && !s->sweep_dontwait && s->sweep_retries < 64 &&
               s->backlog_has_connections()) {
        ++s->sweep_retries; // cancelled before it got one: look again
    } else {
        s->swept = true; // EAGAIN: the backlog is empty; any other error: leave it to others
    }
    // stop_accepting() has taken effect and every connection accepted before was handed out:
    // a waiting consumer hears that the stream has ended.
    if (s->ended() && s->count == 0 && s->waiter != nullptr) s->deliver(-ECANCELED);
    --s->callbacks_running;
    if (s->orphaned) return release_if_done(s);
    s->sweep_when_idle();
}

inline accept_stream::accept_stream(io_context& ctx, const listener& l, accept_stream_options o)
    : state_(new state(ctx, l.fd().get(), o)) {
    state_->arm();
}

inline accept_stream::accept_stream(accept_stream&& other) noexcept
    : state_(std::exchange(other.state_, nullptr)) {}

inline accept_stream::~accept_stream() {
    if (state_ == nullptr) return;
    state_->orphaned = true;
    state_->stop.unbind();
    while (state_->count != 0) ::close(state_->pop());
    if (state_->accept_armed) state_->ctx->cancel(&state_->accept);
    if (state_->timer_armed) state_->ctx->cancel(&state_->timer);
    if (state_->sweep_armed) state_->ctx->cancel(&state_->sweep);
    state::release_if_done(state_);
}

inline void accept_stream::stop_accepting() noexcept {
    if (state_ == nullptr || state_->ending) return;
    state_->ending = true;
    if (state_->accept_armed) state_->ctx->cancel(&state_->accept);
    if (state_->timer_armed) state_->ctx->cancel(&state_->timer);
    state_->sweep_when_idle(); // at once if nothing of ours is in the ring
}

inline accept_stream::next_operation accept_stream::next() noexcept {
    return next_operation(state_);
}

inline const accept_stream_stats& accept_stream::stats() const noexcept {
    return state_->stats;
}

} // namespace ringd
