// ringd.hpp — everything in ringd, for programs that would rather not pick headers one by one.
#pragma once

#include <ringd/control.hpp>
#include <ringd/daemon.hpp>
#include <ringd/fd.hpp>
#include <ringd/io_context.hpp>
#include <ringd/net.hpp>
#include <ringd/notify.hpp>
#include <ringd/ops.hpp>
#include <ringd/pidfile.hpp>
#include <ringd/process_title.hpp>
#include <ringd/result.hpp>
#include <ringd/scope.hpp>
#include <ringd/signals.hpp>
#include <ringd/task.hpp>
#include <ringd/timer.hpp>
