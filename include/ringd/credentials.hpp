// SPDX-License-Identifier: MIT
// ringd/credentials.hpp — who a process runs as: a user and group resolved to ids (with the
// user's supplementary groups), and the switch to them. One lookup for every place that takes a
// user: a daemon's --user (daemon_params), a supervised service's `user =`, spawn()'s run_as.
// A user or group is a name, a number ("65534") or a number marked as one ("#65534", for names
// that are all digits).
#pragma once

#include <ringd/result.hpp>

#include <grp.h>
#include <pwd.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace ringd {

struct credentials {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups; // supplementary groups
};

// Resolves a user and a group (empty: the user's primary group) to ids, with the user's
// supplementary groups (just the group for a number without a passwd entry).
// Error: "unknown user 'bob'", "unknown group 'staff'".
[[nodiscard]] expected<credentials, std::string> lookup_credentials(std::string_view user,
                                                                    std::string_view group = {});
// A group alone. Error: "unknown group 'staff'".
[[nodiscard]] expected<gid_t, std::string> lookup_group(std::string_view group);

// Becomes `c` for good: supplementary groups, gid, uid, then proves that root cannot be
// regained. Nothing to do when this process has those ids already; else it needs root.
// Error: the step and errno's text ("setuid: Operation not permitted").
[[nodiscard]] expected<void, std::string> drop_privileges(const credentials& c);

// ---------------------------------------------------------------------------------------------

namespace detail {

// "65534" or "#65534" → 65534; nullopt for a name.
inline std::optional<unsigned> credentials_number(std::string_view text) {
    if (text.starts_with('#')) text.remove_prefix(1);
    unsigned v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return v;
}

inline std::string credentials_errno_text(const char* step) {
    return std::string(step) + ": " + errno_text(errno);
}

} // namespace detail

inline expected<gid_t, std::string> lookup_group(std::string_view group) {
    if (auto id = detail::credentials_number(group)) return static_cast<gid_t>(*id);
    std::string name(group);
    struct ::group gr {};
    struct ::group* found = nullptr;
    std::vector<char> buf(16384);
    if (::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || found == nullptr)
        return unexpected<std::string>("unknown group '" + name + "'");
    return found->gr_gid;
}

inline expected<credentials, std::string> lookup_credentials(std::string_view user,
                                                             std::string_view group) {
    credentials c;
    std::string name(user);
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    if (auto id = detail::credentials_number(user)) {
        ::getpwuid_r(*id, &pw, buf.data(), buf.size(), &found);
        c.uid = *id;
        c.gid = found != nullptr ? found->pw_gid : *id;
        if (found != nullptr) name = found->pw_name;
    } else {
        if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 ||
            found == nullptr)
            return unexpected<std::string>("unknown user '" + name + "'");
        c.uid = found->pw_uid;
        c.gid = found->pw_gid;
    }
    if (!group.empty()) {
        auto gid = lookup_group(group);
        if (!gid) return unexpected<std::string>(gid.error());
        c.gid = *gid;
    }
    if (found != nullptr) {
        int count = 64;
        c.groups.resize(static_cast<std::size_t>(count));
        if (::getgrouplist(name.c_str(), c.gid, c.groups.data(), &count) < 0) {
            c.groups.resize(static_cast<std::size_t>(count));
            ::getgrouplist(name.c_str(), c.gid, c.groups.data(), &count);
        }
        c.groups.resize(static_cast<std::size_t>(count));
    } else {
        c.groups = {c.gid};
    }
    return c;
}

inline expected<void, std::string> drop_privileges(const credentials& c) {
    if (::getuid() == c.uid && ::geteuid() == c.uid && ::getgid() == c.gid && ::getegid() == c.gid)
        return {};
    if (::geteuid() != 0) {
        errno = EPERM;
        return unexpected<std::string>(detail::credentials_errno_text("setuid") + " (not root)");
    }
    if (::setgroups(c.groups.size(), c.groups.data()) != 0)
        return unexpected<std::string>(detail::credentials_errno_text("setgroups"));
    if (::setgid(c.gid) != 0)
        return unexpected<std::string>(detail::credentials_errno_text("setgid"));
    if (::setuid(c.uid) != 0)
        return unexpected<std::string>(detail::credentials_errno_text("setuid"));
    if (::getuid() != c.uid || ::geteuid() != c.uid || ::getgid() != c.gid || ::getegid() != c.gid)
        return unexpected<std::string>("the ids did not change as asked");
    if (c.uid != 0 && (::setuid(0) == 0 || ::seteuid(0) == 0))
        return unexpected<std::string>("root could be regained after setuid");
    return {};
}

} // namespace ringd
