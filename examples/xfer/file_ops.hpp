// xfer/file_ops.hpp — file operations on the ring that ringd/ops.hpp does not have yet.
// TO BE REPLACED: fsync_operation belongs in ringd/ops.hpp (proposed in the issue-5 report).
#pragma once

#include <ringd/detail/operation.hpp>
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/result.hpp>

#include <liburing.h>

namespace xfer {

// Flushes a file's data and metadata to stable storage (IORING_OP_FSYNC), without blocking the
// loop the way fsync(2) would. Errors: fsync's (EIO, ENOSPC, EDQUOT) or operation_canceled.
class fsync_operation : public ringd::detail::basic_operation<fsync_operation> {
public:
    fsync_operation(ringd::io_context& ctx, ringd::borrowed_fd fd) noexcept
        : basic_operation(ctx), fd_(fd.get()) {}
    void prepare(io_uring_sqe* sqe) noexcept { io_uring_prep_fsync(sqe, fd_, 0); }
    ringd::result<void> make_result(int res) noexcept {
        if (res < 0) return ringd::errno_error(-res);
        return {};
    }

private:
    int fd_;
};

inline fsync_operation async_fsync(ringd::io_context& ctx, ringd::borrowed_fd fd) noexcept {
    return {ctx, fd};
}

} // namespace xfer
