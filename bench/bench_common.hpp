// SPDX-License-Identifier: MIT
// bench_common.hpp — pieces every accept-benchmark program shares: an fd owner, fatal errors that
// name the program, a small flag reader and numeric address parsing.
//
// The baselines deliberately do not include ringd's headers: they must measure the same work
// without any of the framework's machinery, so they carry their own few lines of plumbing.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace bench {

// Exit codes: 1 = bad usage (the command line is wrong), 2 = the system refused something.
inline constexpr int exit_usage = 1;
inline constexpr int exit_system = 2;

// Move-only owner of a descriptor; closes in its destructor. close() is never retried: Linux
// releases the descriptor even when close fails (EINTR included).
// A copy of ringd/fd.hpp's on purpose: the baseline servers must not depend on ringd.
class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept {
        if (int old = std::exchange(fd_, fd); old >= 0) ::close(old);
    }

private:
    int fd_ = -1; // the owned descriptor, or -1
};

// A system_error whose what() reads "action: reason", from an errno value.
inline std::system_error sys_error(int err, const std::string& action) {
    return {err, std::system_category(), action};
}

// Throws sys_error(errno, action) when rc < 0; returns rc otherwise. Only for setup calls.
inline int check(int rc, const char* action) {
    if (rc < 0) throw sys_error(errno, action);
    return rc;
}

// Reads `--flag value` and `--flag=value` pairs. Every complaint is one line on stderr that names
// the program, the flag and the offending text, followed by exit(1).
class arg_reader {
public:
    arg_reader(std::string_view prog, int argc, char** argv) noexcept
        : prog_(prog), argc_(argc), argv_(argv) {}

    // Moves to the next argument; false when none are left.
    bool next() {
        if (++index_ >= argc_) return false;
        std::string_view arg = argv_[index_];
        inline_value_.reset();
        if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
            inline_value_ = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
        }
        flag_ = arg;
        return true;
    }

    [[nodiscard]] std::string_view flag() const noexcept { return flag_; }

    // The flag's value: the text after '=' or the next argument.
    std::string_view value() {
        if (inline_value_) return value_ = *inline_value_;
        if (index_ + 1 >= argc_) usage_error("missing value for " + std::string(flag_));
        return value_ = argv_[++index_];
    }

    // An integer value in [lo, hi]; anything else is a usage error.
    template <class T>
    T integer(T lo, T hi) {
        std::string_view text = value();
        T v{};
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc{} || end != text.data() + text.size() || v < lo || v > hi)
            bad_value("expected an integer " + std::to_string(lo) + ".." + std::to_string(hi));
        return v;
    }

    // A positive decimal number of seconds, e.g. 2 or 0.5, at most `hi`.
    double seconds(double hi) {
        std::string_view text = value();
        double v = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc{} || end != text.data() + text.size() || !(v > 0) || v > hi)
            bad_value("expected seconds > 0 and <= " + std::to_string(static_cast<int>(hi)));
        return v;
    }

    // "prog: bad --flag 'text': why", exit 1. Call after value().
    [[noreturn]] void bad_value(const std::string& why) const {
        std::fprintf(stderr, "%.*s: bad %.*s '%.*s': %s\n", int(prog_.size()), prog_.data(),
                     int(flag_.size()), flag_.data(), int(value_.size()), value_.data(),
                     why.c_str());
        std::exit(exit_usage);
    }

    [[noreturn]] void unknown() const {
        usage_error("unknown option '" + std::string(argv_[index_]) + "' (try --help)");
    }

    [[noreturn]] void usage_error(const std::string& what) const {
        std::fprintf(stderr, "%.*s: %s\n", int(prog_.size()), prog_.data(), what.c_str());
        std::exit(exit_usage);
    }

private:
    std::string_view prog_;                        // program name for messages
    int argc_;                                     // argv as main() got it
    char** argv_;                                  //
    int index_ = 0;                                // argv_[index_] is the current argument
    std::string_view flag_;                        // current flag without any "=value"
    std::optional<std::string_view> inline_value_; // the "=value" part, when given that way
    std::string_view value_;                       // last value taken, for messages
};

// A numeric IPv4 or IPv6 address with a port, ready for bind()/connect().
struct endpoint {
    sockaddr_storage addr{};
    socklen_t len = 0;

    [[nodiscard]] int family() const noexcept { return addr.ss_family; }
    [[nodiscard]] const sockaddr* sa() const noexcept {
        return reinterpret_cast<const sockaddr*>(&addr);
    }

