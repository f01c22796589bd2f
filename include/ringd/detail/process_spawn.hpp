// SPDX-License-Identifier: MIT
// ringd/detail/process_spawn.hpp — spawn() and resolve_program() (process.hpp): the program
// looked up in the child's PATH, its environment, the plan the child follows
// (detail/process_child.hpp) and the report of the step that failed.
#pragma once

#include <ringd/process.hpp>

namespace ringd {

namespace detail {

// The path execve gets: argv[0] itself if it holds a '/', else the first executable file of
// that name in PATH (from the child's environment, else the default).
inline expected<std::string, spawn_error>
process_resolve_program(const std::string& program, const std::vector<std::string>& env) {
    if (program.find('/') != std::string::npos) return program;
    std::string path = "/usr/local/bin:/usr/bin:/bin";
    for (const std::string& e : env)
        if (e.starts_with("PATH=")) path = e.substr(5);
    std::string first_found;
    for (std::size_t start = 0; start <= path.size();) {
        std::size_t colon = path.find(':', start);
        if (colon == std::string::npos) colon = path.size();
        std::string dir = path.substr(start, colon - start);
        start = colon + 1;
        std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + program;
        struct stat st {};
        if (::stat(candidate.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
        if (first_found.empty()) first_found = candidate; // exists, not executable: EACCES later
    }
    if (!first_found.empty()) return first_found;
    return unexpected<spawn_error>(
        spawn_error{std::make_error_code(std::errc::no_such_file_or_directory), "execve " + program,
                    "not found in PATH " + path});
}

inline std::vector<std::string> process_environment(const spawn_options& o) {
    std::vector<std::string> env;
    if (o.inherit_environment)
        for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
    for (const std::string& kv : o.environment) {
        const std::string_view key = std::string_view(kv).substr(0, kv.find('=') + 1);
        std::erase_if(env, [&](const std::string& e) { return e.starts_with(key); });
        env.push_back(kv);
    }
    return env;
}

inline std::string process_child_step_what(process_child_step step, const spawn_options& o,
                                           const std::string& program, const std::string& log) {
    switch (step) {
    case process_child_step::process_group:
        return o.group == process_group::own_session ? "setsid" : "setpgid";
    case process_child_step::stdin_null:
        return "open /dev/null";
    case process_child_step::log_file:
        return "open log file " + log;
    case process_child_step::stdio:
        return "dup2 stdio";
    case process_child_step::descriptors:
        return "pass descriptors";
    case process_child_step::cwd:
        return "chdir " + o.cwd;
    case process_child_step::groups:
        return "setgroups";
    case process_child_step::gid:
        return "setresgid";
    case process_child_step::uid:
        return "setresuid";
    case process_child_step::exec:
        return "execve " + program;
    case process_child_step::none:
        break;
    }
    return "spawn";
}

// A close-on-exec descriptor numbered ≥ 3, so that the child's dup2 onto 0..2 cannot hit it.
inline int process_above_stdio(int fd) noexcept {
    if (fd < 0 || fd > 2) return fd;
    const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    ::close(fd);
    return moved;
}

} // namespace detail

inline expected<std::string, spawn_error> resolve_program(const spawn_options& o) {
    if (o.argv.empty() || o.argv[0].empty())
        return unexpected<spawn_error>(spawn_error{
            std::make_error_code(std::errc::invalid_argument), "spawn", "no program to run"});
    return detail::process_resolve_program(o.argv[0], detail::process_environment(o));
}

inline expected<process, spawn_error> spawn(const spawn_options& o) {
    auto bad = [](std::string detail) {
        return unexpected<spawn_error>(spawn_error{
            std::make_error_code(std::errc::invalid_argument), "spawn", std::move(detail)});
    };
    auto failed = [](int e, std::string what) {
        return unexpected<spawn_error>(
            spawn_error{{e, std::system_category()}, std::move(what), {}});
    };
    if (o.argv.empty() || o.argv[0].empty()) return bad("no program to run (argv is empty)");
    if (o.descriptors.size() + o.listen_fds.size() > 16)
        return bad("more than 16 descriptors to pass");
    std::vector<int> sources, targets;
    const int listen_end = 3 + static_cast<int>(o.listen_fds.size());
    std::string listen_names;
    for (const listen_fd& l : o.listen_fds) {
        if (l.name.find_first_of(":\n") != std::string::npos)
            return bad("listening socket name '" + l.name + "' contains ':' or a newline");
        listen_names += (listen_names.empty() ? "" : ":") + l.name;
        sources.push_back(l.fd.get());
        targets.push_back(3 + static_cast<int>(targets.size()));
    }
    for (const fd_mapping& m : o.descriptors) {
        if (m.target < 3 || m.target > 63)
            return bad("descriptor target " + std::to_string(m.target) + " is not in 3..63");
        if (m.target < listen_end)
            return bad("descriptor target " + std::to_string(m.target) +
                       " is taken by a listening socket (3.." + std::to_string(listen_end - 1) +
                       ")");
        for (int t : targets)
            if (t == m.target)
                return bad("descriptor target " + std::to_string(t) + " given twice");
        sources.push_back(m.source.get());
        targets.push_back(m.target);
    }
    if (o.log_dir.empty() != o.log_name.empty()) return bad("log_dir and log_name go together");
    if (!o.log_dir.empty() && (o.stdout_to.get() >= 0 || o.stderr_to.get() >= 0))
        return bad("log_dir and stdout_to/stderr_to exclude each other");
    if (o.log_name.find('/') != std::string::npos)
        return bad("log name '" + o.log_name + "' contains '/'");

    // Everything the child needs is prepared here: it may not allocate.
    std::vector<std::string> env = detail::process_environment(o);
    auto program = detail::process_resolve_program(o.argv[0], env);
    if (!program) return unexpected<spawn_error>(program.error());
    if (!o.listen_fds.empty()) {
        std::erase_if(env, [](const std::string& e) {
            return e.starts_with("LISTEN_PID=") || e.starts_with("LISTEN_FDS=") ||
                   e.starts_with("LISTEN_FDNAMES=");
        });
        env.push_back("LISTEN_FDS=" + std::to_string(o.listen_fds.size()));
        env.push_back("LISTEN_FDNAMES=" + listen_names);
        env.push_back("LISTEN_PID=" + std::string(24, '\0')); // the child writes its pid here
    }
    std::vector<char*> argv, envp;
    for (const std::string& a : o.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string log_buffer;
    if (!o.log_dir.empty()) {
        log_buffer = o.log_dir + "/" + o.log_name + ".";
        log_buffer.append(24, '\0'); // room for the pid
    }
    const std::size_t log_prefix = log_buffer.empty() ? 0 : log_buffer.size() - 24;

    detail::process_child_plan plan;
    plan.path = program->c_str();
    plan.argv = argv.data();
    plan.envp = envp.data();
    plan.cwd = o.cwd.empty() ? nullptr : o.cwd.c_str();
    plan.group_mode = static_cast<int>(o.group);
    plan.log_path = log_buffer.empty() ? nullptr : log_buffer.data();
    plan.log_prefix = log_prefix;
    plan.log_capacity = log_buffer.size();
    plan.stdout_fd = o.stdout_to.get();
    plan.stderr_fd = o.stderr_to.get();
    if (o.run_as) {
        plan.set_ids = true;
        plan.uid = o.run_as->uid;
        plan.gid = o.run_as->gid;
        plan.groups = o.run_as->groups.data();
        plan.group_count = o.run_as->groups.size();
    }
    plan.fd_sources = sources.data();
    plan.fd_targets = targets.data();
    plan.fd_count = sources.size();
    if (!o.listen_fds.empty()) plan.listen_pid_digits = env.back().data() + 11;

    // The child reports a failure before execve in `failure` (shared memory), or through a
    // close-on-exec pipe when it was forked.
    detail::process_child_failure failure;
    int pidfd = -1;
    long pid = -1;
    bool forked = !o.share_memory_until_exec;
    if (!forked) {
        plan.shared_failure = &failure;
        pid = detail::process_start_child(plan, &pidfd);
        // No CLONE_PIDFD (< 5.2), or clone refused by a seccomp filter: fork instead.
        forked = pid < 0 && (errno == EINVAL || errno == ENOSYS || errno == EPERM);
    }
    unique_fd status_read;
    if (forked) {
        int pipe_fds[2];
        if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return failed(errno, "pipe2");
        status_read.reset(detail::process_above_stdio(pipe_fds[0]));
        unique_fd status_write(detail::process_above_stdio(pipe_fds[1]));
        if (!status_read || !status_write) return failed(errno, "fcntl F_DUPFD_CLOEXEC");
        plan.shared_failure = nullptr;
        plan.status_fd = status_write.get();
        pid = ::fork();
        if (pid == 0) detail::process_child_main(plan);
    }
    if (pid < 0) return failed(errno, forked ? "fork" : "clone");

    process p;
    p.pid_ = static_cast<pid_t>(pid);
    p.is_child_ = true;
    p.leads_group_ = o.group != process_group::inherit;
    int pidfd_error = 0;
    bool child_failed = failure.step != 0;
    if (forked) {
        // Our unreaped child cannot vanish or be recycled, so this names the right process.
        pidfd = detail::process_pidfd_open(p.pid_);
        if (pidfd < 0) pidfd_error = errno;
        std::size_t got = 0;
        while (got < sizeof failure) {
            ssize_t n = ::read(status_read.get(), reinterpret_cast<char*>(&failure) + got,
                               sizeof failure - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        child_failed = got == sizeof failure;
    }
    p.pidfd_.reset(pidfd);

    if (child_failed || pidfd_error != 0) {
        // The child failed before execve (it _exits at once), or we cannot name it: reap it.
        if (pidfd_error != 0) ::kill(p.pid_, SIGKILL);
        siginfo_t si{};
        while (::waitid(P_PID, static_cast<id_t>(p.pid_), &si, WEXITED) != 0 && errno == EINTR) {
        }
        if (pidfd_error != 0) return failed(pidfd_error, "pidfd_open");
        std::string log(log_buffer.c_str());
        if (!log.empty()) log = o.log_dir + "/" + o.log_name + "." + std::to_string(p.pid_);
        return failed(failure.error,
                      detail::process_child_step_what(
                          static_cast<detail::process_child_step>(failure.step), o, *program, log));
    }
    if (!log_buffer.empty())
        p.log_path_ = o.log_dir + "/" + o.log_name + "." + std::to_string(p.pid_);
    // An unreaped child's /proc entry stays, even once it has ended.
    if (auto st = detail::read_process_stat(p.pid_)) p.start_time_ = st->start_time;
    return p;
}

} // namespace ringd
