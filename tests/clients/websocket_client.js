// WebSocket scenarios against a running plugd with Node's `ws` (Debian's node-ws) as the
// real client. Usage: NODE_PATH=/usr/share/nodejs node websocket_client.js SCENARIO PORT [ARGS]
// Exits 0 when every check held; prints the first failed one and exits 1 otherwise. The
// whole run is bounded by a timer.
'use strict';
const WebSocket = require('ws');

const [scenario, port, ...args] = process.argv.slice(2);
const url = (path) => `ws://127.0.0.1:${port}${path}`;
const fail = (message) => {
  console.error('FAILED: ' + message);
  process.exit(1);
};
setTimeout(() => fail('the scenario did not finish within 30 s'), 30000).unref();

const open = (path) => new Promise((resolve, reject) => {
  const ws = new WebSocket(url(path));
  ws.received = [];
  ws.on('message', (data, binary) => ws.received.push(binary ? data : data.toString()));
  ws.once('open', () => resolve(ws));
  ws.once('error', reject);
});
// Resolves once the session answered a ping: it is in next(), subscribed.
const ready = (ws) => new Promise((resolve) => { ws.once('pong', resolve); ws.ping(); });
const until = (check) => new Promise((resolve) => {
  const poll = () => (check() ? resolve() : setTimeout(poll, 5));
  poll();
});

const scenarios = {
  // `clients` clients in `rooms` rooms each send one message; each must receive exactly the
  // others' messages of its room (ws_chat tags them "v1:").
  async rooms(clients, rooms) {
    const all = [];
    for (let i = 0; i < Number(clients); ++i) {
      const room = `n${i % Number(rooms)}`;
      all.push({ i, room, ws: await open(`/room/${room}`) });
    }
    await Promise.all(all.map((c) => ready(c.ws)));
    for (const c of all) c.ws.send(`${c.room} from ${c.i}`);
    for (const c of all) {
      const expected = all.filter((o) => o.room === c.room && o.i !== c.i)
        .map((o) => `v1:${o.room} from ${o.i}`).sort();
      await until(() => c.ws.received.length >= expected.length);
      // One round-trip more: anything extra (another room's, a duplicate) arrives first.
      await ready(c.ws);
      const got = [...c.ws.received].sort();
      if (JSON.stringify(got) !== JSON.stringify(expected))
        fail(`client ${c.i} in ${c.room} got ${JSON.stringify(got)}`);
    }
    for (const c of all) c.ws.close(1000);
    console.error(`rooms ok: ${clients} clients in ${rooms} rooms`);
  },
  // A binary message comes back binary, and a client's close is answered with its code.
  async echo() {
    const ws = await open('/room/echo');
    ws.send(Buffer.from([0, 1, 254, 255]));
    await until(() => ws.received.length === 1);
    if (!Buffer.isBuffer(ws.received[0]) || !ws.received[0].equals(Buffer.from([0, 1, 254, 255])))
      fail(`binary echoed as ${JSON.stringify(ws.received[0])}`);
    const closed = new Promise((resolve) => ws.once('close', resolve));
    ws.close(4321, 'done');
    const code = await closed;
    if (code !== 4321) fail(`the server echoed close ${code}`);
    console.error('echo ok');
  },
};

scenarios[scenario](...args).then(() => process.exit(0), (e) => fail(String(e)));
