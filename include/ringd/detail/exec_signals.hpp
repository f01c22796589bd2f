// SPDX-License-Identifier: MIT
// ringd/detail/exec_signals.hpp — the signal state a program gets from us at execve: default
// dispositions and nothing blocked. One function for every child we start: spawn()'s (which may
// run in the parent's memory, CLONE_VM) and container_init's fork.
#pragma once

#include <signal.h>

// Code that runs in a child sharing the parent's memory and never returns must not touch
// AddressSanitizer's shadow of its stack: the poison it leaves would outlive the stack.
#if defined(__clang__) || defined(__SANITIZE_ADDRESS__)
#define RINGD_CHILD_CODE __attribute__((no_sanitize("address")))
#else
#define RINGD_CHILD_CODE
#endif

namespace ringd {

// For a child between fork (or clone) and exec: every default disposition first, so that no
// handler of the parent's runs in a child that may share its memory; then every signal
// unblocked, since a daemon blocks SIGTERM for its signalfd and a child that inherited that mask
// could not be stopped. Async-signal-safe.
RINGD_CHILD_CODE inline void reset_signals_for_exec() noexcept {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s)
        ::sigaction(s, &dfl, nullptr); // fails harmlessly for SIGKILL, SIGSTOP and glibc's own
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

} // namespace ringd
