// TLS on listeners: real plugd on loopback, certificates made by the test with the openssl
// command line, clients: curl, openssl s_client, Python's ssl module and a small OpenSSL
// client of our own (for what needs a connection held open or a certificate inspected).
#include <doctest/doctest.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "metric_samples.hpp"
#include "plugd_process.hpp"
#include "skip_test.hpp"

using namespace plugd::test;

namespace {

// Runs `script` with sh in `dir`; its status and everything it printed.
run_result shell(const std::filesystem::path& dir, const std::string& script,
                 milliseconds timeout = 30s) {
    return run_program("/bin/sh", {"-c", "cd '" + dir.string() + "' && " + script}, timeout);
}

// The test's PKI, made with the openssl command line: an ECDSA P-256 CA; server pairs
// signed by it with the SANs 127.0.0.1 and localhost and known serials (server1: 4097,
// server2: 4098); a client certificate (CN=alice) from the same CA, and one (CN=mallory)
// from another CA.
void make_pki(const std::filesystem::path& dir) {
    const std::string script = R"(set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { key "$1.key"; openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 30 -subj "/CN=$2" 2>/dev/null; }
signed() { key "$1.key"; openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$3" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -set_serial "$4" -days 30 -out "$1.pem" $5 2>/dev/null; }
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.cnf
ca ca "plugd test CA"
ca other_ca "another CA"
signed server1 ca localhost 4097 "-extfile san.cnf"
signed server2 ca localhost 4098 "-extfile san.cnf"
signed alice ca alice 5001 ""
signed mallory other_ca mallory 5002 ""
cp server1.pem cert.pem; cp server1.key key.pem
)";
    const auto made = shell(dir, script);
    REQUIRE_MESSAGE(made.status == 0, made.output);
}

// The config of the tests' plugd: TLS listeners "web" (http, greeting), "main" (line,
// greeting; closes idle connections after a second, so s_client ends), "raw" (raw, echo)
// "mtls" (line, route_echo answering with the client's subject; client_ca ca.pem) and
// "once" (oneshot, greeting);
// with `admin`, the admin endpoint on an ephemeral port. `tls_extra` goes into the tls
// objects of all but "mtls".
std::string tls_config(const std::filesystem::path& plugins, bool admin = false,
                       const std::string& tls_extra = "") {
    const std::string tls =
        R"("tls": { "certificate": "cert.pem", "private_key": "key.pem")" + tls_extra + " }";
    return R"({ "threads": 2, "plugin_dir": ")" + plugins.string() + R"(",
      "plugins": { "greeting": { "file": "greeting" }, "echo": { "file": "echo" },
                   "who": { "file": "route_echo", "config": { "subject_only": true } } },
      "listeners": [
        { "name": "web", "port": 0, "framing": "http", "plugin": "greeting", )" +
           tls + R"( },
        { "name": "main", "port": 0, "plugin": "greeting", "limits": { "idle_timeout_ms": 1000 }, )" +
           tls + R"( },
        { "name": "raw", "port": 0, "framing": "raw", "plugin": "echo", )" +
           tls + R"( },
        { "name": "mtls", "port": 0, "plugin": "who", "tls": { "certificate": "cert.pem",
          "private_key": "key.pem", "client_ca": "ca.pem" } },
        { "name": "once", "port": 0, "framing": "oneshot", "plugin": "greeting", )" +
           tls + R"( } ])" + (admin ? R"(, "admin": { "address": "127.0.0.1", "port": 0 })" : "") +
           " }";
}

struct tls_server {
    // `workers`: with "workers": 2 (and one thread each) instead of two threads.
    explicit tls_server(bool admin = false, bool workers = false,
                        const std::string& tls_extra = "") {
        make_pki(tmp.path());
        const auto plugins = tmp.path() / "plugins";
        std::filesystem::create_directory(plugins);
        install_plugin(bundled_plugin_dir() / "greeting.so", plugins, "greeting.so");
        install_plugin(test_plugin_dir() / "echo.so", plugins, "echo.so");
        install_plugin(test_plugin_dir() / "route_echo.so", plugins, "route_echo.so");
        std::string text = tls_config(plugins, admin, tls_extra);
        if (workers)
            text.replace(text.find(R"("threads": 2)"), 12, R"("workers": 2, "threads": 1)");
        cfg = tmp.write("server.json", text);
        process.emplace(std::vector<std::string>{"-c", cfg.string()});
        web = process->port("web");
        line = process->port("main");
        raw = process->port("raw");
        mtls = process->port("mtls");
        once = process->port("once");
        // Each worker says it serves.
        REQUIRE_MESSAGE(process->wait_for_log("serving generation 1", 10s, workers ? 2 : 1),
                        process->log());
    }
    std::filesystem::path file(const std::string& name) const { return tmp.path() / name; }
    temp_dir tmp;
    std::filesystem::path cfg;
    std::optional<plugd_process> process;
    std::uint16_t web = 0, line = 0, raw = 0, mtls = 0, once = 0;
};

// A blocking TLS client over loopback (every read and write bounded by 10 s), verifying
// the server against ca.pem as "localhost"; optionally presenting a client certificate.
class tls_client {
  public:
    tls_client(std::uint16_t port, const std::filesystem::path& ca, const std::string& cert = {},
               const std::string& key = {}) {
        ::signal(SIGPIPE, SIG_IGN);  // a refused client writes to a closed connection
        ctx_ = SSL_CTX_new(TLS_client_method());
        SSL_CTX_load_verify_locations(ctx_, ca.c_str(), nullptr);
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
        if (!cert.empty()) {
            SSL_CTX_use_certificate_file(ctx_, cert.c_str(), SSL_FILETYPE_PEM);
            SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM);
        }
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        timeval bound{10, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof bound);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        ssl_ = SSL_new(ctx_);
        SSL_set_fd(ssl_, fd_);
        SSL_set_tlsext_host_name(ssl_, "localhost");
        SSL_set1_host(ssl_, "localhost");
        handshake_ok = SSL_connect(ssl_) == 1;
        ERR_clear_error();
    }
    ~tls_client() {
        SSL_free(ssl_);
        SSL_CTX_free(ctx_);
        ::close(fd_);
    }
    tls_client(const tls_client&) = delete;
    tls_client& operator=(const tls_client&) = delete;

    // The server certificate's serial number, in decimal.
    long serial() const {
        X509* cert = SSL_get0_peer_certificate(ssl_);
        return cert ? ASN1_INTEGER_get(X509_get0_serialNumber(cert)) : -1;
    }
    // The negotiated protocol version and cipher suite, as OpenSSL names them.
    std::string version() const { return SSL_get_version(ssl_); }
    std::string cipher() const { return SSL_get_cipher_name(ssl_); }
    // Sends `line` and reads one reply line (without its '\n'); empty if the connection
    // failed or closed first.
    std::string ask(const std::string& line) {
        if (!handshake_ok) return {};
        const std::string sent = line + "\n";
        if (SSL_write(ssl_, sent.data(), static_cast<int>(sent.size())) <= 0) return {};
        std::string reply;
        char c;
        while (reply.size() < 4096 && SSL_read(ssl_, &c, 1) == 1) {
            if (c == '\n') return reply;
            reply += c;
        }
        ERR_clear_error();
        return {};
    }

    // GET `target` over HTTP/1.1 keep-alive; the response's status and body, or status 0 if
    // the connection failed or closed first.
    std::pair<int, std::string> get(const std::string& target) {
        if (!handshake_ok) return {0, {}};
        const std::string sent = "GET " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
        if (SSL_write(ssl_, sent.data(), static_cast<int>(sent.size())) <= 0) return {0, {}};
        std::string head;
        char c;
        while (head.size() < 8192 && !head.ends_with("\r\n\r\n")) {
            if (SSL_read(ssl_, &c, 1) != 1) {
                ERR_clear_error();
                return {0, {}};
            }
            head += c;
        }
        const auto length_at = head.find("Content-Length: ");
        if (!head.starts_with("HTTP/1.1 ") || length_at == std::string::npos) return {0, {}};
        std::string body(std::stoul(head.substr(length_at + 16)), '\0');
        for (std::size_t got = 0; got < body.size();) {
            const int n = SSL_read(ssl_, body.data() + got, static_cast<int>(body.size() - got));
            if (n <= 0) {
                ERR_clear_error();
                return {0, {}};
            }
            got += static_cast<std::size_t>(n);
        }
        return {std::stoi(head.substr(9, 3)), body};
    }

    bool handshake_ok = false;

  private:
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    int fd_ = -1;
};

}  // namespace

