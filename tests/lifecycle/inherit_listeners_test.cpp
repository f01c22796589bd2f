// SPDX-License-Identifier: MIT
#include <ringd/inherit_listeners.hpp>

#include "lifecycle_support.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

using ringd::unique_fd;

namespace {

ringd::socket_address addr(const char* text) {
    return *ringd::socket_address::parse(text);
}

// The socket's identity, to tell an inherited socket from one bound again on the same address.
ino_t inode_of(ringd::borrowed_fd fd) {
    struct stat st {};
    return ::fstat(fd.get(), &st) == 0 ? st.st_ino : 0;
}

// In a forked child (socket activation needs descriptors 3 and up): passes `sockets` as
// LISTEN_FDS 3.., runs `check` and returns its exit code (0: all held; else the failed step).
template <class Check>
int with_inherited(std::vector<ringd::listener> sockets, Check check) {
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        int code = 0;
        try {
            std::vector<unique_fd> high;
            for (auto& l : sockets) high.emplace_back(::fcntl(l.fd().get(), F_DUPFD_CLOEXEC, 100));
            sockets.clear();
            for (int fd = 3; fd < 100; ++fd) ::close(fd);
            for (std::size_t i = 0; i < high.size(); ++i)
                if (::dup2(high[i].get(), 3 + static_cast<int>(i)) < 0) ::_exit(90);
            const std::size_t n = high.size();
            high.clear();
            ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
            ::setenv("LISTEN_FDS", std::to_string(n).c_str(), 1);
            code = check();
        } catch (...) {
            code = 99;
        }
        ::_exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

} // namespace

TEST_CASE("inherit_or_bind uses the inherited socket for an address it is given, and binds the "
          "others") {
    auto a = ringd::listener::bind(addr("127.0.0.1:0"));
    auto b = ringd::listener::bind(addr("127.0.0.1:0"));
    const std::uint16_t port_a = a.address().port(), port_b = b.address().port();
    const ino_t inode_a = inode_of(a.fd()), inode_b = inode_of(b.fd());
    std::vector<ringd::listener> passed;
    passed.push_back(std::move(a));
    passed.push_back(std::move(b));
    int code = with_inherited(std::move(passed), [&] {
        const std::string exact = "127.0.0.1:" + std::to_string(port_a);
        // The exact address, then "any port on 127.0.0.1" twice: the second inherited socket
        // serves the first of those, and the last one is bound afresh.
        auto ls =
            ringd::inherit_or_bind({addr(exact.c_str()), addr("127.0.0.1:0"), addr("127.0.0.1:0")});
        if (ls.size() != 3) return 1;
        if (inode_of(ls[0].fd()) != inode_a || ls[0].address().port() != port_a) return 2;
        if (inode_of(ls[1].fd()) != inode_b || ls[1].address().port() != port_b) return 3;
        if (inode_of(ls[2].fd()) == inode_a || inode_of(ls[2].fd()) == inode_b) return 4;
        if (ls[2].address().port() == port_a || ls[2].address().port() == port_b) return 5;
        if (std::getenv("LISTEN_FDS") != nullptr) return 6; // taken: children do not see it
        if (ringd::addresses_text(ls) !=
            exact + " 127.0.0.1:" + std::to_string(port_b) + " " + ls[2].address().to_string())
            return 7;
        return 0;
    });
    CHECK(code == 0);
}

TEST_CASE("inherit_or_bind keeps an inherited socket that no address names, after the others") {
    auto a = ringd::listener::bind(addr("127.0.0.1:0"));
    const ino_t inode_a = inode_of(a.fd());
    std::vector<ringd::listener> passed;
    passed.push_back(std::move(a));
    int code = with_inherited(std::move(passed), [&] {
        // Another host: the inherited socket cannot serve it.
        auto ls = ringd::inherit_or_bind({addr("127.0.0.2:0")});
        if (ls.size() != 2) return 1;
        if (ls[0].address().to_string().rfind("127.0.0.2:", 0) != 0) return 2;
        if (inode_of(ls[1].fd()) != inode_a) return 3;
        return 0;
    });
    CHECK(code == 0);
}

TEST_CASE("inherit_or_bind without inherited sockets binds every address") {
    ::unsetenv("LISTEN_FDS");
    auto ls = ringd::inherit_or_bind({addr("127.0.0.1:0")});
    REQUIRE(ls.size() == 1);
    CHECK(ls[0].address().port() != 0);
}
