// SPDX-License-Identifier: MIT
// ringd/inherit_listeners.hpp — a daemon's listening sockets across restarts: for each address
// it was told to listen on, the socket it inherited for that address (LISTEN_FDS: an upgrade by
// `ringd-control --upgrade`, a supervisor that holds the sockets, systemd), or a new one bound.
//
//     std::vector<ringd::listener> ls = ringd::inherit_or_bind(addresses); // phase one, as root
#pragma once

#include <ringd/net.hpp>
#include <ringd/socket_activation.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace ringd {

// What a restartable daemon binds with: EADDRINUSE is retried for 2 s, because a daemon killed a
// moment ago may still own its listening sockets (the kernel tears its io_uring down
// asynchronously, and a pending accept keeps the socket bound for a few milliseconds).
[[nodiscard]] inline listen_options restart_listen_options() {
    listen_options o;
    o.retry_address_in_use = std::chrono::seconds(2);
    return o;
}

// Takes the listening sockets passed by LISTEN_FDS (activated_listeners(): LISTEN_PID must be
// this process) and returns one listener per address of `addresses`, in that order: the
// inherited socket bound to that address (binding it again would fail, or split the traffic
// between two accept queues), else listener::bind(address, options). An address with port 0
// ("127.0.0.1:0": any port) is satisfied by an inherited socket on the same host, whatever its
// port, so an upgrade can repeat the first start's command line. Each inherited socket serves
// at most one address. Inherited sockets that no address asked for come last: socket activation
// names them in the unit, not on the command line. Throws std::system_error as bind() does
// ("bind 127.0.0.1:80: Permission denied"), or for a bad LISTEN_FDS.
[[nodiscard]] std::vector<listener>
inherit_or_bind(const std::vector<socket_address>& addresses,
                const listen_options& options = restart_listen_options());

// "127.0.0.1:7 /run/x.sock": the listeners' addresses, space-separated (status and titles).
[[nodiscard]] std::string addresses_text(const std::vector<listener>& listeners);

// ---------------------------------------------------------------------------------------------

namespace detail {
// "127.0.0.1:0" → "127.0.0.1": the text form without its port; empty for a UNIX address.
inline std::string inherit_host_of(const socket_address& a) {
    if (a.family() != AF_INET && a.family() != AF_INET6) return {};
    std::string text = a.to_string();
    return text.substr(0, text.rfind(':'));
}
} // namespace detail

inline std::vector<listener> inherit_or_bind(const std::vector<socket_address>& addresses,
                                             const listen_options& options) {
    std::vector<listener> inherited = activated_listeners();
    std::vector<bool> taken(inherited.size(), false);
    std::vector<std::optional<std::size_t>> match(addresses.size());
    // Exact addresses first, so that a port-0 address cannot take a socket named elsewhere.
    for (std::size_t i = 0; i < addresses.size(); ++i)
        for (std::size_t j = 0; j < inherited.size() && !match[i]; ++j)
            if (!taken[j] && inherited[j].address().to_string() == addresses[i].to_string()) {
                match[i] = j;
                taken[j] = true;
            }
    for (std::size_t i = 0; i < addresses.size(); ++i) {
        const std::string host = detail::inherit_host_of(addresses[i]);
        if (match[i] || addresses[i].port() != 0 || host.empty()) continue;
        for (std::size_t j = 0; j < inherited.size() && !match[i]; ++j)
            if (!taken[j] && detail::inherit_host_of(inherited[j].address()) == host) {
                match[i] = j;
                taken[j] = true;
            }
    }
    std::vector<listener> out;
    out.reserve(addresses.size() + inherited.size());
    for (std::size_t i = 0; i < addresses.size(); ++i)
        out.push_back(match[i] ? std::move(inherited[*match[i]])
                               : listener::bind(addresses[i], options));
    for (std::size_t j = 0; j < inherited.size(); ++j)
        if (!taken[j]) out.push_back(std::move(inherited[j]));
    return out;
}

inline std::string addresses_text(const std::vector<listener>& listeners) {
    std::string out;
    for (const auto& l : listeners) out += (out.empty() ? "" : " ") + l.address().to_string();
    return out;
}

} // namespace ringd
