// SPDX-License-Identifier: MIT
#include <ringd/signals.hpp>

#include "test_support.hpp"

#include <ringd/scope.hpp>
#include <ringd/timer.hpp>

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <vector>

using namespace std::chrono_literals;
using ringd::lifecycle_event;
using ringd::task;

TEST_CASE("SIGHUP and SIGTERM sent to a running loop arrive as reload and stop") {
    ringd::io_context ctx;
    ringd::lifecycle_signals signals(ctx);
    std::vector<lifecycle_event> seen;
    auto daemon_body = [&]() -> task<void> {
        for (;;) {
            auto ev = co_await signals.next();
            REQUIRE(ev.has_value());
            seen.push_back(*ev);
            if (*ev == lifecycle_event::stop) break;
        }
    };
    auto sender = [&]() -> task<void> {
        co_await ringd::sleep_for(ctx, 10ms); // the loop is blocked in the kernel by now
        ::kill(::getpid(), SIGHUP);
        co_await ringd::sleep_for(ctx, 10ms);
        ::kill(::getpid(), SIGTERM);
    };
    auto body = [&]() -> task<void> {
        ringd::scope s;
        s.spawn(daemon_body());
        s.spawn(sender());
        co_await s.join();
    };
    ringd::testing::run_bounded(ctx, body());
    CHECK(seen == std::vector<lifecycle_event>{lifecycle_event::reload, lifecycle_event::stop});
}

TEST_CASE("a signal reports who sent it") {
    ringd::io_context ctx;
    ringd::signal_set set(ctx, {SIGUSR1});
    ::kill(::getpid(), SIGUSR1); // queued while blocked: read at once
    auto info = ringd::testing::run_bounded(ctx, set.next());
    REQUIRE(info.has_value());
    CHECK(info->number == SIGUSR1);
    CHECK(info->sender == ::getpid());
}

TEST_CASE("a signal set made from a sigset_t blocks and reads exactly that set") {
    ringd::io_context ctx;
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGWINCH);
    sigaddset(&wanted, SIGURG);
    ringd::signal_set set(ctx, wanted);
    sigset_t blocked;
    REQUIRE(::pthread_sigmask(SIG_BLOCK, nullptr, &blocked) == 0);
    CHECK(sigismember(&blocked, SIGWINCH) == 1);
    CHECK(sigismember(&blocked, SIGURG) == 1);
    ::kill(::getpid(), SIGURG);
    ::kill(::getpid(), SIGWINCH);
    std::vector<int> seen;
    for (int i = 0; i < 2; ++i) {
        auto info = ringd::testing::run_bounded(ctx, set.next());
        REQUIRE(info.has_value());
        seen.push_back(info->number);
    }
    std::sort(seen.begin(), seen.end());
    CHECK(seen == std::vector<int>{std::min(SIGURG, SIGWINCH), std::max(SIGURG, SIGWINCH)});
}

TEST_CASE("waiting for a signal is cancelled by the scope") {
    ringd::io_context ctx;
    ringd::signal_set set(ctx, {SIGUSR2});
    std::optional<std::error_code> error;
    auto waiter = [&]() -> task<void> {
        auto s = co_await set.next();
        if (!s) error = s.error();
    };
    auto body = [&]() -> task<void> {
        ringd::scope sc;
        sc.spawn(waiter());
        co_await ringd::sleep_for(ctx, 5ms);
        sc.request_stop();
        co_await sc.join();
    };
    ringd::testing::run_bounded(ctx, body());
    REQUIRE(error.has_value());
    CHECK(ringd::is_cancelled(*error));
}

TEST_CASE("a child after reset_signals_for_exec can be stopped with SIGTERM") {
    ringd::block_signals({SIGTERM});
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ringd::reset_signals_for_exec();
        ::pause(); // SIGTERM's default action ends us
        ::_exit(0);
    }
    ::kill(pid, SIGTERM);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGTERM);
}
