// examples/redis-lookup, built against the installed SDK, against Debian's redis-server
// started here on a free loopback port: plain, and over TLS with certificates the openssl
// command makes here.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "plugd_process.hpp"
#include "redis_server.hpp"
#include "skip_test.hpp"

extern char** environ;

using namespace plugd::test;

namespace {

// Runs `command` (a shell line) in `dir`; fails the test when it fails.
void run_in(const std::filesystem::path& dir, const std::string& command) {
    const std::string line = "cd '" + dir.string() + "' && " + command + " 2>>openssl.log";
    INFO("command: " << line);
    REQUIRE(std::system(line.c_str()) == 0);
}

bool have_openssl() {
    return std::system("openssl version >/dev/null 2>&1") == 0;
}

// A CA (<ca>.pem, <ca>.key) made in `dir` with the openssl command: ECDSA P-256, one day.
void make_ca(const std::filesystem::path& dir, const std::string& ca) {
    run_in(dir, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " +
                    ca + ".key -out " + ca + ".pem -days 1 -subj /CN=" + ca + " >/dev/null");
}

// <name>.pem and <name>.key signed by `ca`, naming `subject_alt_names`
// ("DNS:localhost,IP:127.0.0.1").
void make_certificate(const std::filesystem::path& dir, const std::string& ca,
                      const std::string& name, const std::string& subject_alt_names) {
    std::ofstream{dir / (name + ".ext")} << "subjectAltName=" << subject_alt_names << "\n";
    run_in(dir, "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + name +
                    ".key -out " + name + ".csr -subj /CN=" + name + " >/dev/null");
    run_in(dir, "openssl x509 -req -in " + name + ".csr -CA " + ca + ".pem -CAkey " + ca +
                    ".key -CAcreateserial -days 1 -extfile " + name + ".ext -out " + name +
                    ".pem >/dev/null");
}

// The arguments that open a TLS port beside the plain one (the test's own commands use
// the plain port): `certificate` (<name>.pem, <name>.key) in `dir`, client certificates
// verified against `ca` and required when `require_clients`.
std::vector<std::string> tls_port_arguments(const std::filesystem::path& dir,
                                            std::uint16_t tls_port, const std::string& certificate,
                                            const std::string& ca, bool require_clients) {
    return {"--tls-port",         std::to_string(tls_port),
            "--tls-cert-file",    (dir / (certificate + ".pem")).string(),
            "--tls-key-file",     (dir / (certificate + ".key")).string(),
            "--tls-ca-cert-file", (dir / (ca + ".pem")).string(),
            "--tls-auth-clients", require_clients ? "yes" : "no"};
}
}  // namespace

TEST_CASE("redis-lookup answers Redis values over pooled outbound connections") {
    const char* binary = redis_binary();
    if (!binary) return skip_test("redis-server is not installed (apt-get install redis-server)");
    temp_dir tmp;
    redis_server redis{binary, tmp.path()};
    REQUIRE(redis.command("SET world Hello,world") == "+OK");
    REQUIRE(redis.command("SET empty \"\"") == "+OK");
    const long before = redis.connections_received();
    const auto dir = std::filesystem::path{PLUGD_EXAMPLES_BUILD_DIR} / "redis-lookup";
    plugd_process p{
        {"-c", tmp.write("server.json",
                         one_listener_config(dir, "redis_lookup",
                                             R"({ "port": )" + std::to_string(redis.port()) + " }"))
                   .string()}};
    const auto port = p.port();
    REQUIRE(p.wait_for_log("serving generation 1"));
    line_client c{port};
    c.send("world\nmissing\nempty\n");
    CHECK(c.read_line() == "Hello,world");
    CHECK(c.read_line() == "NIL");
    CHECK(c.read_line() == "");
    for (int i = 0; i < 100; ++i) {
        c.send("world\n");
        REQUIRE(c.read_line() == "Hello,world");
    }
    // 103 lookups from one client connection, so on one worker thread: with the pool,
    // one connection to Redis served them all (the other new one is this count's own).
    const long opened = redis.connections_received() - before - 1;
    MESSAGE("connections to Redis for 103 lookups: " << opened);
    CHECK(opened == 1);
}