TEST_CASE("tls: curl over HTTPS to greeting gets 200 Hello verified against the test CA") {
    tls_server s;
    const auto r = shell(s.tmp.path(),
                         "curl -sS --max-time 10 --cacert ca.pem -w ' %{http_code} "
                         "%{http_version}' https://127.0.0.1:" +
                             std::to_string(s.web) + "/world 2>&1");
    CHECK_MESSAGE(r.output == "Hello, world 200 1.1", r.output);
    // ALPN chose http/1.1 (curl offers h2 too).
    const auto alpn = shell(
        s.tmp.path(), "openssl s_client -alpn h2,http/1.1 -CAfile ca.pem -connect 127.0.0.1:" +
                          std::to_string(s.web) + " </dev/null 2>&1");
    CHECK_MESSAGE(alpn.output.find("ALPN protocol: http/1.1") != std::string::npos, alpn.output);
}

TEST_CASE("tls: a oneshot listener answers the first read over TLS and closes") {
    tls_server s;
    // No newline: the request is what the first read brings; the close ends s_client.
    const auto once = shell(s.tmp.path(),
                            "printf 'carol' | openssl s_client -quiet -verify_return_error "
                            "-CAfile ca.pem -connect 127.0.0.1:" +
                                std::to_string(s.once) + " 2>/dev/null");
    CHECK_MESSAGE(once.output == "Hello, carol", once.output);
    CHECK(once.status == 0);
}

