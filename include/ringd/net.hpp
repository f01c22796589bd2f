// SPDX-License-Identifier: MIT
// ringd/net.hpp — addresses, listeners and connections: TCP over IPv4/IPv6 and UNIX sockets.
// Listeners are bound here or adopted from a parent (socket activation); accept_stream turns one
// into an async stream of connections driven by multishot accept.
#pragma once

#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/ops.hpp>
#include <ringd/result.hpp>
#include <ringd/task.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <charconv>
#include <chrono>
#include <cstring>
#include <string>
#include <string_view>

namespace ringd {

// A socket address of any family we listen on, with the text form users write:
//   "HOST:PORT" (IPv4 literal or "localhost"/"*"), "[V6]:PORT", "/path" (UNIX), "@name" (abstract).
class socket_address {
public:
    socket_address() noexcept = default;
    socket_address(const sockaddr* sa, socklen_t len) noexcept {
        len_ = len <= sizeof storage_ ? len : sizeof storage_;
        std::memcpy(&storage_, sa, len_);
    }

    // Parses `text`; the error names the text and what is wrong with it, e.g.
    // "address '1.2.3.4:99999': port '99999' is not a number in 0-65535".
    static expected<socket_address, std::string> parse(std::string_view text);

    // The address a socket is bound to (to learn the port the kernel chose for port 0).
    static result<socket_address> local_of(borrowed_fd socket) noexcept {
        socket_address a;
        a.len_ = sizeof a.storage_;
        if (::getsockname(socket.get(), a.sockaddr_ptr(), &a.len_) != 0) return last_error();
        return a;
    }
    // The address of a connected socket's peer (a UNIX client's is usually unnamed: see
    // peer_credentials). Errors: getpeername's (ENOTCONN: not connected).
    static result<socket_address> peer_of(borrowed_fd socket) noexcept {
        socket_address a;
        a.len_ = sizeof a.storage_;
        if (::getpeername(socket.get(), a.sockaddr_ptr(), &a.len_) != 0) return last_error();
        return a;
    }

    [[nodiscard]] int family() const noexcept { return storage_.ss_family; }
    [[nodiscard]] const sockaddr* sockaddr_ptr() const noexcept {
        return reinterpret_cast<const sockaddr*>(&storage_);
    }
    [[nodiscard]] sockaddr* sockaddr_ptr() noexcept {
        return reinterpret_cast<sockaddr*>(&storage_);
    }
    [[nodiscard]] socklen_t size() const noexcept { return len_; }
    // The port of an IP address (0 for UNIX sockets).
    [[nodiscard]] std::uint16_t port() const noexcept {
        if (family() == AF_INET) return ntohs(as<sockaddr_in>().sin_port);
        if (family() == AF_INET6) return ntohs(as<sockaddr_in6>().sin6_port);
        return 0;
    }
    // The text form that parse() accepts: "127.0.0.1:8080", "[::1]:8080", "/run/x.sock", "@x".
    [[nodiscard]] std::string to_string() const;

private:
    template <class T>
    const T& as() const noexcept {
        return *reinterpret_cast<const T*>(&storage_);
    }

    sockaddr_storage storage_{}; // the address itself
    socklen_t len_ = 0;          // how much of storage_ is used
};

struct listen_options {
    int backlog = SOMAXCONN;   // the kernel caps it at net.core.somaxconn
    bool reuse_address = true; // SO_REUSEADDR: restart while old connections sit in TIME_WAIT
    bool reuse_port = false;   // SO_REUSEPORT: one listener per thread on the same port
    bool v6_only = true;       // IPV6_V6ONLY on "[::]:P": v4 goes to its own listener
    bool replace_stale_unix_socket = true; // unlink a UNIX socket path that nobody listens on
    mode_t unix_mode = 0; // chmod for a UNIX socket path (0: leave the umask's choice)
    // How long bind keeps retrying EADDRINUSE (0: fail at once). A daemon restarted right after
    // kill -9 needs it: the kernel tears the dead process's io_uring down asynchronously, and an
    // accept still pending there keeps the old listener bound (and a UNIX socket answering) for a
    // few milliseconds. bind sleeps in 10 ms steps meanwhile, blocking the calling thread.
    std::chrono::milliseconds retry_address_in_use{0};
};

// A listening socket. Move-only; closes on destruction (a UNIX path it created is unlinked).
class listener {
public:
    // socket + bind + listen. Throws std::system_error naming the step and the address, e.g.
    // "bind 127.0.0.1:80: Permission denied"; EADDRINUSE only once
    // options.retry_address_in_use has passed.
    static listener bind(const socket_address& address, const listen_options& options = {});
    // Takes a socket that is already listening (inherited, or from socket activation).
    // Throws std::system_error ("adopt fd 3: not a listening socket") when it is not one.
    static listener adopt(unique_fd fd);

