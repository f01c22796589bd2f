// SPDX-License-Identifier: MIT
// ringd/cli.hpp — the command line of a daemon or tool: an option table in, the values set and
// the operands out, with one set of conventions for every ringd program.
//
//     std::string config;
//     bool foreground = false;
//     auto args = ringd::cli::parse({"xferrd", help_text}, argc, argv,
//                                   {ringd::cli::value("config", 'c', "FILE", config),
//                                    ringd::cli::flag("foreground", foreground)});
//     if (!args) return args.error(); // --help, --version, or a usage error already printed
//
// The conventions (GNU getopt_long's):
// - `--name=value` and `--name value`; `-c value`, `-cvalue`, and clustered flags (`-ic`);
//   an unambiguous abbreviation of a long name (`--fore`) is that option.
// - Options and operands may mix (`xferctl status --json -c FILE`), unless the program has
//   subcommands with options of their own (stop_at_operand: parsing stops at the first operand).
// - `--` ends the options: what follows is `arguments::command`, never parsed (a daemon's argv).
// - `--help` and `-h` print the program's help on stdout, `--version` prints
//   "NAME (ringd) VERSION" (print_version); both then end the program with 0.
// - A usage error prints one line on stderr that names the option and points to --help —
//   "NAME: unknown option '--bogus' (try NAME --help)", "NAME: option --config needs a value
//   (try ...)", "NAME: --timeout 'x': not a number of seconds (try ...)" (one line: a journal or
//   a cluster manager's log keeps it whole) — and the program exits with its usage status
//   (64, EX_USAGE, for daemons, so that a supervisor does not restart them; the control tools keep
//   1, which their callers already test for). An empty value is a missing one.
//
// Why getopt_long and not CLI11 (libcli11-dev 2.1.2): the programs keep their hand-written help
// texts, messages and exit statuses, which scripts and tests rely on and which CLI11 replaces with
// its own formatter and wording; getopt_long is glibc's, so this installed header adds no
// dependency for users and no compile time to each program (CLI11 is a 9,000-line header); and
// its behaviour (abbreviations, --opt=value, --, mixed operands) is what users of GNU tools expect.
// What getopt_long lacks — the table, messages that name the option, value checks, operands
// after `--` kept apart — is the little below. Not thread-safe (getopt's state is global): parse
// once, at the start of main.
#pragma once

#include <ringd/result.hpp>
#include <ringd/version.hpp>

#include <getopt.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace ringd::cli {

// One option. `set` receives the value ("" for a flag) and answers why it is refused ("" to
// accept): the message becomes "NAME: --opt 'value': <why>".
struct option {
    std::string name;       // long name without "--" ("pid-file"); empty: short only
    char letter = 0;        // short name ('c'), 0: long only
    std::string value_name; // "FILE" when it takes a value; empty: a flag
    std::function<std::string(const std::string&)> set;
    bool required = false; // missing: "option --config FILE is required"
};

// A flag: sets `target` to true, or calls `on` (which may refuse, e.g. a second action).
[[nodiscard]] option flag(std::string name, bool& target, char letter = 0);
[[nodiscard]] option flag(std::string name, char letter, std::function<std::string()> on);
// An option with a value stored as given.
[[nodiscard]] option value(std::string name, char letter, std::string value_name,
                           std::string& target);
[[nodiscard]] option value(std::string name, char letter, std::string value_name,
                           std::optional<std::string>& target);
// An option whose value `check` converts and stores, or refuses with the reason.
[[nodiscard]] option value(std::string name, char letter, std::string value_name,
                           std::function<std::string(const std::string&)> check);

// The same option, which must be given.
[[nodiscard]] option required(option o);

// The whole text as a number of type T (from_chars: no sign "+", no spaces), or nothing.
template <class T>
[[nodiscard]] std::optional<T> number(std::string_view text);

struct program {
    std::string name;             // in messages and --version ("xferctl")
    std::string help;             // what --help prints
    int usage_exit = 64;          // the exit status for a usage error (EX_USAGE)
    bool operands = false;        // it takes operands (else: "unexpected argument 'X'")
    bool command = false;         // it takes "-- CMD ARGS" (else: "unexpected argument 'CMD'")
    bool stop_at_operand = false; // subcommands: the first operand and all after it are operands
};

struct arguments {
    std::vector<std::string> operands; // the arguments that are not options (before any "--")
    bool dashes = false;               // "--" was given
    std::vector<std::string> command;  // what followed "--"
    std::vector<std::string> given;    // each option given, as "--name" (or "-x"), in order
};

// Parses argv[1..argc) against `options` (plus --help, -h and --version). The error is the status
// the program should exit with now: 0 after --help or --version (printed), `usage_exit` after a
// usage error (printed on stderr).
[[nodiscard]] expected<arguments, int> parse(const program& p, int argc, char** argv,
                                             const std::vector<option>& options);

// Prints "NAME: WHY (try NAME --help)" on stderr; returns the usage exit status. For errors
// found after parsing ("-c FILE is required").
int usage_error(const program& p, const std::string& why);

// =============================================================================================
// Implementation

inline option required(option o) {
    o.required = true;
    return o;
}

inline option flag(std::string name, bool& target, char letter) {
    return {std::move(name), letter, {}, [&target](const std::string&) {
                target = true;
                return std::string();
            }};
}

inline option flag(std::string name, char letter, std::function<std::string()> on) {
    return {std::move(name), letter, {}, [on = std::move(on)](const std::string&) { return on(); }};
}

inline option value(std::string name, char letter, std::string value_name, std::string& target) {
    return {std::move(name), letter, std::move(value_name), [&target](const std::string& v) {
                target = v;
                return std::string();
            }};
}

