// SPDX-License-Identifier: MIT
// echo_raw_uring — the echo benchmark's io_uring reference: plain liburing 2.3, no framework, as
// fast as an echo loop can be made without a buffer per connection. ringd's echo_ringd is
// measured against this.
//
// What it does:
// - one multishot accept per listener; accepted sockets inherit TCP_NODELAY from the listener;
// - one multishot recv per connection (IORING_RECV_MULTISHOT) that takes its buffers from a ring
//   of provided buffers registered by hand (liburing 2.3 has no io_uring_setup_buf_ring): an idle
//   connection holds no buffer, only the kernel's request and 6 bytes of this program's table;
// - every received buffer is sent back as it is, with MSG_WAITALL (the kernel finishes a short
//   send itself), and returned to the buffer ring once that send has completed;
// - at most one send in flight per connection: buffers received meanwhile queue behind it in
//   arrival order (a list threaded through the buffers' own metadata), so the byte stream is never
//   reordered even when a send has to wait for the peer's window;
// - ENOBUFS (all buffers in flight) ends a multishot recv: the connection waits in a FIFO and is
//   re-armed as buffers come back (at most one re-arm per buffer returned: no busy loop); a
//   multishot that ends for another reason (a CQ overflow) is re-armed at once;
// - SINGLE_ISSUER|DEFER_TASKRUN when the kernel has them, a registered ring fd, CQEs reaped and
//   buffers returned in batches (one buffer-ring tail store per batch), closes on the ring with
//   IOSQE_CQE_SKIP_SUCCESS.
//
// Needs multishot recv and provided-buffer rings (Linux 6.0); exits 2 with a message otherwise.
// Usage: see bench_server_common.hpp.
#include "bench_server_common.hpp"
#include "bench_uring.hpp"

#include <poll.h>
#include <sys/mman.h>

#include <deque>

namespace {

constexpr std::string_view prog = "echo_raw_uring";

// user_data: the tag in the top byte, a buffer id in bits 32..47 (sends), the fd in the low 32.
enum tag : std::uint64_t {
    tag_accept = 1,  // the multishot accept
    tag_recv = 2,    // a connection's multishot recv
    tag_send = 3,    // a send of one received buffer
    tag_stop = 4,    // poll on the stop eventfd
    tag_backoff = 5, // timeout after EMFILE/ENFILE and friends
    tag_close = 6,   // a close: only failures post a CQE, and they are ignored
};
constexpr int tag_shift = 56;
constexpr int bid_shift = 32;

constexpr std::uint64_t user_data(tag t, int fd, unsigned bid = 0) noexcept {
    return (std::uint64_t{t} << tag_shift) | (std::uint64_t{bid} << bid_shift) |
           static_cast<std::uint32_t>(fd);
}
constexpr tag tag_of(std::uint64_t ud) noexcept {
    return static_cast<tag>(ud >> tag_shift);
}
constexpr int fd_of(std::uint64_t ud) noexcept {
    return static_cast<int>(ud & 0xffffffffu);
}
constexpr unsigned bid_of(std::uint64_t ud) noexcept {
    return static_cast<unsigned>((ud >> bid_shift) & 0xffffu);
}

constexpr unsigned sq_entries = 1024;
// Room for a burst of CQEs between two reaps; beyond it the kernel keeps them (NODROP) and
// io_uring_enter answers EBUSY until they are reaped, which the loop does anyway.
constexpr unsigned cq_entries = 8192;
// The provided buffers: 1024 × 4 KiB, faulted in at start (MAP_POPULATE), so they are part of the
// server's base RSS, not of any connection's. One group, id 0.
constexpr unsigned buf_count = 1024; // a power of two, at most 32768
constexpr unsigned buf_size = 4096;
constexpr unsigned short buf_group = 0;
constexpr std::int16_t none = -1; // the end of a send queue

static_assert((buf_count & (buf_count - 1)) == 0 && buf_count <= 32768);

// An anonymous private mapping, unmapped in the destructor.
class mapping {
public:
    explicit mapping(std::size_t bytes, int extra_flags = 0) : bytes_(bytes) {
        ptr_ = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
        if (ptr_ == MAP_FAILED) throw bench::sys_error(errno, "mmap");
    }
    mapping(const mapping&) = delete;
    mapping& operator=(const mapping&) = delete;
    ~mapping() { ::munmap(ptr_, bytes_); }
    [[nodiscard]] void* get() const noexcept { return ptr_; }

private:
    void* ptr_;
    std::size_t bytes_;
};

// Where a connection's multishot recv is.
enum class recv_state : std::uint8_t {
    armed,   // in flight
    starved, // ended by ENOBUFS; waits in the starved FIFO for buffers to come back
    ended,   // ended by EOF or an error: the connection closes once its queue is sent
};

// One connection's state, in a table indexed by fd (6 bytes a connection): the queue of
// received buffers to send back, the first of which is being sent.
struct conn {
    std::int16_t head = none; // buffer being sent, or none
    std::int16_t tail = none; // last buffer queued
    recv_state recv = recv_state::ended;
    bool open = false; // accepted and not yet closed
};

// The echo loop of one thread: everything below runs on that thread only.
class echoer {
public:
    explicit echoer(bench::worker_context& ctx)
        : ctx_(ctx), ring_mem_(buf_count * sizeof(io_uring_buf)),
          pool_(std::size_t{buf_count} * buf_size, MAP_POPULATE) {
        // The buffer ring: page-aligned memory (mmap) shared with the kernel, registered by hand.
        br_ = static_cast<io_uring_buf_ring*>(ring_mem_.get());
        io_uring_buf_ring_init(br_);
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<std::uint64_t>(br_);
        reg.ring_entries = buf_count;
        reg.bgid = buf_group;
        if (int rc = io_uring_register_buf_ring(ring_.get(), &reg, 0); rc < 0)
            throw bench::sys_error(-rc, "io_uring_register_buf_ring (needs Linux 5.19)");
        for (unsigned bid = 0; bid < buf_count; ++bid) give_back(static_cast<std::int16_t>(bid));
        io_uring_buf_ring_advance(br_, static_cast<int>(std::exchange(returned_, 0)));
        close_flags_ = ring_.has_feature(IORING_FEAT_CQE_SKIP) ? IOSQE_CQE_SKIP_SUCCESS : 0;
    }
    echoer(const echoer&) = delete;
    echoer& operator=(const echoer&) = delete;
    ~echoer() {
        for (std::size_t fd = 0; fd < conns_.size(); ++fd)
            if (conns_[fd].open) ::close(static_cast<int>(fd));
    }

