// SPDX-License-Identifier: MIT
// become_child_subreaper: an orphaned grandchild is re-parented to us, not to init. Each case
// runs in a forked child, so that the test process itself stays as it was.
#include <ringd/container_init.hpp>

#include <catch2/catch.hpp>

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

// Runs `body` in a child and returns its exit status (255: it did not exit normally).
template <class Body>
int in_child(Body body) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(body());
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

} // namespace

TEST_CASE("a child subreaper gets its orphaned grandchild and can reap it") {
    const int status = in_child([] {
        if (!ringd::become_child_subreaper()) return 1;
        int flag = 0;
        if (::prctl(PR_GET_CHILD_SUBREAPER, &flag) != 0 || flag != 1) return 2;
        int ready[2];
        if (::pipe(ready) != 0) return 3;
        const pid_t middle = ::fork();
        if (middle == 0) {
            if (::fork() == 0) { // the grandchild: waits until its parent is gone
                ::close(ready[1]);
                char c;
                (void)::read(ready[0], &c, 1);
                ::_exit(0);
            }
            ::_exit(0); // orphans the grandchild
        }
        if (::waitpid(middle, nullptr, 0) != middle) return 4;
        ::close(ready[0]);
        ::close(ready[1]); // the grandchild may end now
        // The orphan is ours: waitpid(-1) reaps it (with init as its parent, ECHILD).
        return ::waitpid(-1, nullptr, 0) > 0 ? 0 : 5;
    });
    CHECK(status == 0);
}

TEST_CASE("the warning form stays quiet when it succeeds") {
    const int status = in_child([] {
        ringd::container_init_options o;
        o.program = "test";
        ringd::become_child_subreaper_or_warn(o);
        int flag = 0;
        return ::prctl(PR_GET_CHILD_SUBREAPER, &flag) == 0 && flag == 1 ? 0 : 1;
    });
    CHECK(status == 0);
}
