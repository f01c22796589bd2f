// SPDX-License-Identifier: MIT
// Privileges (docs/lifecycle/06-security.md): bind as root, then let daemon_run drop to an
// unprivileged user, and check in the body that the drop happened and cannot be undone.
// Built and run as a test; it needs root and the user `nobody` (skipped, exit 77, otherwise).
#include <ringd/daemon.hpp>
#include <ringd/net.hpp>

#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

// [verify]
// What the body can check about itself once daemon_run has dropped privileges: every id is the
// target user's, root's group is gone, setuid(0) fails, and no capability is left.
bool privileges_dropped(uid_t uid, gid_t gid) {
    gid_t groups[64];
    const int n = ::getgroups(64, groups);
    for (int i = 0; i < n; ++i)
        if (groups[i] == 0) return false;
    if (::getuid() != uid || ::geteuid() != uid || ::getgid() != gid || ::getegid() != gid)
        return false;
    if (::setuid(0) == 0 || ::seteuid(0) == 0) return false;
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.starts_with("CapEff:") || line.starts_with("CapPrm:"))
            if (line.find_first_not_of("0\t ", 7) != std::string::npos) return false;
    return true;
}
// [/verify]

int main() {
    passwd* nobody = ::getpwnam("nobody");
    if (::geteuid() != 0 || nobody == nullptr) {
        std::printf("privileges: skipped (needs root and the user nobody)\n");
        return 77;
    }
    const uid_t uid = nobody->pw_uid;
    const gid_t gid = nobody->pw_gid;
    // [order]
    ringd::daemon_params params;
    params.program = "privd";
    params.user = "nobody"; // resolved now (an unknown user is exit 78 before anything starts)
    params.flags.foreground = true;
    auto start = ringd::daemon_init(params);
    if (!start) return start.error().exit_code;
    // Still root: a port below 1024 would bind here. The socket stays open after the drop.
    auto l = ringd::listener::bind(*ringd::socket_address::parse("127.0.0.1:0"));
    return ringd::daemon_run(std::move(*start), [&](ringd::daemon_context&) -> ringd::task<int> {
        // The final process: setgroups, setgid, setuid done and verified.
        co_return privileges_dropped(uid, gid) && l.fd().get() >= 0 ? 0 : 1;
    });
    // [/order]
}
