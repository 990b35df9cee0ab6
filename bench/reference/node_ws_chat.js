// Node.js reference for bench/compare.sh fanout: a WebSocket room chat on the `ws` library
// (Debian's node-ws; run with NODE_PATH=/usr/share/nodejs):
//   node node_ws_chat.js [--port P]
// A client connects to ws://127.0.0.1:P/room/NAME; every text or binary message it sends goes,
// unchanged and with its type, to every other client of room NAME. One process, one thread,
// as the rooms of examples/chat: the broadcast is the one ws's README shows, over a room's set
// of clients instead of the server's. Prints "listening on 127.0.0.1:PORT" once it accepts.
'use strict';
const http = require('http');
const { WebSocket, WebSocketServer } = require('ws');

const args = process.argv.slice(2);
const at = args.indexOf('--port');
const port = at >= 0 ? Number(args[at + 1]) : 0;

const rooms = new Map(); // room name -> Set of its clients

// A plain HTTP request gets what a WebSocket-only endpoint answers: 426.
const server = http.createServer((req, res) => {
  res.writeHead(426, { Upgrade: 'websocket', 'Content-Length': 0 });
  res.end();
});
// No per-message compression (ws's server default, said here because it matters to the
// figures), and no server-wide client set: the rooms are the only index.
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });

server.on('upgrade', (req, socket, head) => {
  if (!req.url.startsWith('/room/') || req.url.length === '/room/'.length) {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  const name = req.url.slice('/room/'.length);
  wss.handleUpgrade(req, socket, head, (ws) => {
    let room = rooms.get(name);
    if (!room) rooms.set(name, (room = new Set()));
    room.add(ws);
    ws.on('message', (data, isBinary) => {
      for (const peer of room) {
        if (peer !== ws && peer.readyState === WebSocket.OPEN) peer.send(data, { binary: isBinary });
      }
    });
    ws.on('close', () => {
      room.delete(ws);
      if (room.size === 0) rooms.delete(name);
    });
    ws.on('error', () => {}); // a client that vanished: its close event follows
  });
});

server.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => {
  process.stderr.write(`listening on 127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