TEST_CASE("tls: openssl s_client over a line listener and Python's ssl over a raw listener") {
    tls_server s;
    // The line listener closes the idle connection after a second, which ends s_client.
    const auto line = shell(s.tmp.path(),
                            "printf 'bob\\n' | openssl s_client -quiet -verify_return_error "
                            "-CAfile ca.pem -connect 127.0.0.1:" +
                                std::to_string(s.line) + " 2>/dev/null");
    CHECK_MESSAGE(line.output == "Hello, bob\n", line.output);
    const std::string python = R"(import socket, ssl, sys
ctx = ssl.create_default_context(cafile='ca.pem')
with socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname='localhost') as s:
        s.sendall(b'first\nsecond\n')
        got = b''
        while got.count(b'\n') < 2:
            chunk = s.recv(100)
            if not chunk: break
            got += chunk
        print(s.version(), got.decode().replace('\n', '|'))
)";
    s.tmp.write("client.py", python);
    const auto py = shell(s.tmp.path(), "python3 client.py " + std::to_string(s.raw) + " 2>&1");
    CHECK_MESSAGE(py.output == "TLSv1.3 v1:first|v1:second|\n", py.output);
}

TEST_CASE("tls: TLS 1.0 and 1.1 are refused and so is a client speaking plaintext") {
    tls_server s;
    for (const char* version : {"-tls1", "-tls1_1"}) {
        // SECLEVEL=0: the client really offers the old version (Debian's default would not).
        const auto r = shell(s.tmp.path(), std::string{"openssl s_client "} + version +
                                               " -cipher DEFAULT@SECLEVEL=0 -connect 127.0.0.1:" +
                                               std::to_string(s.line) + " </dev/null 2>&1");
        CHECK(r.status != 0);
        CHECK_MESSAGE(r.output.find("alert protocol version") != std::string::npos, r.output);
    }
    // HTTP in plaintext: a plaintext 400 that says why; a line client: closed.
    const auto http =
        shell(s.tmp.path(), "curl -sS --max-time 10 -w ' %{http_code}' http://127.0.0.1:" +
                                std::to_string(s.web) + "/world 2>&1");
    CHECK_MESSAGE(http.output.find("speaks TLS") != std::string::npos, http.output);
    CHECK_MESSAGE(http.output.ends_with(" 400"), http.output);
    line_client plain{s.line};
    plain.send("hello\n");
    CHECK(plain.read_to_eof(10s) == "");
    // Still serving TLS, and every refusal counted as a failed handshake.
    tls_client after{s.line, s.file("ca.pem")};
    CHECK(after.ask("again") == "Hello, again");
    CHECK(s.process->count_log("error") == 0);
}

// `openssl s_client` asking for /x over HTTPS on `port`, verifying against ca.pem; `flags`
// adds options (-sess_out FILE, -sess_in FILE, -tls1_2).
run_result https_get(const tls_server& s, std::uint16_t port, const std::string& flags) {
    return shell(s.tmp.path(),
                 "printf 'GET /x HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n\\r\\n' | "
                 "openssl s_client -ign_eof -CAfile ca.pem -connect 127.0.0.1:" +
                     std::to_string(port) + " " + flags + " 2>&1");
}

// Checks that `r`, an https_get, made a handshake of the kind s_client calls `kind`
// ("New, TLSv1.", "Reused, TLSv1.") and got greeting's 200.
void check_answered(const run_result& r, const std::string& kind) {
    CHECK_MESSAGE(r.output.find(kind) != std::string::npos, r.output);
    CHECK_MESSAGE(r.output.find("HTTP/1.1 200 OK") != std::string::npos, r.output);
}

