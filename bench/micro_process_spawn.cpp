// SPDX-License-Identifier: MIT
// micro_process_spawn — starting a child that runs /bin/true and reaping it, from a parent whose
// heap holds 0 or 512 MiB of touched memory (a supervisor of thousands of services is large):
//   process_spawn/raw/MiB      glibc's posix_spawn + waitpid: the floor (clone(CLONE_VM |
//                              CLONE_VFORK), nothing of the parent copied)
//   process_spawn/ringd/MiB    ringd::spawn (the same clone, with CLONE_PIDFD and ringd's child
//                              set-up: own process group, stdin /dev/null, signals reset,
//                              close-on-exec sweep) + waitid on the pidfd
//   fork_fallback/raw/MiB      fork + execve + waitpid: what copying the page tables costs
//   fork_fallback/ringd/MiB    ringd::spawn with share_memory_until_exec = false (its fallback
//                              for kernels before 5.2, and what it did before)
// Wall-clock time per spawn (the parent waits while the child runs up to execve).
#include <ringd/process.hpp>

#include <benchmark/benchmark.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace {

// Touched heap that a fork has to map into the child.
class ballast {
public:
    explicit ballast(std::size_t mib) : bytes_(mib << 20) {
        if (bytes_ == 0) return;
        data_ = std::make_unique<char[]>(bytes_);
        for (std::size_t i = 0; i < bytes_; i += 4096) data_[i] = static_cast<char>(i);
    }
    char* data() const noexcept { return data_.get(); }

private:
    std::size_t bytes_;
    std::unique_ptr<char[]> data_;
};

void reap(pid_t pid) {
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw std::runtime_error("/bin/true did not exit 0");
}

char* const true_argv[] = {const_cast<char*>("/bin/true"), nullptr};

void posix_spawn_raw(benchmark::State& state) {
    ballast b(static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        pid_t pid = 0;
        if (::posix_spawn(&pid, "/bin/true", nullptr, nullptr, true_argv, environ) != 0)
            throw std::runtime_error("posix_spawn failed");
        reap(pid);
    }
    benchmark::DoNotOptimize(b.data());
}

void fork_raw(benchmark::State& state) {
    ballast b(static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            ::execve("/bin/true", true_argv, environ);
            ::_exit(127);
        }
        if (pid < 0) throw std::runtime_error("fork failed");
        reap(pid);
    }
    benchmark::DoNotOptimize(b.data());
}

void ringd_spawn(benchmark::State& state, bool share_memory) {
    ballast b(static_cast<std::size_t>(state.range(0)));
    ringd::spawn_options o;
    o.argv = {"/bin/true"};
    o.share_memory_until_exec = share_memory;
    for (auto _ : state) {
        auto p = ringd::spawn(o);
        if (!p) throw std::runtime_error(p.error().message());
        reap(p->pid());
    }
    benchmark::DoNotOptimize(b.data());
}

void ringd_shared(benchmark::State& state) {
    ringd_spawn(state, true);
}
void ringd_fork(benchmark::State& state) {
    ringd_spawn(state, false);
}

BENCHMARK(posix_spawn_raw)->Name("process_spawn/raw")->Arg(0)->Arg(512)->UseRealTime();
BENCHMARK(ringd_shared)->Name("process_spawn/ringd")->Arg(0)->Arg(512)->UseRealTime();
BENCHMARK(fork_raw)->Name("fork_fallback/raw")->Arg(0)->Arg(512)->UseRealTime();
BENCHMARK(ringd_fork)->Name("fork_fallback/ringd")->Arg(0)->Arg(512)->UseRealTime();

} // namespace