inline option value(std::string name, char letter, std::string value_name,
                    std::optional<std::string>& target) {
    return {std::move(name), letter, std::move(value_name), [&target](const std::string& v) {
                target = v;
                return std::string();
            }};
}

inline option value(std::string name, char letter, std::string value_name,
                    std::function<std::string(const std::string&)> check) {
    return {std::move(name), letter, std::move(value_name), std::move(check)};
}

template <class T>
inline std::optional<T> number(std::string_view text) {
    T v{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return v;
}

inline int usage_error(const program& p, const std::string& why) {
    std::fprintf(stderr, "%s: %s (try %s --help)\n", p.name.c_str(), why.c_str(), p.name.c_str());
    return p.usage_exit;
}

namespace detail {

// How an option is named in messages: its long name, else its letter.
inline std::string cli_option_name(const option& o) {
    return o.name.empty() ? std::string{'-', o.letter} : "--" + o.name;
}

} // namespace detail

inline expected<arguments, int> parse(const program& p, int argc, char** argv,
                                      const std::vector<option>& options) {
    // getopt_long's tables: long options answer 256 + their index, short ones their letter.
    constexpr int help_code = -2, version_code = -3, first_long = 256;
    std::vector<::option> longs;
    std::string shorts = "+:h"; // '+': operands are collected below; ':': report missing values
    for (std::size_t i = 0; i < options.size(); ++i) {
        const option& o = options[i];
        const int has_arg = o.value_name.empty() ? no_argument : required_argument;
        if (!o.name.empty())
            longs.push_back({o.name.c_str(), has_arg, nullptr, first_long + static_cast<int>(i)});
        if (o.letter != 0) shorts += std::string(1, o.letter) + (has_arg ? ":" : "");
    }
    const int help_long = first_long + static_cast<int>(options.size());
    longs.push_back({"help", no_argument, nullptr, help_long});
    longs.push_back({"version", no_argument, nullptr, help_long + 1});
    longs.push_back({nullptr, 0, nullptr, 0});
    auto find = [&](int code) -> const option* {
        if (code >= first_long && code < help_long)
            return &options[static_cast<std::size_t>(code - first_long)];
        for (const option& o : options)
            if (o.letter != 0 && o.letter == code) return &o;
        return nullptr;
    };
    auto fail = [&](const std::string& why) { return unexpected<int>(usage_error(p, why)); };

    arguments out;
    ::optind = 0; // a full re-initialisation (glibc), should anything have parsed before
    ::opterr = 0; // the messages are ours
    for (;;) {
        const int at = ::optind == 0 ? 1 : ::optind; // the element getopt looks at next
        int code = ::getopt_long(argc, argv, shorts.c_str(), longs.data(), nullptr);
        if (code == 'h' || code == help_long) code = help_code;
        if (code == help_long + 1) code = version_code;
        if (code == help_code) {
            std::fputs(p.help.c_str(), stdout);
            return unexpected<int>(0);
        }
        if (code == version_code) {
            print_version(p.name.c_str());
            return unexpected<int>(0);
        }
        if (code == -1) {
            if (::optind == at + 1 && std::strcmp(argv[at], "--") == 0) { // "--" ends the options
                out.dashes = true;
                out.command.assign(argv + ::optind, argv + argc);
                break;
            }
            if (::optind >= argc) break;
            if (p.stop_at_operand) {
                out.operands.assign(argv + ::optind, argv + argc);
                break;
            }
            out.operands.emplace_back(argv[::optind++]); // an operand among the options
            continue;
        }
        if (code == ':') {
            const option* o = find(::optopt);
            return fail("option " + (o ? detail::cli_option_name(*o) : std::string("?")) +
                        " needs a value");
        }
        if (code == '?') {
            if (::optopt >= first_long) { // a flag given a value: --foreground=yes
                const option* o = find(::optopt);
                return fail("option " +
                            (o != nullptr            ? detail::cli_option_name(*o)
                             : ::optopt == help_long ? std::string("--help")
                                                     : std::string("--version")) +
                            " takes no value");
            }
            if (::optopt != 0)
                return fail("unknown option '-" + std::string(1, static_cast<char>(::optopt)) +
                            "'");
            std::string given = argv[::optind - 1];
            given = given.substr(0, given.find('='));
            std::string matches; // ambiguous abbreviations also end here
            for (const option& o : options)
                if (!o.name.empty() && given.size() > 2 && ("--" + o.name).starts_with(given))
                    matches += (matches.empty() ? "" : ", ") + ("--" + o.name);
            if (matches.find(',') != std::string::npos)
                return fail("option '" + given + "' is ambiguous (" + matches + ")");
            return fail("unknown option '" + given + "'");
        }
        const option* o = find(code);
        if (o == nullptr) return fail("unknown option"); // not reached: getopt knows only ours
        const std::string value = ::optarg != nullptr ? ::optarg : "";
        if (!o->value_name.empty() && value.empty())
            return fail("option " + detail::cli_option_name(*o) + " needs a value");
        out.given.push_back(detail::cli_option_name(*o));
        if (std::string why = o->set(value); !why.empty())
            return fail(o->value_name.empty()
                            ? detail::cli_option_name(*o) + ": " + why
                            : detail::cli_option_name(*o) + " '" + value + "': " + why);
    }
    if (!out.operands.empty() && !p.operands)
        return fail("unexpected argument '" + out.operands.front() + "'");
    if (!out.command.empty() && !p.command)
        return fail("unexpected argument '" + out.command.front() + "'");
    for (const option& o : options)
        if (o.required && std::find(out.given.begin(), out.given.end(),
                                    detail::cli_option_name(o)) == out.given.end())
            return fail("option " + detail::cli_option_name(o) + " " + o.value_name +
                        " is required");
    return out;
}

} // namespace ringd::cli
