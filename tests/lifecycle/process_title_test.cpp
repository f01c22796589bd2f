// SPDX-License-Identifier: MIT
#include <ringd/process_title.hpp>

#include "lifecycle_support.hpp"

#include <catch2/catch.hpp>

namespace {
struct probe {
    pid_t pid = -1;
    ringd::unique_fd out;
    ~probe() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
};

std::string ps(pid_t pid, const char* field) {
    auto r = ringd::testing::run_command(
        {"ps", "-o", std::string(field) + "=", "-p", std::to_string(pid)});
    while (!r.out.empty() && (r.out.back() == '\n' || r.out.back() == ' ')) r.out.pop_back();
    return r.out;
}
} // namespace

TEST_CASE("the process title shows in ps -ef, ps -o comm and /proc, and the environment survives") {
    std::string exe = ringd::testing::env_or("TITLE_PROBE", "tests/lifecycle/title_probe");
    std::string title = "xferrd_tcpip: listening on 3305";
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    probe child;
    child.out.reset(p[0]);
    child.pid = ::fork();
    REQUIRE(child.pid >= 0);
    if (child.pid == 0) {
        ::dup2(p[1], 1);
        ::setenv("TITLE_PROBE_MARKER", "env-ok", 1);
        // Many arguments: room for the title in argv alone would be enough, but use them all.
        ::execl(exe.c_str(), exe.c_str(), title.c_str(), "padding-argument-one", "two", nullptr);
        ::_exit(127);
    }
    ::close(p[1]);
    char buf[256] = {};
    pollfd pf{child.out.get(), POLLIN, 0};
    REQUIRE(::poll(&pf, 1, 5000) == 1);
    REQUIRE(::read(child.out.get(), buf, sizeof buf - 1) > 0);
    CHECK(std::string(buf) == "env-ok title_probe\n"); // environ moved, program name kept
    auto cmdline = ringd::testing::read_file("/proc/" + std::to_string(child.pid) + "/cmdline");
    CHECK(std::string(cmdline.c_str()) == title);
    CHECK(ringd::testing::read_file("/proc/" + std::to_string(child.pid) + "/comm") ==
          "xferrd_tcpip\n");
    CHECK(ps(child.pid, "comm") == "xferrd_tcpip");
    CHECK(ps(child.pid, "args") == title);
}

TEST_CASE("comm is cut to 15 bytes, as the kernel keeps it") {
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        bool ok = ringd::set_process_comm("a-very-long-daemon-name").has_value();
        auto comm = ringd::testing::read_file("/proc/self/comm");
        ::_exit(ok && comm == "a-very-long-dae\n" ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WEXITSTATUS(status) == 0);
}
