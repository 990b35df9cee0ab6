// Node.js reference servers for bench/compare.sh, answering "Hello, <message>":
//   node node_server.js [--port P] [--delay-ms MS]          a `net` line server
//   node node_server.js --http [--port P] [--delay-ms MS]   an `http` server: GET /<message>
// Prints "listening on 127.0.0.1:PORT" once it accepts.
'use strict';
const net = require('net');
const http = require('http');

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const port = option('--port', 0);
const delay = option('--delay-ms', 0);
const later = (f) => (delay > 0 ? setTimeout(f, delay) : f());

let server;
if (args.includes('--http')) {
  server = http.createServer((req, res) => {
    const message = decodeURIComponent(req.url.slice(1));
    later(() => {
      const body = 'Hello, ' + message;
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
} else {
  server = net.createServer((socket) => {
    socket.setNoDelay(true);
    let pending = '';
    socket.on('data', (chunk) => {
      pending += chunk.toString('latin1');
      let nl;
      let out = '';
      const lines = [];
      while ((nl = pending.indexOf('\n')) >= 0) {
        let line = pending.slice(0, nl);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        lines.push(line);
        pending = pending.slice(nl + 1);
      }
      if (lines.length === 0) return;
      for (const line of lines) out += 'Hello, ' + line + '\n';
      later(() => socket.write(out, 'latin1'));
    });
    socket.on('error', () => {});
  });
}
server.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => {
  process.stderr.write(`listening on 127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
