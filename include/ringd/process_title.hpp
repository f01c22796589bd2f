// SPDX-License-Identifier: MIT
// ringd/process_title.hpp — naming a process the way operators look for it: comm (prctl
// PR_SET_NAME: `ps -o comm`, `ss -p`, `lsof`, top) and the argv area (`ps -ef`, /proc/PID/cmdline).
#pragma once

#include <ringd/result.hpp>

#include <errno.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstring>
#include <new>
#include <string>
#include <string_view>

extern char** environ;

namespace ringd {

// Call once from main(), with main's argc and argv, before anything keeps pointers into the
// environment: it finds the argv+environ block (the only memory the kernel shows as the command
// line), moves the environment strings to the heap and points `environ` there, and repoints
// glibc's program_invocation_name at a copy so error messages keep the real name.
// Without it, set_process_title() changes comm only. Errors: ENOMEM.
result<void> init_process_title(int argc, char** argv);

// Sets comm (cut to 15 bytes) and, after init_process_title(), the command line: `title`, cut to
// the size of the original argv+environ block, the rest filled with NULs. Errors: prctl's.
result<void> set_process_title(std::string_view title);

// Sets only comm: for a child that keeps its command line but wants its own short name.
result<void> set_process_comm(std::string_view name);

// ---------------------------------------------------------------------------------------------

namespace detail {
struct process_title_area {
    char* begin = nullptr; // argv[0]
    std::size_t size = 0;  // bytes we may overwrite: argv strings, then contiguous environ ones
    char** environ_copy = nullptr; // the moved environ array (kept: setenv may replace it)
    char* strings = nullptr;       // one block with the moved environment strings and argv[0]
};
inline process_title_area& process_title_state() noexcept {
    static process_title_area area;
    return area;
}
} // namespace detail

inline result<void> init_process_title(int argc, char** argv) {
    auto& area = detail::process_title_state();
    if (area.begin != nullptr || argc <= 0 || argv == nullptr || argv[0] == nullptr) return {};
    // The block is contiguous as long as each string starts right after the previous one.
    char* end = argv[0] + std::strlen(argv[0]) + 1;
    for (int i = 1; i < argc && argv[i] == end; ++i) end = argv[i] + std::strlen(argv[i]) + 1;
    std::size_t env_count = 0, bytes = std::strlen(argv[0]) + 1;
    while (environ != nullptr && environ[env_count] != nullptr)
        bytes += std::strlen(environ[env_count++]) + 1;
    // One block for every string, held by the state: unsetenv() drops pointers from the array,
    // and strings that nothing points to would be leaks.
    auto** moved = new (std::nothrow) char*[env_count + 1];
    char* block = new (std::nothrow) char[bytes];
    if (moved == nullptr || block == nullptr) {
        delete[] moved;
        delete[] block;
        return errno_error(ENOMEM);
    }
    char* next = block;
    for (std::size_t i = 0; i < env_count; ++i) {
        if (environ[i] == end) end = environ[i] + std::strlen(environ[i]) + 1;
        std::size_t n = std::strlen(environ[i]) + 1;
        moved[i] = static_cast<char*>(std::memcpy(next, environ[i], n));
        next += n;
    }
    moved[env_count] = nullptr;
    environ = moved; // the old strings are ours to overwrite from now on
    program_invocation_name =
        static_cast<char*>(std::memcpy(next, argv[0], std::strlen(argv[0]) + 1));
    if (char* slash = std::strrchr(program_invocation_name, '/'))
        program_invocation_short_name = slash + 1;
    else
        program_invocation_short_name = program_invocation_name;
    area.environ_copy = moved;
    area.strings = block;
    area.begin = argv[0];
    area.size = static_cast<std::size_t>(end - argv[0]);
    return {};
}

inline result<void> set_process_comm(std::string_view name) {
    char comm[16] = {}; // TASK_COMM_LEN
    std::memcpy(comm, name.data(), name.size() < 15 ? name.size() : 15);
    if (::prctl(PR_SET_NAME, comm, 0, 0, 0) != 0) return last_error();
    return {};
}

inline result<void> set_process_title(std::string_view title) {
    auto& area = detail::process_title_state();
    if (area.begin != nullptr && area.size > 1) {
        std::size_t n = title.size() < area.size - 1 ? title.size() : area.size - 1;
        std::memcpy(area.begin, title.data(), n);
        // NULs to the end: the kernel then shows exactly the title, and since the byte at the end
        // of the argv part is no longer NUL it reads on into the old environ part (setproctitle).
        std::memset(area.begin + n, 0, area.size - n);
    }
    // comm: the first word's base name, as a process started under that name would have.
    auto word = title.substr(0, title.find(' '));
    if (auto slash = word.rfind('/'); slash != std::string_view::npos)
        word.remove_prefix(slash + 1);
    if (!word.empty() && word.back() == ':') word.remove_suffix(1);
    return set_process_comm(word.empty() ? title : word);
}

} // namespace ringd
