// SPDX-License-Identifier: MIT
// ringd/detail/net_impl.hpp — bodies of socket_address, listener and connect (net.hpp).
#pragma once

#include <ringd/net.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

namespace ringd {

inline expected<socket_address, std::string> socket_address::parse(std::string_view text) {
    auto fail = [&](std::string_view why) {
        return unexpected<std::string>("address '" + std::string(text) + "': " + std::string(why));
    };
    if (text.empty()) return fail("empty; expected HOST:PORT, [V6]:PORT, /path or @name");

    if (text.front() == '/' || text.front() == '@') {
        sockaddr_un un{};
        un.sun_family = AF_UNIX;
        if (text.size() >= sizeof un.sun_path)
            return fail("UNIX socket path longer than " + std::to_string(sizeof un.sun_path - 1) +
                        " bytes");
        if (text.size() == 1) return fail("abstract socket name is empty");
        std::memcpy(un.sun_path, text.data(), text.size());
        if (text.front() == '@') un.sun_path[0] = '\0'; // Linux abstract namespace
        socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + text.size() +
                                               (text.front() == '/' ? 1 : 0));
        return socket_address(reinterpret_cast<sockaddr*>(&un), len);
    }

    std::string_view host;
    std::string_view port_text;
    if (text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos) return fail("missing ']' after the IPv6 address");
        host = text.substr(1, close - 1);
        if (close + 1 >= text.size() || text[close + 1] != ':')
            return fail("expected ':PORT' after ']'");
        port_text = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return fail("missing ':PORT'");
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos)
            return fail("an IPv6 address needs brackets: [V6]:PORT");
    }
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
        port > 65535)
        return fail("port '" + std::string(port_text) + "' is not a number in 0-65535");

    std::string host_z(host);
    if (text.front() == '[') {
        sockaddr_in6 in6{};
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(static_cast<std::uint16_t>(port));
        if (::inet_pton(AF_INET6, host_z.c_str(), &in6.sin6_addr) != 1)
            return fail("'" + host_z + "' is not an IPv6 address");
        return socket_address(reinterpret_cast<sockaddr*>(&in6), sizeof in6);
    }
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(static_cast<std::uint16_t>(port));
    if (host_z.empty() || host_z == "*")
        in.sin_addr.s_addr = htonl(INADDR_ANY);
    else if (host_z == "localhost")
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (::inet_pton(AF_INET, host_z.c_str(), &in.sin_addr) != 1)
        return fail("'" + host_z +
                    "' is not an IPv4 address (names other than localhost are "
                    "not resolved)");
    return socket_address(reinterpret_cast<sockaddr*>(&in), sizeof in);
}

inline std::string socket_address::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    switch (family()) {
    case AF_INET:
        ::inet_ntop(AF_INET, &as<sockaddr_in>().sin_addr, buf, sizeof buf);
        return std::string(buf) + ":" + std::to_string(port());
    case AF_INET6:
        ::inet_ntop(AF_INET6, &as<sockaddr_in6>().sin6_addr, buf, sizeof buf);
        return "[" + std::string(buf) + "]:" + std::to_string(port());
    case AF_UNIX: {
        const auto& un = as<sockaddr_un>();
        std::size_t n = len_ - offsetof(sockaddr_un, sun_path);
        if (n == 0) return "@"; // unnamed
        if (un.sun_path[0] == '\0') return "@" + std::string(un.sun_path + 1, n - 1);
        return std::string(un.sun_path, ::strnlen(un.sun_path, n));
    }
    default:
        return "(family " + std::to_string(family()) + ")";
    }
}

namespace detail {
inline void set_flag_option(int fd, int level, int name, bool on, const char* what,
                            const socket_address& a) {
    int v = on ? 1 : 0;
    if (::setsockopt(fd, level, name, &v, sizeof v) != 0)
        throw_errno(errno, std::string("setsockopt ") + what + " " + a.to_string());
}

// A socket file left by a crashed process blocks bind with EADDRINUSE. Remove it only if nobody
// accepts on it (a live daemon keeps its socket), and only if it is a socket.
inline void remove_stale_unix_socket(const socket_address& address, const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return;
    unique_fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), address.sockaddr_ptr(), address.size()) != 0 &&
        errno == ECONNREFUSED)
        ::unlink(path.c_str());
}
} // namespace detail

inline listener listener::bind(const socket_address& address, const listen_options& options) {
    const std::string name = address.to_string();
    unique_fd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw_errno(errno, "socket " + name);
    std::string unix_path;
    if (address.family() == AF_UNIX) {
        if (name.front() == '/') unix_path = name;
    } else {
        if (options.reuse_address)
            detail::set_flag_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, true, "SO_REUSEADDR",
                                    address);
        if (options.reuse_port)
            detail::set_flag_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, true, "SO_REUSEPORT",
                                    address);
        if (address.family() == AF_INET6)
            detail::set_flag_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, options.v6_only,
                                    "IPV6_V6ONLY", address);
    }
    // A failed bind leaves the socket unbound, so the same socket is tried again. The stale check
    // is repeated too: a dead predecessor's UNIX socket stops answering only once it is released.
    const auto deadline = std::chrono::steady_clock::now() + options.retry_address_in_use;
    for (;;) {
        if (!unix_path.empty() && options.replace_stale_unix_socket)
            detail::remove_stale_unix_socket(address, unix_path);
        if (::bind(fd.get(), address.sockaddr_ptr(), address.size()) == 0) break;
        const int e = errno;
        const auto now = std::chrono::steady_clock::now();
        if (e != EADDRINUSE || now >= deadline) throw_errno(e, "bind " + name);
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
            std::chrono::milliseconds(10), deadline - now));
    }
    if (!unix_path.empty() && options.unix_mode != 0 &&
        ::chmod(unix_path.c_str(), options.unix_mode) != 0) {
        int e = errno;
        ::unlink(unix_path.c_str());
        throw_errno(e, "chmod " + name);
    }
    if (::listen(fd.get(), options.backlog) != 0) {
        int e = errno;
        if (!unix_path.empty()) ::unlink(unix_path.c_str());
        throw_errno(e, "listen " + name);
    }
    auto bound = socket_address::local_of(fd);
    if (!bound) throw_errno(bound.error().value(), "getsockname " + name);
    return listener(std::move(fd), *bound, std::move(unix_path));
}

inline listener listener::adopt(unique_fd fd) {
    const std::string name = "fd " + std::to_string(fd.get());
    int accepting = 0;
    socklen_t len = sizeof accepting;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0)
        throw_errno(errno, "adopt " + name);
    if (accepting == 0) throw_errno(EINVAL, "adopt " + name + ": not a listening socket");
    // An inherited descriptor may lack close-on-exec; ours must not leak into children.
    int flags = ::fcntl(fd.get(), F_GETFD);
    if (flags < 0 || ::fcntl(fd.get(), F_SETFD, flags | FD_CLOEXEC) != 0)
        throw_errno(errno, "fcntl FD_CLOEXEC " + name);
    auto bound = socket_address::local_of(fd);
    if (!bound) throw_errno(bound.error().value(), "getsockname " + name);
    return listener(std::move(fd), *bound, {});
}

inline task<result<unique_fd>> connect(io_context& ctx, socket_address address) {
    unique_fd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) co_return last_error();
    auto connected = co_await async_connect(ctx, fd, address.sockaddr_ptr(), address.size());
    if (!connected) co_return error_of(connected);
    co_return std::move(fd);
}

} // namespace ringd