    bench::echo_counts run() {
        arm_accept();
        io_uring_sqe* s = ring_.sqe();
        io_uring_prep_poll_add(s, ctx_.stop_fd, POLLIN);
        io_uring_sqe_set_data64(s, user_data(tag_stop, ctx_.stop_fd));
        // Stop at once when asked: the ring's exit cancels whatever is in flight.
        while (!stopping_) {
            ring_.wait_and_reap([this](const io_uring_cqe& cqe) { complete(cqe); });
            if (returned_ > 0) {
                // One tail store for the batch, then the connections that starved get a recv
                // again, at most one per buffer that came back.
                unsigned n = std::exchange(returned_, 0);
                io_uring_buf_ring_advance(br_, static_cast<int>(n));
                for (; n > 0 && !starved_.empty(); --n) {
                    int fd = starved_.front();
                    starved_.pop_front();
                    if (conns_[fd].open && conns_[fd].recv == recv_state::starved) arm_recv(fd);
                }
            }
        }
        return counts_;
    }

private:
    void complete(const io_uring_cqe& cqe) {
        std::uint64_t ud = io_uring_cqe_get_data64(&cqe);
        switch (tag_of(ud)) {
        case tag_recv:
            received(fd_of(ud), cqe);
            break;
        case tag_send:
            sent(fd_of(ud), static_cast<std::int16_t>(bid_of(ud)), cqe.res);
            break;
        case tag_accept:
            if (cqe.res >= 0) accepted(cqe.res);
            if ((cqe.flags & IORING_CQE_F_MORE) == 0) {
                if (cqe.res < 0)
                    accept_failed(-cqe.res);
                else
                    arm_accept(); // the multishot ended (e.g. CQ overflow)
            }
            break;
        case tag_backoff:
            arm_accept();
            break;
        case tag_stop:
            stopping_ = true;
            break;
        case tag_close: // a failed close: the fd is released anyway; never retried
            break;
        }
    }

    void accepted(int fd) {
        if (static_cast<std::size_t>(fd) >= conns_.size())
            conns_.resize(
                std::max<std::size_t>(static_cast<std::size_t>(fd) + 1, conns_.size() * 2));
        conns_[fd] = conn{};
        conns_[fd].open = true;
        arm_recv(fd);
    }

    void received(int fd, const io_uring_cqe& cqe) {
        conn& c = conns_[fd];
        if (cqe.res > 0) {
            auto bid = static_cast<std::int16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
            ++counts_.msgs;
            counts_.bytes += static_cast<unsigned>(cqe.res);
            bufs_[bid] = {static_cast<std::uint32_t>(cqe.res), 0, none};
            if (c.head == none) {
                c.head = c.tail = bid;
                send(fd, bid);
            } else {
                bufs_[c.tail].next = bid;
                c.tail = bid;
            }
        }
        if ((cqe.flags & IORING_CQE_F_MORE) != 0) return;
        if (cqe.res == -ENOBUFS) {
            c.recv = recv_state::starved; // re-armed as buffers come back
            starved_.push_back(fd);
        } else if (cqe.res > 0) {
            arm_recv(fd); // ended by a CQ overflow, not by the connection
        } else {
            c.recv = recv_state::ended;         // EOF or an error
            if (c.head == none) close_conn(fd); // else sent() closes it once the queue is sent
        }
    }

