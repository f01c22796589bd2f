// SPDX-License-Identifier: MIT
// title_probe — a process for process_title_test: sets the title given as argv[1], reports that
// the moved environment still reads back, and waits to be looked at (and killed).
#include <ringd/process_title.hpp>

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc < 2) return 64;
    std::string title = argv[1];
    if (!ringd::init_process_title(argc, argv)) return 1;
    if (!ringd::set_process_title(title)) return 2;
    const char* marker = std::getenv("TITLE_PROBE_MARKER");
    std::printf("%s %s\n", marker != nullptr ? marker : "(none)", program_invocation_short_name);
    std::fflush(stdout);
    ::pause();
    return 0;
}
