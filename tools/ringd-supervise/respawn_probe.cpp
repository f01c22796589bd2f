// SPDX-License-Identifier: MIT
// respawn_probe — the child of the respawn-latency measurement: it appends "s <ns>" when it
// starts and "e <ns>" just before it exits (CLOCK_MONOTONIC) to $RESPAWN_TIMES, then exits 1
// (after $RESPAWN_RUN_MS milliseconds, if set).
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace {
long long now_ns() {
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<long long>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}
void stamp(int fd, char kind) {
    char line[64];
    const int n = std::snprintf(line, sizeof line, "%c %lld\n", kind, now_ns());
    [[maybe_unused]] ssize_t w = ::write(fd, line, static_cast<std::size_t>(n));
}
} // namespace

int main() {
    const long long started = now_ns();
    const char* path = std::getenv("RESPAWN_TIMES");
    if (path == nullptr) return 2;
    const int fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return 2;
    char line[64];
    const int n = std::snprintf(line, sizeof line, "s %lld\n", started);
    [[maybe_unused]] ssize_t w = ::write(fd, line, static_cast<std::size_t>(n));
    // $RESPAWN_RUN_MS: live that long first, like a service that crashes after a while.
    if (const char* run = std::getenv("RESPAWN_RUN_MS"))
        ::usleep(static_cast<useconds_t>(std::atoi(run)) * 1000);
    stamp(fd, 'e');
    ::_exit(1);
}