namespace {

// The redis-lookup config for a Redis TLS port: `tls` is its "tls" object (files relative
// to server.json's folder).
std::string over_tls(std::uint16_t port, const std::string& tls = R"({ "ca": "ca.pem" })") {
    return R"({ "port": )" + std::to_string(port) + R"(, "tls": )" + tls + " }";
}

// What each TLS test needs: redis-server, openssl, and a folder with a CA ("ca") and a
// certificate for 127.0.0.1 and localhost signed by it ("server"); then a Redis with a TLS
// port and plugd serving redis-lookup, each replaced when started again.
struct tls_fixture {
    const char* binary = redis_binary();
    temp_dir tmp;
    std::optional<redis_server> redis;   ///< the last start_redis()'s
    std::uint16_t tls_port = 0;          ///< its TLS port
    std::optional<plugd_process> plugd;  ///< the last serve()'s

    bool usable() {
        if (!binary) {
            skip_test("redis-server is not installed (apt-get install redis-server)");
            return false;
        }
        if (!have_openssl()) {
            skip_test("the openssl command is not installed (apt-get install openssl)");
            return false;
        }
        make_ca(tmp.path(), "ca");
        make_certificate(tmp.path(), "ca", "server", "DNS:localhost,IP:127.0.0.1");
        return true;
    }
    // Redis with a TLS port (tls_port) beside the plain one, presenting `certificate`
    // (<name>.pem, <name>.key), verifying client certificates against "ca" and requiring
    // one when `require_clients`; "world" is set to "Hello,world".
    redis_server& start_redis(const std::string& certificate = "server",
                              bool require_clients = false) {
        redis.reset();
        tls_port = free_port();
        redis.emplace(binary, tmp.path(),
                      tls_port_arguments(tmp.path(), tls_port, certificate, "ca", require_clients));
        REQUIRE(redis->command("SET world Hello,world") == "+OK");
        return *redis;
    }
    // plugd serving redis-lookup with `config`, once it serves; server.json in tmp (so
    // "ca.pem" is ours).
    plugd_process& serve(const std::string& config, const std::string& outbound = "{}") {
        plugd.reset();
        const auto dir = std::filesystem::path{PLUGD_EXAMPLES_BUILD_DIR} / "redis-lookup";
        plugd.emplace(std::vector<std::string>{
            "-c", tmp.write("server.json",
                            R"({ "threads": 2, "plugin_dir": ")" + dir.string() +
                                R"(", "plugins": { "p": { "file": "redis_lookup", "config": )" +
                                config + R"(, "outbound": )" + outbound +
                                R"( } }, "listeners": [ { "name": "main", "address": "127.0.0.1", )"
                                R"("port": 0, "plugin": "p" } ] })")
                      .string()});
        REQUIRE(plugd->wait_for_log("serving generation 1"));
        return *plugd;
    }
    // Looks "world" up through plugd on a new connection: the reply line.
    std::string ask_world() { return ask(plugd->port(), "world"); }
};

}  // namespace

TEST_CASE(
    "redis-lookup over TLS verifies Redis against its CA file and pools the TLS "
    "connections") {
    tls_fixture f;
    if (!f.usable()) return;
    redis_server& redis = f.start_redis();
    for (const std::string host : {"127.0.0.1", "localhost"}) {
        CAPTURE(host);  // an IP SAN, then a DNS SAN (and SNI)
        const long before = redis.connections_received();
        // "ca.pem" is relative: to server.json's folder.
        auto& p = f.serve(R"({ "host": ")" + host + R"(", "port": )" + std::to_string(f.tls_port) +
                          R"(, "tls": { "ca": "ca.pem" } })");
        line_client c{p.port()};
        c.send("world\nmissing\n");
        CHECK(c.read_line() == "Hello,world");
        CHECK(c.read_line() == "NIL");
        for (int i = 0; i < 100; ++i) {
            c.send("world\n");
            REQUIRE(c.read_line() == "Hello,world");
        }
        // 102 lookups from one client connection (one worker thread): one TLS connection.
        const long opened = redis.connections_received() - before - 1;
        MESSAGE("TLS connections to Redis for 102 lookups: " << opened);
        CHECK(opened == 1);
    }
}

