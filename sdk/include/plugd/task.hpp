// plugd::task: the coroutine type of every asynchronous SDK call.
#pragma once

#include <boost/asio/awaitable.hpp>

namespace plugd {

/// A coroutine returning `T`. Handlers are written as `task<void> handle(...)` and may
/// `co_await` any other `task`, such as `context::sleep_for`.
///
/// It is a Boost.Asio awaitable, so it always resumes on the worker thread that runs the
/// connection. Do not create Asio timers, sockets or other I/O objects in a plugin: their
/// services would live in the plugin's code and crash the server once the plugin is
/// unloaded. Use the facilities of `plugd::context` instead; they are implemented in the core.
template <typename T>
using task = boost::asio::awaitable<T>;

}  // namespace plugd
