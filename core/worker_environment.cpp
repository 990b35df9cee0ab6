// worker_environment: encoding and decoding PLUGD_WORKER.
#include "worker_environment.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string_view>

namespace plugd {

std::string encode(const worker_environment& w) {
    std::string text =
        "index=" + std::to_string(w.index) + ";master=" + std::to_string(w.master) +
        ";generation=" + std::to_string(w.first_generation) + ";status=" + w.status_file.string() +
        ";generation_file=" + w.generation_file.string() + ";user=" + w.user +
        ";ledger=" + std::to_string(w.ledger) + ";metrics=" + (w.metrics ? "1" : "0") +
        ";canary=" + w.canary_config.string() +
        ";canary_generation=" + w.canary_generation_file.string() +
        ";canary_percent=" + std::to_string(w.canary_percent) +
        ";tickets=" + std::to_string(w.tickets) + ";listen=";
    bool first = true;
    for (const auto& [name, fd] : w.listeners) {
        if (!first) text += ',';
        first = false;
        text += name + "@" + std::to_string(fd);
    }
    text += ";systemd=";
    first = true;
    for (const auto& name : w.from_systemd) {
        if (!first) text += ',';
        first = false;
        text += name;
    }
    return text;
}

bool kept_from_workers(std::string_view entry) {
    for (const std::string_view name :
         {worker_variable, "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
          "WATCHDOG_USEC", "WATCHDOG_PID"}) {
        if (entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=')
            return true;
    }
    return false;
}

namespace {

// The next `separator`-delimited piece of `rest`, which loses it.
std::string_view next_piece(std::string_view& rest, char separator) {
    const auto end = rest.find(separator);
    const std::string_view piece = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    return piece;
}

}  // namespace

std::optional<worker_environment> this_process_worker() {
    const char* value = std::getenv(worker_variable);
    if (!value) return std::nullopt;
    worker_environment w;
    std::string_view rest = value;
    while (!rest.empty()) {
        const std::string_view item = next_piece(rest, ';');
        const auto eq = item.find('=');
        if (eq == std::string_view::npos) throw std::runtime_error("malformed PLUGD_WORKER");
        const std::string_view key = item.substr(0, eq);
        const std::string value_text{item.substr(eq + 1)};
        if (key == "index") {
            w.index = static_cast<unsigned>(std::stoul(value_text));
        } else if (key == "master") {
            w.master = std::stol(value_text);
        } else if (key == "generation") {
            w.first_generation = std::stoull(value_text);
        } else if (key == "status") {
            w.status_file = value_text;
        } else if (key == "generation_file") {
            w.generation_file = value_text;
        } else if (key == "ledger") {
            w.ledger = std::stoi(value_text);
        } else if (key == "metrics") {
            w.metrics = value_text == "1";
        } else if (key == "canary") {
            w.canary_config = value_text;
        } else if (key == "canary_generation") {
            w.canary_generation_file = value_text;
        } else if (key == "canary_percent") {
            w.canary_percent = static_cast<unsigned>(std::stoul(value_text));
        } else if (key == "tickets") {
            w.tickets = std::stoi(value_text);
        } else if (key == "user") {
            w.user = value_text;
        } else if (key == "listen") {
            std::string_view l = value_text;
            while (!l.empty()) {
                const std::string_view entry = next_piece(l, ',');
                const auto at = entry.rfind('@');
                if (at == std::string_view::npos)
                    throw std::runtime_error("malformed PLUGD_WORKER");
                w.listeners[std::string{entry.substr(0, at)}] =
                    std::stoi(std::string{entry.substr(at + 1)});
            }
        } else if (key == "systemd") {
            std::string_view names = value_text;
            while (!names.empty()) w.from_systemd.emplace(next_piece(names, ','));
        }
    }
    // Kept for this process's own listeners, never handed on to a process it starts.
    for (const auto& [name, fd] : w.listeners) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (w.ledger >= 0) ::fcntl(w.ledger, F_SETFD, FD_CLOEXEC);
    if (w.tickets >= 0) ::fcntl(w.tickets, F_SETFD, FD_CLOEXEC);
    return w;
}

std::uint64_t read_generation_file(const std::filesystem::path& file) {
    std::ifstream in{file};
    std::uint64_t generation = 0;
    if (!(in >> generation) || generation == 0)
        throw std::runtime_error(file.string() +
                                 ": cannot read the generation number the master gave this "
                                 "reload; the master's folder of generations was changed or "
                                 "removed: restart plugd");
    return generation;
}

void write_generation_file(const std::filesystem::path& file, std::uint64_t generation) {
    const auto partial = file.string() + ".partial";
    {
        std::ofstream out{partial, std::ios::trunc};
        out << generation << '\n';
        if (!out.flush())
            throw std::runtime_error(partial + ": cannot write the next generation's number");
    }
    // Read by workers that run as "user", whatever the master's umask.
    ::chmod(partial.c_str(), 0644);
    std::filesystem::rename(partial, file);
}

}  // namespace plugd