    [[nodiscard]] std::uint16_t port() const noexcept {
        if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
        return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
    }

    void set_port(std::uint16_t port) noexcept {
        if (family() == AF_INET)
            reinterpret_cast<sockaddr_in&>(addr).sin_port = htons(port);
        else
            reinterpret_cast<sockaddr_in6&>(addr).sin6_port = htons(port);
    }

    // An IPv4 loopback address (127.0.0.0/8): the load clients can spread their connections
    // over several source addresses 127.0.0.x, each with its own ephemeral ports.
    [[nodiscard]] bool is_loopback_v4() const noexcept {
        return family() == AF_INET &&
               (ntohl(reinterpret_cast<const sockaddr_in&>(addr).sin_addr.s_addr) >> 24) == 127;
    }

    // "127.0.0.1:8080" or "[::1]:8080".
    [[nodiscard]] std::string to_string() const {
        char buf[INET6_ADDRSTRLEN] = {};
        if (family() == AF_INET) {
            inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr, buf,
                      sizeof buf);
            return std::string(buf) + ":" + std::to_string(port());
        }
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr, buf,
                  sizeof buf);
        return "[" + std::string(buf) + "]:" + std::to_string(port());
    }

    // Parses a numeric address (no name lookup: a benchmark must not depend on DNS).
    static std::optional<endpoint> parse(const std::string& host, std::uint16_t port) {
        endpoint ep;
        if (auto* v4 = reinterpret_cast<sockaddr_in*>(&ep.addr);
            inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
            v4->sin_family = AF_INET;
            ep.len = sizeof(sockaddr_in);
        } else if (auto* v6 = reinterpret_cast<sockaddr_in6*>(&ep.addr);
                   inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            ep.len = sizeof(sockaddr_in6);
        } else {
            return std::nullopt;
        }
        ep.set_port(port);
        return ep;
    }
};

// Reads --host's value into an endpoint (port set later).
inline endpoint host_value(arg_reader& args) {
    std::string text(args.value());
    auto ep = endpoint::parse(text, 0);
    if (!ep) args.bad_value("expected a numeric IPv4 or IPv6 address");
    return *ep;
}

// Reads a command line of `--flag value` pairs: --port P (required, at least min_port) and
// --host ADDR (default 127.0.0.1) here; --help/-h prints `usage()` and exits 0; every other flag
// goes to `other(flag, args)`, which reads its value and returns true, or returns false for an
// unknown flag (a usage error). Returns the address with the port.
template <class Usage, class Other>
endpoint parse_address_args(std::string_view prog, int argc, char** argv, std::uint16_t min_port,
                            Usage&& usage, Other&& other) {
    endpoint address = *endpoint::parse("127.0.0.1", 0);
    std::optional<std::uint16_t> port;
    arg_reader args(prog, argc, argv);
    while (args.next()) {
        std::string_view f = args.flag();
        if (f == "--port") {
            port = args.integer<std::uint16_t>(min_port, 65535);
        } else if (f == "--host") {
            address = host_value(args);
        } else if (f == "--help" || f == "-h") {
            usage();
            std::exit(0);
        } else if (!other(f, args)) {
            args.unknown();
        }
    }
    if (!port)
        args.usage_error(min_port == 0 ? "missing --port (0 = ephemeral; try --help)"
                                       : "missing --port (try --help)");
    address.set_port(*port);
    return address;
}

// What both load clients (accept_load, echo_load) take.
struct client_options {
    endpoint target;                // --host, --port
    unsigned connections = 64;      // --connections, over all threads
    std::optional<double> duration; // --duration, seconds
    unsigned threads = 1;           // --threads, each with its own ring
};

// A load client's command line: the client_options flags here (--connections at most
// max_connections, and at least --threads), the others as in parse_address_args.
template <class Usage, class Other>
client_options parse_client_args(std::string_view prog, int argc, char** argv,
                                 unsigned max_connections, Usage&& usage, Other&& other) {
    client_options opt;
    opt.target =
        parse_address_args(prog, argc, argv, 1, usage, [&](std::string_view f, arg_reader& args) {
            if (f == "--connections")
                opt.connections = args.integer<unsigned>(1, max_connections);
            else if (f == "--duration")
                opt.duration = args.seconds(3600);
            else if (f == "--threads")
                opt.threads = args.integer<unsigned>(1, 256);
            else
                return other(f, args);
            return true;
        });
    if (opt.connections < opt.threads)
        arg_reader(prog, argc, argv)
            .usage_error("--connections must be at least --threads (each thread needs one)");
    return opt;
}

} // namespace bench