TEST_CASE(
    "redis-lookup refuses a Redis whose certificate another CA signed, or that names "
    "another host, and says why") {
    tls_fixture f;
    if (!f.usable()) return;
    make_ca(f.tmp.path(), "other-ca");
    make_certificate(f.tmp.path(), "other-ca", "stranger", "DNS:localhost,IP:127.0.0.1");
    make_certificate(f.tmp.path(), "ca", "named-elsewhere", "DNS:redis.example");
    struct refusal {
        const char* certificate;
        const char* reason;
    };
    for (const auto& [certificate, reason] :
         {refusal{"stranger", "certificate verify failed: unable to get local issuer certificate"},
          refusal{"named-elsewhere", "certificate verify failed: IP address mismatch"}}) {
        CAPTURE(certificate);
        f.start_redis(certificate);
        auto& p = f.serve(over_tls(f.tls_port));
        CHECK(f.ask_world() == "ERR internal error");
        CHECK(p.wait_for_log("outbound TLS connection to 127.0.0.1:" + std::to_string(f.tls_port) +
                             " (plugin p): TLS handshake: " + reason));
    }
}

TEST_CASE("redis-lookup presents its client certificate to a Redis that requires one") {
    tls_fixture f;
    if (!f.usable()) return;
    make_certificate(f.tmp.path(), "ca", "client", "DNS:plugd-client");
    f.start_redis("server", true);
    f.serve(over_tls(f.tls_port, R"({ "ca": "ca.pem", "certificate": "client.pem", )"
                                 R"("key": "client.key" })"));
    CHECK(f.ask_world() == "Hello,world");
    {
        // Without one, Redis refuses it (under TLS 1.3, at the first read).
        auto& p = f.serve(over_tls(f.tls_port));
        CHECK(f.ask_world() == "ERR internal error");
        // Redis's alert says why, unless its reset overtook the alert (then the reset), at
        // the write of the command or the read of the reply.
        const std::string refused =
            "outbound TLS connection to 127.0.0.1:" + std::to_string(f.tls_port) + ": ";
        CHECK(p.wait_for_log(refused));
        const auto log = p.log();
        MESSAGE(log.substr(log.find(refused)));
        CHECK((log.find("tlsv13 alert certificate required") != std::string::npos ||
               log.find("Connection reset by peer") != std::string::npos));
    }
    // A key that is not the certificate's is refused, naming the file.
    auto& p = f.serve(over_tls(f.tls_port, R"({ "ca": "ca.pem", "certificate": "client.pem", )"
                                           R"("key": "server.key" })"));
    CHECK(f.ask_world() == "ERR internal error");
    CHECK(p.wait_for_log("TLS client key \"" + (f.tmp.path() / "server.key").string() +
                         "\": key values mismatch"));
}

TEST_CASE(
    "redis-lookup's TLS handshake with a server that never answers ends at "
    "connect_timeout_ms, and a missing CA file is named") {
    tls_fixture f;
    if (!f.usable()) return;
    // Listens, so the TCP connection succeeds, and never speaks.
    loopback_listener silent;
    const auto silent_port = std::to_string(silent.port);
    {
        auto& p = f.serve(over_tls(silent.port), R"({ "connect_timeout_ms": 300 })");
        const auto start = std::chrono::steady_clock::now();
        CHECK(f.ask_world() == "ERR internal error");
        CHECK(std::chrono::steady_clock::now() - start < 3s);
        CHECK(p.wait_for_log("outbound TLS connection to 127.0.0.1:" + silent_port +
                             " (plugin p): TLS handshake timed out after connect_timeout_ms "
                             "(300 ms)"));
    }
    auto& p = f.serve(over_tls(silent.port, R"({ "ca": "missing.pem" })"));
    CHECK(f.ask_world() == "ERR internal error");
    CHECK(p.wait_for_log("TLS CA file \"" + (f.tmp.path() / "missing.pem").string() +
                         "\": No such file or directory"));
}