    void sent(int fd, std::int16_t bid, int res) {
        conn& c = conns_[fd];
        buffer& b = bufs_[bid];
        if (res > 0 && static_cast<std::uint32_t>(res) < b.len - b.off) {
            b.off += static_cast<std::uint32_t>(res); // short despite MSG_WAITALL: the rest
            send(fd, bid);
            return;
        }
        if (res <= 0) {
            // The peer is gone: drop what is queued; its recv ends by itself (EOF or reset).
            for (std::int16_t q = c.head; q != none; q = bufs_[q].next) give_back(q);
            c.head = c.tail = none;
            ::shutdown(fd, SHUT_RDWR); // makes sure the recv ends
        } else {
            c.head = b.next;
            give_back(bid);
            if (c.head != none) {
                send(fd, c.head);
                return;
            }
        }
        if (c.recv == recv_state::ended) close_conn(fd);
    }

    void arm_recv(int fd) {
        io_uring_sqe* s = ring_.sqe();
        io_uring_prep_recv_multishot(s, fd, nullptr, 0, 0);
        s->flags |= IOSQE_BUFFER_SELECT;
        s->buf_group = buf_group;
        io_uring_sqe_set_data64(s, user_data(tag_recv, fd));
        conns_[fd].recv = recv_state::armed;
    }

    void send(int fd, std::int16_t bid) {
        const buffer& b = bufs_[bid];
        io_uring_sqe* s = ring_.sqe();
        io_uring_prep_send(s, fd, buf_addr(bid) + b.off, b.len - b.off, MSG_WAITALL | MSG_NOSIGNAL);
        io_uring_sqe_set_data64(s, user_data(tag_send, fd, static_cast<unsigned>(bid)));
    }

    void close_conn(int fd) {
        conns_[fd].open = false;
        io_uring_sqe* s = ring_.sqe();
        io_uring_prep_close(s, fd);
        s->flags |= close_flags_;
        io_uring_sqe_set_data64(s, user_data(tag_close, fd));
    }

    // Puts a buffer back in the ring; visible to the kernel at the next advance.
    void give_back(std::int16_t bid) {
        io_uring_buf_ring_add(br_, buf_addr(bid), buf_size, static_cast<unsigned short>(bid),
                              io_uring_buf_ring_mask(buf_count), static_cast<int>(returned_++));
    }

    char* buf_addr(std::int16_t bid) const noexcept {
        return static_cast<char*>(pool_.get()) + std::size_t(bid) * buf_size;
    }

    void arm_accept() {
        io_uring_sqe* s = ring_.sqe();
        io_uring_prep_multishot_accept(s, ctx_.listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
        io_uring_sqe_set_data64(s, user_data(tag_accept, ctx_.listener.get()));
    }

    void accept_failed(int err) {
        switch (err) {
        case EMFILE: // out of descriptors: wait for closes rather than fail again at once
        case ENFILE:
        case ENOBUFS:
        case ENOMEM: {
            io_uring_sqe* s = ring_.sqe();
            io_uring_prep_timeout(s, &backoff_delay_, 0, 0);
            io_uring_sqe_set_data64(s, user_data(tag_backoff, 0));
            return;
        }
        case ECONNABORTED:
        case EINTR:
        case EAGAIN:
        case ECANCELED:
            arm_accept();
            return;
        default:
            throw bench::sys_error(err, "multishot accept (needs Linux 5.19)");
        }
    }

    // A received buffer: its length, how much of it is sent, the next in its connection's queue.
    struct buffer {
        std::uint32_t len = 0;
        std::uint32_t off = 0;
        std::int16_t next = none;
    };

    bench::worker_context& ctx_; // listener and stop fd
    mapping ring_mem_;           // the io_uring_buf_ring, page-aligned
    mapping pool_;               // buf_count buffers of buf_size
    // After the memory it uses, so that it goes first: nothing in flight outlives the buffers.
    bench::ring ring_{prog, sq_entries, cq_entries}; // this thread's ring
    io_uring_buf_ring* br_ = nullptr;                // in ring_mem_
    unsigned returned_ = 0;                          // buffers added since the last advance
    buffer bufs_[buf_count];                         // per buffer id
    std::vector<conn> conns_;                        // per fd
    std::deque<int> starved_;                        // fds whose recv ended with ENOBUFS
    unsigned close_flags_ = 0;                       // IOSQE_CQE_SKIP_SUCCESS if the kernel has it
    bool stopping_ = false;                          // the stop eventfd became readable
    __kernel_timespec backoff_delay_{.tv_sec = 0, .tv_nsec = 10'000'000};
    bench::echo_counts counts_; // recv completions echoed, bytes
};

} // namespace

int main(int argc, char** argv) {
    return bench::run_server(prog, argc, argv, /*nonblocking_listener=*/false,
                             [](bench::worker_context& ctx) {
                                 auto e = std::make_unique<echoer>(ctx);
                                 return e->run();
                             });
}