// The name of the key that encrypted the ticket saved in `session` (the ticket's first 16
// bytes, as `openssl sess_id -text` dumps them), and its lifetime hint line.
std::pair<std::string, std::string> ticket_of(const tls_server& s, const std::string& session) {
    const auto text = shell(s.tmp.path(), "openssl sess_id -noout -text -in " + session);
    REQUIRE_MESSAGE(text.status == 0, text.output);
    const auto hint = text.output.find("TLS session ticket lifetime hint:");
    const auto dump = text.output.find("TLS session ticket:");
    REQUIRE_MESSAGE(dump != std::string::npos, text.output);
    REQUIRE(hint != std::string::npos);
    const auto first = text.output.find("0000 - ", dump);
    REQUIRE(first != std::string::npos);
    // "0000 - 3f a2 ... 9c-1d ..." : the first line holds the 16 bytes of the name.
    const auto line_end = text.output.find('\n', first);
    std::string name = text.output.substr(first + 7, line_end - first - 7);
    name = name.substr(0, name.find("   "));
    return {name, text.output.substr(hint, text.output.find('\n', hint) - hint)};
}

TEST_CASE("tls: a session resumes with its ticket (TLS 1.3 and TLS 1.2)") {
    tls_server s;
    for (const char* version : {"-tls1_3", "-tls1_2"}) {
        const auto first = https_get(s, s.web, std::string{version} + " -sess_out session.pem");
        check_answered(first, "New, TLSv1.");
        // Several times: the two threads' contexts share the ticket keys, so whichever
        // accepts it resumes.
        for (int i = 0; i < 4; ++i) {
            const auto again = https_get(s, s.web, std::string{version} + " -sess_in session.pem");
            check_answered(again, "Reused, TLSv1.");
        }
    }
}

TEST_CASE(
    "tls: with workers 2 a ticket one worker issued resumes on the other (TLS 1.3 and 1.2) "
    "and tells the client to keep it an hour") {
    tls_server s{false, true};
    const auto workers = children_of(s.process->pid());
    REQUIRE(workers.size() == 2);
    for (const char* version : {"-tls1_3", "-tls1_2"}) {
        CAPTURE(version);
        {
            paused_workers only_first;  // the first worker issues the ticket
            REQUIRE(only_first.pause(workers[1]));
            const auto first = https_get(s, s.web, std::string{version} + " -sess_out issued.pem");
            check_answered(first, "New, TLSv1.");
        }
        CHECK(ticket_of(s, "issued.pem").second ==
              "TLS session ticket lifetime hint: 3600 (seconds)");
        paused_workers only_second;  // and the second resumes it
        REQUIRE(only_second.pause(workers[0]));
        const auto again = https_get(s, s.web, std::string{version} + " -sess_in issued.pem");
        check_answered(again, "Reused, TLSv1.");
    }
}

TEST_CASE(
    "tls: ticket keys rotate every ticket_key_rotation_ms and a ticket two periods old no "
    "longer resumes") {
    tls_server s{false, false, R"(, "ticket_key_rotation_ms": 1000)"};
    const auto first = https_get(s, s.web, "-sess_out first.pem");
    REQUIRE_MESSAGE(first.output.find("New, TLSv1.3") != std::string::npos, first.output);
    const auto [first_key, hint] = ticket_of(s, "first.pem");
    CHECK(hint == "TLS session ticket lifetime hint: 1 (seconds)");
    const auto resumed = https_get(s, s.web, "-sess_in first.pem");
    CHECK_MESSAGE(resumed.output.find("Reused, TLSv1.3") != std::string::npos, resumed.output);
    // New tickets come under a new key once the period ends, then under another: each
    // step is awaited by asking for tickets until the key changes (bounded).
    std::vector<std::string> keys{first_key};
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (keys.size() < 3 && std::chrono::steady_clock::now() < deadline) {
        https_get(s, s.web, "-sess_out later.pem");
        const auto key = ticket_of(s, "later.pem").first;
        if (key != keys.back()) keys.push_back(key);
    }
    REQUIRE(keys.size() == 3);
    CHECK(keys[2] != keys[0]);
    // The first ticket's key is forgotten: a full handshake, answered all the same.
    const auto expired = https_get(s, s.web, "-sess_in first.pem");
    check_answered(expired, "New, TLSv1.3");
}

