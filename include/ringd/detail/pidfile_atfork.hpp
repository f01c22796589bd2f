// SPDX-License-Identifier: MIT
// ringd/detail/pidfile_atfork.hpp — descriptors that a fork()ed child must not keep.
// flock() locks belong to the open file description, which fork() shares: a child that keeps a
// copy of the PID file's descriptor keeps the daemon "running" after the daemon has died.
// O_CLOEXEC covers exec; this covers fork without exec (and the time before exec), through a
// pthread_atfork child handler that closes every registered descriptor in the child.
#pragma once

#include <pthread.h>
#include <unistd.h>

#include <atomic>

namespace ringd::detail {

class fork_close_list {
public:
    static constexpr int capacity = 4; // the PID file, the readiness pipe, and room to spare

    // Registers fd (idempotent). Returns false when the list is full.
    static bool add(int fd) noexcept {
        install_handler();
        for (auto& slot : slots()) {
            int expected = -1;
            if (slot.load() == fd) return true;
            if (slot.compare_exchange_strong(expected, fd)) return true;
        }
        return false;
    }
    // Unregisters fd, e.g. before the owner closes it.
    static void remove(int fd) noexcept {
        for (auto& slot : slots()) {
            int expected = fd;
            slot.compare_exchange_strong(expected, -1);
        }
    }
    // For code that creates processes without fork() (clone/clone3 that does not exec at once):
    // closes every registered descriptor. Async-signal-safe.
    static void close_all_in_child() noexcept {
        for (auto& slot : slots()) {
            int fd = slot.exchange(-1);
            if (fd >= 0) ::close(fd);
        }
    }

private:
    static std::atomic<int> (&slots() noexcept)[capacity] {
        static std::atomic<int> table[capacity] = {-1, -1, -1, -1};
        return table;
    }
    static void install_handler() noexcept {
        static const int installed = ::pthread_atfork(nullptr, nullptr, &close_all_in_child);
        (void)installed;
    }
};

} // namespace ringd::detail
