// SPDX-License-Identifier: MIT
// ringd.hpp — everything in ringd, for programs that would rather not pick headers one by one.
// Except ringd/tls.hpp: it needs OpenSSL (headers and -lssl -lcrypto), which a program without TLS
// should not have to pull in; include it yourself when you use it.
#pragma once

#include <ringd/absolute_path.hpp>
#include <ringd/atomic_file.hpp>
#include <ringd/buffer_ring.hpp>
#include <ringd/cli.hpp>
#include <ringd/control.hpp>
#include <ringd/credentials.hpp>
#include <ringd/daemon.hpp>
#include <ringd/daemon_serve.hpp>
#include <ringd/duration_text.hpp>
#include <ringd/event.hpp>
#include <ringd/fd.hpp>
#include <ringd/inherit_listeners.hpp>
#include <ringd/io_context.hpp>
#include <ringd/log.hpp>
#include <ringd/net.hpp>
#include <ringd/notify.hpp>
#include <ringd/open_files_limit.hpp>
#include <ringd/ops.hpp>
#include <ringd/pidfile.hpp>
#include <ringd/plain_stream.hpp>
#include <ringd/process.hpp>
#include <ringd/process_title.hpp>
#include <ringd/program_path.hpp>
#include <ringd/read_file.hpp>
#include <ringd/recv_stream.hpp>
#include <ringd/result.hpp>
#include <ringd/scope.hpp>
#include <ringd/signals.hpp>
#include <ringd/socket_activation.hpp>
#include <ringd/start_order.hpp>
#include <ringd/stream.hpp>
#include <ringd/supervision_state.hpp>
#include <ringd/supervisor.hpp>
#include <ringd/task.hpp>
#include <ringd/timer.hpp>
#include <ringd/version.hpp>
