// SPDX-License-Identifier: MIT
#include <ringd/notify.hpp>
#include <ringd/socket_activation.hpp>

#include "lifecycle_support.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>

using ringd::notifier;
using ringd::unique_fd;
using ringd::testing::temp_dir;

namespace {

// The supervisor's end: a datagram socket bound at `path` ("@name": abstract).
unique_fd bind_notify_socket(const std::string& path) {
    unique_fd s(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(s);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.data(), path.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    if (path[0] == '@')
        a.sun_path[0] = '\0';
    else
        ++len;
    REQUIRE(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), len) == 0);
    return s;
}

// One datagram (waits at most 2 s), with the descriptors that came along.
std::string receive(const unique_fd& s, std::vector<unique_fd>* fds = nullptr) {
    pollfd p{s.get(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 2000) == 1);
    char buf[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(s.get(), &msg, MSG_CMSG_CLOEXEC);
    REQUIRE(n >= 0);
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (fds != nullptr)
                fds->emplace_back(fd);
            else
                ::close(fd);
        }
    }
    return std::string(buf, static_cast<std::size_t>(n));
}

} // namespace

TEST_CASE("sd_notify states reach the socket the test owns") {
    temp_dir dir;
    auto server = bind_notify_socket(dir / "notify");
    auto n = notifier::connect(dir / "notify");
    REQUIRE(n);
    REQUIRE(n->enabled());
    REQUIRE(n->ready("serving"));
    CHECK(receive(server) == "READY=1\nSTATUS=serving");
    auto before = notifier::monotonic_usec();
    REQUIRE(n->reloading());
    auto reloading = receive(server);
    REQUIRE(reloading.rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
    auto usec = std::stoull(reloading.substr(reloading.find('=', 12) + 1));
    CHECK(usec >= before);
    CHECK(usec <= notifier::monotonic_usec());
    REQUIRE(n->stopping());
    CHECK(receive(server) == "STOPPING=1");
    REQUIRE(n->status("draining 3 connections"));
    CHECK(receive(server) == "STATUS=draining 3 connections");
    REQUIRE(n->watchdog());
    CHECK(receive(server) == "WATCHDOG=1");
    REQUIRE(n->extend_timeout(std::chrono::seconds(5)));
    CHECK(receive(server) == "EXTEND_TIMEOUT_USEC=5000000");
    REQUIRE(n->main_pid(77));
    CHECK(receive(server) == "MAINPID=77");
}

TEST_CASE("sd_notify reaches a socket in the abstract namespace") {
    std::string name = "@ringd-notify-test-" + std::to_string(::getpid());
    auto server = bind_notify_socket(name);
    auto n = notifier::connect(name);
    REQUIRE(n);
    REQUIRE(n->ready());
    CHECK(receive(server) == "READY=1");
}

TEST_CASE("FDSTORE=1 hands descriptors to the supervisor with SCM_RIGHTS") {
    temp_dir dir;
    auto server = bind_notify_socket(dir / "notify");
    auto n = notifier::connect(dir / "notify");
    REQUIRE(n);
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    unique_fd read_end(p[0]), write_end(p[1]);
    ringd::borrowed_fd fds[] = {write_end};
    REQUIRE(n->store_fds(fds, "echod-listen"));
    std::vector<unique_fd> got;
    CHECK(receive(server, &got) == "FDSTORE=1\nFDNAME=echod-listen");
    REQUIRE(got.size() == 1);
    REQUIRE(::write(got[0].get(), "x", 1) == 1); // the stored copy is the same pipe
    char c = 0;
    REQUIRE(::read(read_end.get(), &c, 1) == 1);
    CHECK(c == 'x');
    CHECK_FALSE(n->store_fds(fds, "bad:name"));
}

TEST_CASE("the notifier comes from the environment and removes it, watchdog included") {
    temp_dir dir;
    auto server = bind_notify_socket(dir / "notify");
    ::setenv("NOTIFY_SOCKET", (dir / "notify").c_str(), 1);
    ::setenv("WATCHDOG_USEC", "3000000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    auto n = notifier::from_environment();
    REQUIRE(n);
    CHECK(n->enabled());
    REQUIRE(n->watchdog_period());
    CHECK(*n->watchdog_period() == std::chrono::microseconds(1500000));
    CHECK(std::getenv("NOTIFY_SOCKET") == nullptr);
    CHECK(std::getenv("WATCHDOG_USEC") == nullptr);

    ::setenv("NOTIFY_SOCKET", (dir / "notify").c_str(), 1);
    ::setenv("WATCHDOG_USEC", "3000000", 1);
    ::setenv("WATCHDOG_PID", "1", 1); // meant for another process
    auto other = notifier::from_environment();
    REQUIRE(other);
    CHECK_FALSE(other->watchdog_period());
}

TEST_CASE("without NOTIFY_SOCKET notifying is a no-op that succeeds") {
    ::unsetenv("NOTIFY_SOCKET");
    auto n = notifier::from_environment();
    REQUIRE(n);
    CHECK_FALSE(n->enabled());
    CHECK(n->ready());
}

TEST_CASE("s6 readiness is a newline on the notification fd, which is then closed") {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    unique_fd read_end(p[0]);
    REQUIRE(ringd::notify_fd_ready(unique_fd(p[1])));
    char buf[4];
    CHECK(::read(read_end.get(), buf, sizeof buf) == 1);
    CHECK(buf[0] == '\n');
    CHECK(::read(read_end.get(), buf, sizeof buf) == 0); // closed: EOF
}

// Socket activation needs descriptors 3 and up: done in a child, which reports by exit code.
TEST_CASE("sockets passed with LISTEN_FDS become listeners, with their names") {
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        int code = 0;
        try {
            auto a = ringd::listener::bind(*ringd::socket_address::parse("127.0.0.1:0"));
            auto b = ringd::listener::bind(*ringd::socket_address::parse("127.0.0.1:0"));
            auto port_a = a.address().port();
            unique_fd fa = a.release(), fb = b.release();
            for (int fd = 3; fd < 64; ++fd)
                if (fd != fa.get() && fd != fb.get()) ::close(fd);
            if (::dup2(fa.get(), 10) < 0 || ::dup2(fb.get(), 11) < 0) ::_exit(10);
            ::close(fa.release());
            ::close(fb.release());
            if (::dup2(10, 3) < 0 || ::dup2(11, 4) < 0) ::_exit(11);
            ::close(10);
            ::close(11);
            ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
            ::setenv("LISTEN_FDS", "2", 1);
            ::setenv("LISTEN_FDNAMES", "web:admin", 1);
            auto sockets = ringd::take_activated_sockets();
            if (!sockets || sockets->size() != 2) ::_exit(12);
            if ((*sockets)[0].name != "web" || (*sockets)[1].name != "admin") ::_exit(13);
            if ((::fcntl((*sockets)[0].fd.get(), F_GETFD) & FD_CLOEXEC) == 0) ::_exit(14);
            if (std::getenv("LISTEN_FDS") != nullptr) ::_exit(15);
            auto l = ringd::listener::adopt(std::move((*sockets)[0].fd));
            if (l.address().port() != port_a) ::_exit(16);
            // Meant for another process: ignored.
            ::setenv("LISTEN_PID", "1", 1);
            ::setenv("LISTEN_FDS", "1", 1);
            auto none = ringd::activated_listeners();
            if (!none.empty()) ::_exit(17);
        } catch (...) {
            code = 20;
        }
        ::_exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