    listener(listener&&) noexcept = default;
    listener& operator=(listener&&) noexcept = default;
    ~listener() {
        if (fd_ && !unix_path_.empty()) ::unlink(unix_path_.c_str());
    }

    [[nodiscard]] borrowed_fd fd() const noexcept { return fd_; }
    [[nodiscard]] const socket_address& address() const noexcept { return address_; }
    // Gives the descriptor away (e.g. to the systemd fd store); the path is left in place.
    [[nodiscard]] unique_fd release() noexcept {
        unix_path_.clear();
        return std::move(fd_);
    }

private:
    listener(unique_fd fd, socket_address address, std::string unix_path) noexcept
        : fd_(std::move(fd)), address_(address), unix_path_(std::move(unix_path)) {}

    unique_fd fd_;           // the listening socket
    socket_address address_; // what it is bound to (the real port, also for port 0)
    std::string unix_path_;  // the filesystem socket we created, to unlink at the end
};

// Connects to `address` on the ring; the socket is close-on-exec.
task<result<unique_fd>> connect(io_context& ctx, socket_address address);

// Who is at the other end of a connected UNIX socket: pid, uid and gid as the kernel saw them
// when it connected (SO_PEERCRED), for deciding who may ask. Errors: getsockopt's.
inline result<ucred> peer_credentials(borrowed_fd socket) noexcept {
    ucred peer{};
    socklen_t len = sizeof peer;
    if (::getsockopt(socket.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) return last_error();
    return peer;
}

// ---- accept_stream: multishot accept as an async stream of connections ----

struct accept_stream_options {
    std::size_t buffer = 64; // connections accepted ahead of the consumer; when full, accepting
                             // pauses and new connections wait in the kernel's backlog
    std::chrono::milliseconds min_backoff{5};    // first pause after EMFILE/ENFILE/ENOBUFS/ENOMEM
    std::chrono::milliseconds max_backoff{1000}; // the pause doubles up to this
    bool multishot = true; // false: one accept SQE per connection (old kernels fall back too)
    // How stop_accepting() empties the backlog: IORING_ACCEPT_DONTWAIT; false: plain accepts
    // cancelled in the same submission (kernels before 6.10 fall back to that too).
    bool sweep_dontwait = true;
};

struct accept_stream_stats {
    std::uint64_t accepted = 0;
    std::uint64_t rearmed = 0;           // the kernel ended a multishot and we armed a new one
    std::uint64_t descriptor_errors = 0; // EMFILE/ENFILE/ENOBUFS/ENOMEM seen
    std::uint64_t backoffs = 0;          // pauses taken because of them
    std::uint64_t swept = 0; // taken from the backlog after stop_accepting() (of `accepted`)
    bool multishot = false;  // whether multishot is in use now
};

class accept_stream {
public:
    // Starts accepting on `l` (which must outlive the stream). Allocates its state once here;
    // nothing per connection.
    accept_stream(io_context& ctx, const listener& l, accept_stream_options options = {});
    accept_stream(accept_stream&&) noexcept;
    accept_stream& operator=(accept_stream&&) = delete;
    // Stops accepting. Safe at any time: in-flight kernel work is cancelled and finished by the
    // loop; connections accepted but not taken are closed.
    ~accept_stream();

    class next_operation;
    // The next connection. Errors: operation_canceled (the awaiting coroutine's stop was
    // requested; accepting pauses until next() is awaited again) or a listener error such as
    // EBADF/EINVAL. Descriptor exhaustion is not an error: the stream backs off and retries.
    [[nodiscard]] next_operation next() noexcept;
    // Stops taking connections from the kernel without losing one: next() still hands out
    // every connection already accepted (buffered, or completing in the ring before the
    // cancelled accept ends) and those the backlog holds once the accept has ended (the kernel
    // may have woken our accept, not a successor's, for them), then fails with
    // operation_canceled. Connections that come later stay in the listen backlog for whoever
    // else listens on the socket: the successor of an upgrade (`ringd-control --upgrade`), or
    // another process sharing it. The destructor instead closes what was accepted but not
    // taken.
    void stop_accepting() noexcept;

    [[nodiscard]] const accept_stream_stats& stats() const noexcept;

private:
    struct state;
    state* state_; // heap-owned: it must outlive us until the kernel lets go of it
};

} // namespace ringd

#include <ringd/detail/accept_stream_impl.hpp>
#include <ringd/detail/net_impl.hpp>