TEST_CASE(
    "tls: a TLS listener's access lines name the TLS version and cipher of TLS 1.3 and TLS 1.2 "
    "clients and a plaintext listener's lines have no TLS fields") {
    temp_dir tmp;
    make_pki(tmp.path());
    const std::string config =
        R"({ "threads": 1, "plugin_dir": ")" + bundled_plugin_dir().string() + R"(",
      "plugins": { "greeting": { "file": "greeting" } },
      "log": { "format": "json" },
      "listeners": [
        { "name": "secure", "port": 0, "framing": "http", "plugin": "greeting", "access_log": true,
          "tls": { "certificate": "cert.pem", "private_key": "key.pem" } },
        { "name": "plain", "port": 0, "framing": "http", "plugin": "greeting",
          "access_log": true } ] })";
    plugd_process p{{"-c", tmp.write("server.json", config).string()}};
    const std::uint16_t secure = p.port("secure");
    const std::uint16_t plain = p.port("plain");
    const std::string secure_line = R"("message":"access","listener":"secure")";

    // TLS 1.3, whatever cipher suite the two sides settle on: the client says which.
    tls_client modern{secure, tmp.path() / "ca.pem"};
    REQUIRE(modern.handshake_ok);
    CHECK(modern.get("/a") == std::pair<int, std::string>{200, "Hello, a"});
    REQUIRE_MESSAGE(p.wait_for_log(secure_line), p.log());
    REQUIRE(modern.version() == "TLSv1.3");

    // TLS 1.2: s_client says the suite in "New, TLSv1.2, Cipher is <name>".
    const auto old =
        shell(tmp.path(),
              "printf 'GET /b HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n\\r\\n' "
              "| openssl s_client -tls1_2 -ign_eof -CAfile ca.pem -connect 127.0.0.1:" +
                  std::to_string(secure) + " 2>&1");
    REQUIRE_MESSAGE(old.output.find("HTTP/1.1 200 OK") != std::string::npos, old.output);
    const auto named = old.output.find("New, TLSv1.2, Cipher is ");
    REQUIRE_MESSAGE(named != std::string::npos, old.output);
    const auto name_at = named + std::string_view{"New, TLSv1.2, Cipher is "}.size();
    const std::string old_cipher =
        old.output.substr(name_at, old.output.find('\n', name_at) - name_at);
    REQUIRE_MESSAGE(p.wait_for_log(secure_line, 10s, 2), p.log());

    REQUIRE(http_request(plain, "GET", "/c"));
    REQUIRE_MESSAGE(p.wait_for_log(R"("message":"access","listener":"plain")"), p.log());

    std::vector<nlohmann::json> secure_lines, plain_lines;
    std::istringstream lines{p.log()};
    for (std::string line; std::getline(lines, line);) {
        if (line.empty()) continue;
        const auto j = nlohmann::json::parse(line);
        if (j["message"] != "access") continue;
        (j["listener"] == "secure" ? secure_lines : plain_lines).push_back(j);
    }
    REQUIRE(secure_lines.size() == 2);
    REQUIRE(plain_lines.size() == 1);
    CAPTURE(p.log());
    CHECK(secure_lines[0]["tls_version"] == "TLSv1.3");
    CHECK(secure_lines[0]["tls_cipher"] == modern.cipher());
    CHECK(modern.cipher().starts_with("TLS_"));
    CHECK(secure_lines[1]["tls_version"] == "TLSv1.2");
    CHECK(secure_lines[1]["tls_cipher"] == old_cipher);
    CHECK(old_cipher.starts_with("ECDHE-"));
    CHECK(plain_lines[0]["outcome"] == "200");
    for (const auto& [key, value] : plain_lines[0].items()) CHECK_FALSE(key.starts_with("tls_"));
}

