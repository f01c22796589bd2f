// SPDX-License-Identifier: MIT
// ringd/ops.hpp — the awaitable ring operations: accept, connect, recv, send, read, write, fsync,
// close, poll and cancel. Each is an X_operation that holds its own state (no allocation), takes
// its SQE when awaited, and resumes with result<T>; a stop request ends it with operation_canceled.
#pragma once

#include <ringd/detail/operation.hpp>
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/result.hpp>
#include <ringd/task.hpp>

#include <liburing.h>
#include <sys/socket.h>

#include <cstddef>
#include <span>

namespace ringd {

// Accepts one connection. The new descriptor is close-on-exec. Errors are accept4(2)'s
// (EMFILE/ENFILE when out of descriptors, ECONNABORTED, ...) or operation_canceled.
class accept_operation : public detail::basic_operation<accept_operation> {
public:
    accept_operation(io_context& ctx, borrowed_fd listener) noexcept
        : basic_operation(ctx), listener_(listener.get()) {}
    void prepare(io_uring_sqe* sqe) noexcept {
        io_uring_prep_accept(sqe, listener_, nullptr, nullptr, SOCK_CLOEXEC);
    }
    result<unique_fd> make_result(int res) noexcept {
        if (res < 0) return errno_error(-res);
        return unique_fd(res);
    }

private:
    int listener_;
};

// Connects a socket to `addr` (which must stay valid until the operation completes).
class connect_operation : public detail::basic_operation<connect_operation> {
public:
    static constexpr bool bounded = true; // see io_op::duration
    connect_operation(io_context& ctx, borrowed_fd socket, const sockaddr* addr,
                      socklen_t len) noexcept
        : basic_operation(ctx), fd_(socket.get()), addr_(addr), len_(len) {}
    void prepare(io_uring_sqe* sqe) noexcept { io_uring_prep_connect(sqe, fd_, addr_, len_); }
    result<void> make_result(int res) noexcept {
        if (res < 0) return errno_error(-res);
        return {};
    }

private:
    int fd_;
    const sockaddr* addr_;
    socklen_t len_;
};

// The shape shared by recv, send, read and write: a descriptor, a buffer, a byte count result.
namespace detail {
template <class Derived, class Buffer>
class transfer_operation : public basic_operation<Derived> {
public:
    transfer_operation(io_context& ctx, borrowed_fd fd, Buffer buffer) noexcept
        : basic_operation<Derived>(ctx), fd_(fd.get()), buffer_(buffer) {}
    result<std::size_t> make_result(int res) noexcept {
        if (res < 0) return errno_error(-res);
        return static_cast<std::size_t>(res);
    }

protected:
    int fd_;
    Buffer buffer_;
};
} // namespace detail

// Receives up to buffer.size() bytes; 0 means the peer closed its end.
class recv_operation : public detail::transfer_operation<recv_operation, std::span<std::byte>> {
public:
    recv_operation(io_context& ctx, borrowed_fd fd, std::span<std::byte> buffer,
                   int flags = 0) noexcept
        : transfer_operation(ctx, fd, buffer), flags_(flags) {}
    void prepare(io_uring_sqe* sqe) noexcept {
        io_uring_prep_recv(sqe, fd_, buffer_.data(), buffer_.size(), flags_);
    }

private:
    int flags_;
};

// Sends up to buffer.size() bytes (MSG_NOSIGNAL: a closed peer is EPIPE, never SIGPIPE).
class send_operation
    : public detail::transfer_operation<send_operation, std::span<const std::byte>> {
public:
    static constexpr bool bounded = true; // see io_op::duration
    send_operation(io_context& ctx, borrowed_fd fd, std::span<const std::byte> buffer,
                   int flags = 0) noexcept
        : transfer_operation(ctx, fd, buffer), flags_(flags | MSG_NOSIGNAL) {}
    void prepare(io_uring_sqe* sqe) noexcept {
        io_uring_prep_send(sqe, fd_, buffer_.data(), buffer_.size(), flags_);
    }

private:
    int flags_;
};

// Reads at `offset` (-1: the file position, as read(2)).
class read_operation : public detail::transfer_operation<read_operation, std::span<std::byte>> {
public:
    read_operation(io_context& ctx, borrowed_fd fd, std::span<std::byte> buffer,
                   std::uint64_t offset = static_cast<std::uint64_t>(-1)) noexcept
        : transfer_operation(ctx, fd, buffer), offset_(offset) {}
    void prepare(io_uring_sqe* sqe) noexcept {
        io_uring_prep_read(sqe, fd_, buffer_.data(), static_cast<unsigned>(buffer_.size()),
                           offset_);
    }

private:
    std::uint64_t offset_;
};

// Writes at `offset` (-1: the file position, as write(2)).
class write_operation
    : public detail::transfer_operation<write_operation, std::span<const std::byte>> {
public:
    static constexpr bool bounded = true; // see io_op::duration
    write_operation(io_context& ctx, borrowed_fd fd, std::span<const std::byte> buffer,
                    std::uint64_t offset = static_cast<std::uint64_t>(-1)) noexcept
        : transfer_operation(ctx, fd, buffer), offset_(offset) {}
    void prepare(io_uring_sqe* sqe) noexcept {
        io_uring_prep_write(sqe, fd_, buffer_.data(), static_cast<unsigned>(buffer_.size()),
                            offset_);
    }

private:
    std::uint64_t offset_;
};

// Flushes a file to stable storage (IORING_OP_FSYNC) without blocking the loop as fsync(2)
// would: data and metadata, or with `data_only` what fdatasync(2) flushes (data, and metadata
// only where needed to read it back). Syncing a directory makes new entries in it durable.
// Errors are fsync(2)'s (EIO, ENOSPC, EDQUOT, EBADF, EINVAL) or operation_canceled.
class fsync_operation : public detail::basic_operation<fsync_operation> {
public:
    static constexpr bool bounded = true; // see io_op::duration
    fsync_operation(io_context& ctx, borrowed_fd fd, bool data_only = false) noexcept
        : basic_operation(ctx), fd_(fd.get()), data_only_(data_only) {}
    void prepare(io_uring_sqe* sqe) noexcept {
        io_uring_prep_fsync(sqe, fd_, data_only_ ? IORING_FSYNC_DATASYNC : 0);
    }
    result<void> make_result(int res) noexcept {
        if (res < 0) return errno_error(-res);
        return {};
    }

private:
    int fd_;
    bool data_only_;
};

// Closes the descriptor on the ring. Takes ownership at once: even if the op is cancelled
// before it reaches the kernel, the descriptor is closed (synchronously) and never leaks.
class close_operation : public detail::basic_operation<close_operation> {
public:
    static constexpr bool bounded = true; // see io_op::duration
    close_operation(io_context& ctx, unique_fd fd) noexcept
        : basic_operation(ctx), fd_(std::move(fd)) {}
    void prepare(io_uring_sqe* sqe) noexcept { io_uring_prep_close(sqe, fd_.release()); }
    result<void> make_result(int res) noexcept {
        if (res == -ECANCELED && fd_.valid()) fd_.reset(); // never reached the kernel
        if (res < 0) return errno_error(-res);
        return {};
    }

private:
    unique_fd fd_;
};

// Waits until the descriptor is ready for `events` (POLLIN, POLLOUT, ...); returns revents.
class poll_operation : public detail::basic_operation<poll_operation> {
public:
    poll_operation(io_context& ctx, borrowed_fd fd, unsigned events) noexcept
        : basic_operation(ctx), fd_(fd.get()), events_(events) {}
    void prepare(io_uring_sqe* sqe) noexcept { io_uring_prep_poll_add(sqe, fd_, events_); }
    result<unsigned> make_result(int res) noexcept {
        if (res < 0) return errno_error(-res);
        return static_cast<unsigned>(res);
    }

private:
    int fd_;
    unsigned events_;
};

// Cancels every operation in flight on `fd` (IORING_ASYNC_CANCEL_FD|ALL, Linux 5.19); returns
// how many were found. EINVAL on older kernels: there, cancel through stop tokens instead.
class cancel_fd_operation : public detail::basic_operation<cancel_fd_operation> {
public:
    static constexpr bool bounded = true; // see io_op::duration
    cancel_fd_operation(io_context& ctx, borrowed_fd fd) noexcept
        : basic_operation(ctx), fd_(fd.get()) {}
    void prepare(io_uring_sqe* sqe) noexcept {
        io_uring_prep_cancel_fd(sqe, fd_, IORING_ASYNC_CANCEL_ALL);
    }
    result<unsigned> make_result(int res) noexcept {
        if (res == -ENOENT) return 0u;
        if (res < 0) return errno_error(-res);
        return static_cast<unsigned>(res);
    }

private:
    int fd_;
};

// Free-function spellings, so call sites read as verbs: co_await async_recv(ctx, fd, buf).
inline accept_operation async_accept(io_context& ctx, borrowed_fd listener) noexcept {
    return {ctx, listener};
}
inline connect_operation async_connect(io_context& ctx, borrowed_fd socket, const sockaddr* addr,
                                       socklen_t len) noexcept {
    return {ctx, socket, addr, len};
}
inline recv_operation async_recv(io_context& ctx, borrowed_fd fd, std::span<std::byte> buffer,
                                 int flags = 0) noexcept {
    return {ctx, fd, buffer, flags};
}
inline send_operation async_send(io_context& ctx, borrowed_fd fd, std::span<const std::byte> buffer,
                                 int flags = 0) noexcept {
    return {ctx, fd, buffer, flags};
}
inline read_operation async_read(io_context& ctx, borrowed_fd fd, std::span<std::byte> buffer,
                                 std::uint64_t offset = static_cast<std::uint64_t>(-1)) noexcept {
    return {ctx, fd, buffer, offset};
}
inline write_operation async_write(io_context& ctx, borrowed_fd fd,
                                   std::span<const std::byte> buffer,
                                   std::uint64_t offset = static_cast<std::uint64_t>(-1)) noexcept {
    return {ctx, fd, buffer, offset};
}
inline fsync_operation async_fsync(io_context& ctx, borrowed_fd fd) noexcept {
    return {ctx, fd};
}
inline fsync_operation async_fdatasync(io_context& ctx, borrowed_fd fd) noexcept {
    return {ctx, fd, true};
}
inline close_operation async_close(io_context& ctx, unique_fd fd) noexcept {
    return {ctx, std::move(fd)};
}
// Sends every byte of `bytes`, as many sends as it takes (a send may take only part). Fails
// with the first send's error (EPIPE, ECONNRESET, ..., or operation_canceled), after which an
// unknown prefix has been sent. One coroutine frame, from the recycling allocator.
inline task<result<void>> async_send_all(io_context& ctx, borrowed_fd fd,
                                         std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
        auto sent = co_await async_send(ctx, fd, bytes);
        if (!sent) co_return error_of(sent);
        bytes = bytes.subspan(*sent);
    }
    co_return result<void>{};
}
// Closes without waiting and without an outcome, like unique_fd's destructor but on the ring:
// no system call and no completion of its own (io_context::close_detached says when it falls
// back to close(2)). For descriptors whose close error would change nothing, e.g. a socket that
// is done with; await async_close() where the error matters.
inline void close_detached(io_context& ctx, unique_fd fd) noexcept {
    ctx.close_detached(std::move(fd));
}
inline poll_operation async_poll(io_context& ctx, borrowed_fd fd, unsigned events) noexcept {
    return {ctx, fd, events};
}
inline cancel_fd_operation async_cancel(io_context& ctx, borrowed_fd fd) noexcept {
    return {ctx, fd};
}

} // namespace ringd
