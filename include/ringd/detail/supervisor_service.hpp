// SPDX-License-Identifier: MIT
// ringd/detail/supervisor_service.hpp — the supervisor's private state per service: its spec and
// machine, its process, the events its completions leave for run(), its readiness channels and
// held sockets, its log files; and the ring operations whose memory must outlive their
// completions (a service's timer, exit watch, readiness read and output pipes; the supervisor's
// orphan watch and table-flush deadline). supervisor_state.hpp includes this file after the
// state, and this file the bodies, so that each of them sees these types complete.
#pragma once

#include <ringd/detail/supervisor_state.hpp>

#include <ringd/detail/io_op.hpp>
#include <ringd/detail/process_wait.hpp>
#include <ringd/detail/timeout_op.hpp>
#include <ringd/fd.hpp>
#include <ringd/net.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ringd {

// The per-service timer: IORING_OP_TIMEOUT at an absolute steady-clock deadline.
struct supervisor::impl::timer_op : detail::timeout_op<timer_op> {
    explicit timer_op(service* s) noexcept;
    void complete(int res, std::uint32_t flags) noexcept;
    service* svc;
    supervision::time_point submitted{};           // the deadline in flight
    std::optional<supervision::time_point> wanted; // the deadline the machine asked for
    bool in_flight = false;
};
// The wait for the end of the service's process (WNOWAIT: we kill leftovers, then reap).
struct supervisor::impl::exit_watch : detail::process_exit_watch<supervisor::impl::exit_watch> {
    explicit exit_watch(service* s) noexcept : svc(s) {}
    void on_process_end(int error, const siginfo_t& info) noexcept;
    service* svc;
};
// Readiness input: recvmsg on the notify socket, or read on the notification pipe.
struct supervisor::impl::ready_op : detail::ring_op<ready_op> {
    explicit ready_op(service* s) noexcept;
    void prepare(io_uring_sqe* sqe) noexcept;
    void complete(int res, std::uint32_t flags) noexcept;
    service* svc;
    // Allocated for the first read: most services have no readiness protocol, and every
    // byte of a service is copied into the page tables of each spawn's clone.
    static constexpr std::size_t buffer_size = 4096;
    std::unique_ptr<char[]> buffer;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{};
    msghdr message{};
    bool in_flight = false;
    bool from_socket = false; // recvmsg on notify_socket, else read on ready_pipe
};
// prefix_output: the read end of a service's stdout or stderr pipe, read on the ring.
struct supervisor::impl::output_op : detail::ring_op<output_op> {
    output_op(service* s, int target) noexcept;
    void prepare(io_uring_sqe* sqe) noexcept;
    void complete(int res, std::uint32_t flags) noexcept;
    service* svc;
    int target;                     // where its lines go: STDOUT_FILENO or STDERR_FILENO
    unique_fd read_end;             // ours
    unique_fd write_end;            // the copy each of the service's processes gets
    std::unique_ptr<char[]> buffer; // allocated at the first spawn
    static constexpr std::size_t buffer_size = 4096;
    std::string partial; // the start of a line whose newline has not come yet
    bool in_flight = false;
};
// The SIGCHLD signalfd of orphan reaping, polled on the ring.
struct supervisor::impl::orphan_op : detail::ring_op<orphan_op> {
    explicit orphan_op(impl* s) noexcept;
    void prepare(io_uring_sqe* sqe) noexcept;
    void complete(int res, std::uint32_t flags) noexcept;
    impl* owner;
    bool in_flight = false;
};
// The deadline of a coalesced write of the table files (IORING_OP_TIMEOUT, absolute).
struct supervisor::impl::flush_op : detail::timeout_op<flush_op> {
    explicit flush_op(impl* s) noexcept;
    void complete(int res, std::uint32_t flags) noexcept;
    impl* owner;
    bool in_flight = false;
};

struct supervisor::impl::service {
    service(impl* s, service_spec sp);
    impl* owner; // nullptr once the supervisor is gone
    service_spec spec;
    supervision::service_machine machine;
    process proc;                    // the current process, while machine.has_process()
    std::optional<process> adopting; // add(): the process that the next spawn adopts
    bool adopted = false;            // proc came from an earlier supervisor
    bool wanted_up = true;
    bool pending_start = false; // waits for its turn in the start order
    bool stop_sent = false;     // shutdown asked it to stop
    bool removing = false;      // remove(): forget once down
    // Events that completions left for run() to feed.
    bool exit_due = false;
    int exit_error = 0;
    exit_info exit;
    bool timer_due = false;
    bool ready_due = false;
    bool in_due_list = false;
    service* next_due = nullptr;
    // Readiness channels.
    unique_fd notify_socket;          // sd_notify datagrams (for the service's lifetime)
    std::string notify_address;       // "@ringd-supervise/<pid>/<name>"
    std::optional<uid_t> service_uid; // the service's user, trusted on the notify socket
    unique_fd ready_pipe;             // notification fd: our read end, per process
    unique_fd next_ready_pipe;        // a new pipe waiting for the old read to end
    std::vector<listener> listeners;  // spec.listen, bound at the first start, kept
    // For messages and status.
    std::string log_path;                     // current (or last) process's log file
    std::vector<std::string> old_logs;        // earlier processes' logs, oldest first
    std::vector<std::uint64_t> old_log_sizes; // their sizes (bytes), by index
    std::string spawn_error;                  // the last spawn failure, in words
    std::string status_text;                  // sd_notify STATUS=
    std::optional<exit_info> last_exit;       // the last process's end
    supervision::time_point since{};          // when it entered its current state
    pid_t last_pid = 0;                       // the last process, for messages after its exit
    // Ring operations (their memory must outlive their completions).
    timer_op timer{this};
    exit_watch watch{this};
    ready_op ready{this};
    output_op out{this, STDOUT_FILENO}; // prefix_output only
    output_op err{this, STDERR_FILENO};
};

} // namespace ringd

// The bodies, by concept.
#include <ringd/detail/supervisor_actions.hpp>
#include <ringd/detail/supervisor_files.hpp>
#include <ringd/detail/supervisor_loop.hpp>
#include <ringd/detail/supervisor_operator.hpp>
#include <ringd/detail/supervisor_ring.hpp>
