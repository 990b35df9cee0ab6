// warm_up: one exchange with the server before its memory is first sampled, on a connection
// of its own. What a server spends once (code paged in on first use, first allocations,
// per-thread caches) is then not divided among the connections a run opens: the figure per
// connection is what one more connection costs. Every server a bench compares gets the same.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "process_sample.hpp"

namespace plugd::bench {

/// Sends `request` on a new connection to `endpoints` and reads until `complete(what was
/// read)` says the reply is whole (or, with `until_close`, until the server closes), then
/// closes. Waits at most `timeout_s` for each read. Returns what went wrong, or "".
inline std::string warm_up_exchange(const boost::asio::ip::tcp::resolver::results_type& endpoints,
                                    std::string_view request,
                                    const std::function<bool(std::string_view)>& complete,
                                    bool until_close, double timeout_s) {
    namespace asio = boost::asio;
    asio::io_context io{1};
    asio::ip::tcp::socket s{io};
    boost::system::error_code ec;
    asio::connect(s, endpoints, ec);
    if (ec) return "cannot connect: " + ec.message();
    timeval limit{};
    limit.tv_sec = static_cast<time_t>(timeout_s);
    limit.tv_usec = static_cast<suseconds_t>((timeout_s - std::floor(timeout_s)) * 1e6);
    setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    asio::write(s, asio::buffer(request), ec);
    if (ec) return "cannot send: " + ec.message();
    std::string in;
    char buffer[4096];
    for (;;) {
        // (recv itself: Asio's blocking read would wait on past SO_RCVTIMEO's timeout.)
        const ssize_t n = ::recv(s.native_handle(), buffer, sizeof buffer, 0);
        if (n == 0 && until_close) return "";
        if (n <= 0) {
            const std::string why = n == 0 ? "the server closed" : std::strerror(errno);
            return "no whole reply (" + why + ") after " + std::to_string(in.size()) + " bytes";
        }
        in.append(buffer, static_cast<std::size_t>(n));
        if (!until_close && complete(in)) return "";
    }
}

/// The process's sample once it has gone quiet: its CPU time unchanged over 200 ms, at most
/// 5 s of waiting. What its connections hold at rest, not what it was doing a moment ago.
inline std::optional<process_sample> settled_sample(int pid) {
    auto last = sample_process(pid);
    for (int i = 0; last && i < 25; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds{200});
        auto now = sample_process(pid);
        if (!now || now->cpu_seconds == last->cpu_seconds) return now;
        last = now;
    }
    return last;
}

}  // namespace plugd::bench
