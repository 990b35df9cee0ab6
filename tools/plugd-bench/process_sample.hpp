// process_sample: a server process's CPU time and resident memory, read from /proc, for
// load generators that run on the server's machine (plugd-bench, bench/tls_client.cpp).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>

namespace plugd::bench {

struct process_sample {
    double cpu_seconds = 0;     ///< user + system time of every thread so far
    std::uint64_t rss_kib = 0;  ///< VmRSS
};

/// The process's sample now; nothing when /proc has no such process (or cannot be read).
inline std::optional<process_sample> sample_process(int pid) {
    std::ifstream stat{"/proc/" + std::to_string(pid) + "/stat"};
    std::string text{std::istreambuf_iterator<char>{stat}, {}};
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    const auto paren = text.rfind(')');
    if (paren == std::string::npos) return std::nullopt;
    std::istringstream fields{text.substr(paren + 1)};
    std::string field;
    unsigned long long utime = 0, stime = 0;
    // After ')': state is field 3; utime and stime are fields 14 and 15.
    for (int i = 3; i <= 15 && fields >> field; ++i) {
        if (i == 14) utime = std::stoull(field);
        if (i == 15) stime = std::stoull(field);
    }
    process_sample s;
    s.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
    std::ifstream status{"/proc/" + std::to_string(pid) + "/status"};
    for (std::string line; std::getline(status, line);) {
        if (line.starts_with("VmRSS:")) {
            s.rss_kib = std::stoull(line.substr(6));
            return s;
        }
    }
    return std::nullopt;
}

}  // namespace plugd::bench
