// offload: awaiting a job on the offload pool from a serving thread's coroutine.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <string>

#include "host/offload_pool.hpp"
#include "host/version_lease.hpp"

namespace plugd {

/// Queues `job` on `pool` and suspends the calling coroutine until it has returned; resumes
/// on the caller's own executor. The job holds `lease` until it has returned and its
/// captures are destroyed, so the plugin stays loaded even when the caller stops waiting.
///
/// Cancellation (request timeout, reload drain, shutdown) ends the wait at once with
/// `operation_aborted`; the job itself runs to completion and its result is dropped.
/// Throws plugd::busy, naming `owner` and the limit, when the queue is full.
boost::asio::awaitable<void> run_offloaded(offload_pool& pool, std::function<void()> job,
                                           version_lease lease, const std::string& owner);

}  // namespace plugd
