// SPDX-License-Identifier: MIT
// tests/test_support.hpp — shared helpers: a watchdog so no test hangs, blocking clients, pipes.
#pragma once

#include <ringd/io_context.hpp>
#include <ringd/net.hpp>
#include <ringd/task.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace ringd::testing {

// Stops `ctx` from another thread if the test has not finished by the deadline, so a broken
// build fails the test (run() throws) instead of hanging CI.
class watchdog {
public:
    // Returns once the watchdog's thread runs, so that a test may then exhaust resources (the
    // descriptor table, say) without the thread's start-up needing any.
    watchdog(io_context& ctx, std::chrono::milliseconds limit)
        : thread_([this, &ctx, limit] {
              std::unique_lock lock(mutex_);
              started_ = true;
              cv_.notify_all();
              if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
                  fired_ = true;
                  ctx.stop();
              }
          }) {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return started_; });
    }
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    [[nodiscard]] bool fired() const {
        std::lock_guard lock(mutex_);
        return fired_;
    }

private:
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    bool started_ = false;
    bool done_ = false;
    bool fired_ = false;
    std::thread thread_;
};

// Runs `t` to completion on `ctx`; fails the test after `limit`.
template <class T>
T run_bounded(io_context& ctx, task<T> t,
              std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    watchdog dog(ctx, limit);
    if constexpr (std::is_void_v<T>) {
        ctx.run(std::move(t));
        REQUIRE_FALSE(dog.fired());
    } else {
        T value = ctx.run(std::move(t));
        REQUIRE_FALSE(dog.fired());
        return value;
    }
}

// A blocking TCP/UNIX client socket connected to `address`.
inline unique_fd connect_blocking(const socket_address& address) {
    unique_fd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd.valid());
    REQUIRE(::connect(fd.get(), address.sockaddr_ptr(), address.size()) == 0);
    return fd;
}

// A close-on-exec pipe; a read end nobody writes to is the never-ready descriptor that
// cancellation tests park operations on.
struct pipe_pair {
    unique_fd read_end, write_end;
    pipe_pair() {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        read_end.reset(fds[0]);
        write_end.reset(fds[1]);
    }
};

// Whether the running kernel is at least major.minor (for features io_uring_get_probe cannot
// see, such as multishot accept, 5.19).
inline bool kernel_at_least(int major, int minor) {
    utsname u{};
    if (::uname(&u) != 0) return false;
    int ma = 0, mi = 0;
    if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
    return ma > major || (ma == major && mi >= minor);
}

inline socket_address loopback_any_port() {
    return *socket_address::parse("127.0.0.1:0");
}

// A directory under /tmp that the test owns, removed with all it holds when the test ends.
struct scratch_dir {
    std::string path;
    scratch_dir() {
        char name[] = "/tmp/ringd-test-XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        path = name;
    }
    ~scratch_dir() { (void)std::system(("rm -rf '" + path + "'").c_str()); }
};

} // namespace ringd::testing
