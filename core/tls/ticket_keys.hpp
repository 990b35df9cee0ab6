// ticket_keys: the keys that encrypt TLS session tickets, the same in every thread and
// every worker process, and replaced on a schedule.
//
// A ticket resumes only where its key is known. Each process holds one random 32-byte
// secret for its lifetime (a reload keeps it, so resumption survives reloads); a master
// with `workers: N` hands its own to every worker it starts, through an inherited memory
// file, so a ticket one worker issued resumes on whichever worker accepts the next
// connection. The keys themselves are derived from the secret and the current rotation
// period (wall-clock time / the listener's `ticket_key_rotation_ms`): every process finds
// the same keys at the same time without talking to the others. A ticket is issued under
// the current period's key and accepted under it and the previous period's (renewed then),
// and a client is told to keep it no longer than one period: an old key, and with it the
// sessions it protects, is forgotten after two periods (forward secrecy for resumption).
//
// Nothing here takes a lock: the secret is written once before any thread serves, and each
// thread keeps the keys of the period it last used.
#pragma once

#include <chrono>

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace plugd {

/// Makes `ctx` encrypt and accept tickets under the process's keys, rotated every
/// `rotation`; tickets it issues tell clients to keep them for `rotation` at most.
void use_rotating_ticket_keys(ssl_ctx_st* ctx, std::chrono::milliseconds rotation);

/// Master: a memory file holding the process's secret, for the workers it starts (close-on-
/// exec; a spawn passes it on explicitly). Made on first use; -1 if it cannot be made (the
/// workers then resume only their own tickets; logged).
int ticket_secret_file();

/// Worker: takes the master's secret from `fd` (ticket_secret_file's, inherited) and closes
/// it. Before any TLS listener serves. Throws std::runtime_error if it cannot be read.
void adopt_ticket_secret(int fd);

}  // namespace plugd
