// bench/compare.sh starts real servers (plugd, nginx) for every run: whatever way the script
// ends, none of them may outlive it. The servers are found by their command lines, which name
// the script's scratch folder (TMPDIR here is the test's own folder).
#include <doctest/doctest.h>

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "plugd_process.hpp"
#include "skip_test.hpp"

using namespace plugd::test;

namespace {

const std::filesystem::path build_dir =
    std::filesystem::path{PLUGD_BINARY}.parent_path().parent_path();
const std::string script = PLUGD_SOURCE_DIR "/bench/compare.sh";

// The processes whose command line mentions `dir`, as "pid: command line".
std::vector<std::string> processes_under(const std::filesystem::path& dir) {
    std::vector<std::string> found;
    for (const auto& entry : std::filesystem::directory_iterator{"/proc"}) {
        const std::string pid = entry.path().filename().string();
        if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream in{entry.path() / "cmdline", std::ios::binary};
        std::string cmdline{std::istreambuf_iterator<char>{in}, {}};
        for (char& c : cmdline)
            if (c == '\0') c = ' ';
        if (cmdline.find(dir.string()) != std::string::npos) found.push_back(pid + ": " + cmdline);
    }
    return found;
}

// compare.sh http with plugd and nginx, one round of `seconds`, its scratch folder in `tmp`.
std::vector<std::string> compare_http(const temp_dir& tmp, int seconds) {
    return {"TMPDIR=" + tmp.path().string(),
            "BENCH_ROUNDS=1",
            "BENCH_SECONDS=" + std::to_string(seconds),
            "BENCH_SERVERS=plugd nginx",
            "/bin/bash",
            script,
            "http",
            build_dir.string()};
}

bool bench_built() {
    return std::filesystem::exists(build_dir / "bin/plugd_bench_baseline") &&
           std::filesystem::exists(build_dir / "bin/plugd-bench");
}

bool have_nginx() {
    return std::filesystem::exists("/usr/sbin/nginx");
}

}  // namespace

TEST_CASE("bench/compare.sh stops every server it started: a run to its end") {
    if (!bench_built())
        return skip_test("the benchmarks are not built (configure with -DPLUGD_BUILD_BENCH=ON)");
    if (!have_nginx()) return skip_test("nginx is not installed (apt-get install nginx)");
    temp_dir tmp;
    const run_result r = run_program("/usr/bin/env", compare_http(tmp, 1), 120s);
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK(r.output.find("| plugd") != std::string::npos);  // it did run the servers
    const auto left = processes_under(tmp.path());
    INFO(left.size() << " left, the first: " << (left.empty() ? "" : left.front()));
    CHECK(left.empty());
}

TEST_CASE("bench/compare.sh stops every server it started: stopped by a signal, or killed") {
    if (!bench_built())
        return skip_test("the benchmarks are not built (configure with -DPLUGD_BUILD_BENCH=ON)");
    if (!have_nginx()) return skip_test("nginx is not installed (apt-get install nginx)");
    for (const int signo : {SIGTERM, SIGINT, SIGKILL}) {
        CAPTURE(signo);
        temp_dir tmp;
        plugd_process bench{"/usr/bin/env", compare_http(tmp, 3)};
        // A server is up once a run's line names it; the script is then mid-run.
        REQUIRE_MESSAGE(bench.wait_for_log("round 1:", 60s), bench.log());
        bool running = false;
        for (int i = 0; i < 200 && !running; ++i) {  // the server it starts for that run
            running = !processes_under(tmp.path()).empty();
            if (!running) std::this_thread::sleep_for(50ms);  // (no event to wait on)
        }
        REQUIRE(running);
        bench.signal(signo);
        // bash runs a trap once its foreground command (a 3 s load run) has ended.
        bench.wait_exit(60s);
        std::vector<std::string> left = processes_under(tmp.path());
        // A killed script leaves its servers the kernel's SIGTERM, which they take a moment
        // to act on.
        for (int i = 0; i < 100 && !left.empty(); ++i) {
            std::this_thread::sleep_for(50ms);
            left = processes_under(tmp.path());
        }
        INFO(left.size() << " left, the first: " << (left.empty() ? "" : left.front()));
        CHECK(left.empty());
    }
}