TEST_CASE(
    "tls: certificate rotation by new files and SIGHUP: new handshakes see the new serial "
    "and an open connection goes on") {
    tls_server s;
    tls_client open{s.line, s.file("ca.pem")};
    REQUIRE(open.handshake_ok);
    CHECK(open.serial() == 4097);
    CHECK(open.ask("before") == "Hello, before");
    std::filesystem::copy_file(s.file("server2.pem"), s.file("cert.pem"),
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(s.file("server2.key"), s.file("key.pem"),
                               std::filesystem::copy_options::overwrite_existing);
    s.process->signal(SIGHUP);
    REQUIRE_MESSAGE(s.process->wait_for_log("reload: generation 2 "), s.process->log());
    for (int i = 0; i < 4; ++i) {  // both threads
        tls_client fresh{s.line, s.file("ca.pem")};
        REQUIRE(fresh.handshake_ok);
        CHECK(fresh.serial() == 4098);
        CHECK(fresh.ask("new") == "Hello, new");
    }
    CHECK(open.ask("after") == "Hello, after");
}

TEST_CASE(
    "tls: a bad or mismatched or encrypted key and a missing or non-PEM certificate are "
    "refused by -t and by a reload naming the file while the old certificate keeps serving") {
    tls_server s;
    s.tmp.write("garbage.pem", "not a key at all\n");
    const auto encrypted =
        shell(s.tmp.path(),
              "openssl pkey -in server1.key -aes256 -passout pass:secret -out encrypted.key");
    REQUIRE(encrypted.status == 0);
    struct bad_case {
        std::string certificate, key, named, expected;
    };
    const bad_case cases[] = {
        {"cert.pem", "server2.key", "server2.key", "does not match the certificate"},
        {"cert.pem", "garbage.pem", "garbage.pem", "holds no PEM private key"},
        {"garbage.pem", "key.pem", "garbage.pem", "holds no PEM certificate"},
        {"missing.pem", "key.pem", "missing.pem", "cannot read it: No such file or directory"},
        {"cert.pem", "encrypted.key", "encrypted.key", "is encrypted"},
    };
    std::size_t failures = 0;
    for (const auto& bad : cases) {
        CAPTURE(bad.expected);
        std::string text = tls_config(s.tmp.path() / "plugins");
        for (std::size_t at = text.find("\"key.pem\""); at != std::string::npos;
             at = text.find("\"key.pem\"", at + 1))
            text.replace(at, 9, "\"" + bad.key + "\"");
        for (std::size_t at = text.find("\"cert.pem\""); at != std::string::npos;
             at = text.find("\"cert.pem\"", at + 1))
            text.replace(at, 10, "\"" + bad.certificate + "\"");
        const auto bad_cfg = s.tmp.write("bad.json", text);
        const auto checked = run_plugd({"-t", "-c", bad_cfg.string()});
        CHECK(checked.status != 0);
        const std::string named = (s.tmp.path() / bad.named).string();
        CHECK_MESSAGE(checked.output.find(named + ": " + bad.expected) != std::string::npos,
                      checked.output);
        CHECK_MESSAGE(checked.output.find("/listeners/0/tls") != std::string::npos, checked.output);
        // The same config as a reload: refused, the old certificate serves on.
        s.tmp.write("server.json", text);
        s.process->signal(SIGHUP);
        REQUIRE_MESSAGE(s.process->wait_for_log("reload failed: ", 10s, ++failures),
                        s.process->log());
        CHECK(s.process->count_log(named + ": " + bad.expected) >= 1);
        tls_client still{s.line, s.file("ca.pem")};
        CHECK(still.serial() == 4097);
        CHECK(still.ask("still") == "Hello, still");
    }
}

TEST_CASE(
    "tls: client_ca refuses a client without a certificate or with one of another CA and "
    "the plugin sees a verified client's subject") {
    tls_server s;
    {
        tls_client none{s.mtls, s.file("ca.pem")};
        CHECK(none.ask("x") == "");  // TLS 1.3: the refusal comes with the first read
    }
    {
        tls_client rogue{s.mtls, s.file("ca.pem"), s.file("mallory.pem"), s.file("mallory.key")};
        CHECK(rogue.ask("x") == "");
    }
    tls_client alice{s.mtls, s.file("ca.pem"), s.file("alice.pem"), s.file("alice.key")};
    REQUIRE(alice.handshake_ok);
    CHECK(alice.ask("x") == "subject=CN=alice");
    // The plain listeners ask for no certificate; their plugins see no subject.
    tls_client plain{s.line, s.file("ca.pem"), s.file("alice.pem"), s.file("alice.key")};
    CHECK(plain.ask("y") == "Hello, y");
}

namespace {

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

TEST_CASE(
    "tls: /status shows each TLS listener's certificate subject SANs serial and expiry and "
    "/metrics its seconds to expiry") {
    tls_server s{true};
    const std::uint16_t admin = s.process->admin_port();
    // What openssl itself says of the certificate's expiry, as ISO 8601.
    const auto enddate = shell(s.tmp.path(),
                               "openssl x509 -in cert.pem -noout -enddate "
                               "-dateopt iso_8601");
    REQUIRE_MESSAGE(enddate.status == 0, enddate.output);
    std::string expected_iso = enddate.output.substr(enddate.output.find('=') + 1);
    expected_iso = expected_iso.substr(0, expected_iso.find_first_of("\r\n"));
    std::replace(expected_iso.begin(), expected_iso.end(), ' ', 'T');

    const auto status = http_request(admin, "GET", "/status");
    REQUIRE(status);
    REQUIRE(status->status == 200);
    const auto j = nlohmann::json::parse(status->body);
    std::size_t with_certificate = 0;
    std::int64_t not_after = 0;
    for (const auto& l : j["listeners"]) {
        CAPTURE(l.dump());
        REQUIRE(l.contains("certificate"));  // every listener of this config has TLS
        ++with_certificate;
        const auto& c = l["certificate"];
        CHECK(c["subject"] == "CN=localhost");
        CHECK(c["dns_names"] == nlohmann::json::array({"localhost"}));
        CHECK(c["ip_addresses"] == nlohmann::json::array({"127.0.0.1"}));
        CHECK(c["serial"] == "1001");  // 4097
        CHECK(c["not_after"] == expected_iso);
        not_after = c["not_after_unix"].get<std::int64_t>();
        // -days 30 from when the test made it: within a minute of it.
        CHECK(not_after > unix_now() + 30 * 86400 - 120);
        CHECK(not_after <= unix_now() + 30 * 86400);
    }
    CHECK(with_certificate == 5);

    const auto scraped = scrape_metrics(admin);
    for (const char* listener : {"web", "main", "raw", "mtls"}) {
        CAPTURE(listener);
        const double left = scraped.at(std::string{"plugd_tls_certificate_expiry_seconds"} +
                                       "{listener=\"" + listener + "\"}");
        CHECK(left <= static_cast<double>(not_after - unix_now() + 5));
        CHECK(left >= static_cast<double>(not_after - unix_now() - 60));
    }

    // After a rotation /status shows the new certificate.
    std::filesystem::copy_file(s.file("server2.pem"), s.file("cert.pem"),
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(s.file("server2.key"), s.file("key.pem"),
                               std::filesystem::copy_options::overwrite_existing);
    // POST /reload answers once the reload is done and /status has its facts.
    const auto reloaded = http_request(admin, "POST", "/reload");
    REQUIRE(reloaded);
    REQUIRE_MESSAGE(reloaded->status == 200, reloaded->body);
    const auto after = http_request(admin, "GET", "/status");
    REQUIRE(after);
    const auto rotated = nlohmann::json::parse(after->body);
    for (const auto& l : rotated["listeners"]) CHECK(l["certificate"]["serial"] == "1002");
}

TEST_CASE(
    "tls: with supervised workers HTTPS serves and the master's /status and /metrics show each "
    "TLS listener's certificate") {
    tls_server s{true, true};
    // The workers serve HTTPS with the certificate server.json names (by a relative path:
    // the master's copy of the configuration must not change what it names).
    tls_client client{s.web, s.file("ca.pem")};
    REQUIRE(client.handshake_ok);
    CHECK(client.serial() == 4097);
    CHECK(client.get("/w") == std::pair<int, std::string>{200, "Hello, w"});
    const std::uint16_t admin = s.process->admin_port();
    const auto status = http_request(admin, "GET", "/status");
    REQUIRE(status);
    REQUIRE(status->status == 200);
    const auto j = nlohmann::json::parse(status->body);
    REQUIRE(j["listeners"].size() == 5);
    for (const auto& l : j["listeners"]) {
        CAPTURE(l.dump());
        REQUIRE(l.contains("certificate"));
        CHECK(l["certificate"]["subject"] == "CN=localhost");
        CHECK(l["certificate"]["dns_names"] == nlohmann::json::array({"localhost"}));
        CHECK(l["certificate"]["serial"] == "1001");
    }
    const double left =
        scrape_metrics(admin).at(R"(plugd_tls_certificate_expiry_seconds{listener="web"})");
    CHECK(left > 29 * 86400);
    CHECK(left <= 30 * 86400);
}

TEST_CASE(
    "tls: sslscan finds no SSLv2 SSLv3 TLS 1.0 or 1.1 and no weak NULL EXPORT RC4 or "
    "CBC-with-SHA1 cipher on an HTTPS listener") {
    if (!std::filesystem::exists("/usr/bin/sslscan"))
        return skip_test("sslscan is not installed (apt-get install sslscan)");
    tls_server s;
    const auto scan = run_program("/usr/bin/sslscan",
                                  {"--no-colour", "127.0.0.1:" + std::to_string(s.web)}, 120s);
    REQUIRE_MESSAGE(scan.status == 0, scan.output);
    std::istringstream lines{scan.output};
    std::map<std::string, std::string> protocols;
    std::size_t accepted = 0;
    for (std::string line; std::getline(lines, line);) {
        std::istringstream words{line};
        std::string first, second, third, unit, cipher;
        words >> first >> second;
        // "SSLv3     disabled"
        if (first == "SSLv2" || first == "SSLv3" || first.starts_with("TLSv1."))
            if (second == "enabled" || second == "disabled") protocols[first] = second;
        // "Accepted  TLSv1.2  128 bits  ECDHE-ECDSA-AES128-GCM-SHA256 ..."
        if (first != "Accepted" && first != "Preferred") continue;
        words >> third >> unit >> cipher;
        CAPTURE(line);
        ++accepted;
        CHECK(std::stoi(third) >= 128);
        for (const char* weak : {"NULL", "EXP", "RC4", "CBC_SHA", "DES"})
            CHECK(cipher.find(weak) == std::string::npos);
        // OpenSSL's names for CBC with an HMAC-SHA1 end in "-SHA" (ECDHE-RSA-AES128-SHA).
        CHECK_FALSE(cipher.ends_with("-SHA"));
    }
    CHECK_MESSAGE(accepted > 0, scan.output);
    CHECK_MESSAGE(protocols["SSLv2"] == "disabled", scan.output);
    CHECK_MESSAGE(protocols["SSLv3"] == "disabled", scan.output);
    CHECK_MESSAGE(protocols["TLSv1.0"] == "disabled", scan.output);
    CHECK_MESSAGE(protocols["TLSv1.1"] == "disabled", scan.output);
    CHECK_MESSAGE(protocols["TLSv1.2"] == "enabled", scan.output);
    CHECK_MESSAGE(protocols["TLSv1.3"] == "enabled", scan.output);
}

TEST_CASE(
    "tls: 16 keep-alive HTTPS clients lose no request while the certificate is replaced and "
    "reloaded 10 times and new handshakes see each new serial") {
    tls_server s;
    constexpr int clients = 16;
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> ok{0}, failed{0}, serial_changed{0};
    std::vector<std::thread> threads;
    // Stops and joins the clients however the test case ends (a failed REQUIRE too).
    struct joiner {
        std::atomic<bool>& stop;
        std::vector<std::thread>& threads;
        ~joiner() {
            stop = true;
            for (auto& t : threads) {
                if (t.joinable()) t.join();
            }
        }
    } join_at_end{stop, threads};
    for (int i = 0; i < clients; ++i) {
        threads.emplace_back([&, i] {
            tls_client c{s.web, s.file("ca.pem")};
            const long serial = c.serial();
            const std::string name = "client" + std::to_string(i);
            // Bounded: the main thread stops it, and 2 minutes is far beyond the test's needs.
            const auto deadline = std::chrono::steady_clock::now() + 120s;
            while (!stop.load() && std::chrono::steady_clock::now() < deadline) {
                const auto [status, body] = c.get("/" + name);
                if (status == 200 && body == "Hello, " + name) {
                    ok.fetch_add(1);
                } else {
                    failed.fetch_add(1);
                    return;  // a connection that failed once fails every later request
                }
            }
            // An open connection keeps the certificate it started with.
            if (c.serial() != serial) serial_changed.fetch_add(1);
        });
    }
    // Every client has made requests before the first rotation.
    for (int waited = 0; ok.load() < clients * 4 && failed.load() == 0 && waited < 1000; ++waited)
        std::this_thread::sleep_for(10ms);
    for (int round = 0; round < 10; ++round) {
        const char* pair = round % 2 == 0 ? "server2" : "server1";
        const long expected = round % 2 == 0 ? 4098 : 4097;
        std::filesystem::copy_file(s.file(std::string{pair} + ".pem"), s.file("cert.pem"),
                                   std::filesystem::copy_options::overwrite_existing);
        std::filesystem::copy_file(s.file(std::string{pair} + ".key"), s.file("key.pem"),
                                   std::filesystem::copy_options::overwrite_existing);
        const std::uint64_t before = ok.load();
        s.process->signal(SIGHUP);
        REQUIRE_MESSAGE(
            s.process->wait_for_log("reload: generation " + std::to_string(round + 2) + " "),
            s.process->log());
        tls_client fresh{s.web, s.file("ca.pem")};
        REQUIRE(fresh.handshake_ok);
        CHECK(fresh.serial() == expected);
        CHECK(fresh.get("/fresh").first == 200);
        CAPTURE(round);
        CHECK(ok.load() > before);  // the clients went on through the reload
    }
    stop = true;
    for (auto& t : threads) t.join();
    CHECK(failed.load() == 0);
    CHECK(serial_changed.load() == 0);
    CHECK(ok.load() > clients * 10);
}
