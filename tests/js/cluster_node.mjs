// One node of a Socket.IO cluster for the Redis adapter tests: the OFFICIAL
// socket.io server (root node_modules, 4.8.4) with @socket.io/redis-adapter
// (createAdapter, node-redis pub/sub clients), so minisio nodes can be checked
// against the real thing over one Redis.
//
//   node tests/js/cluster_node.mjs <redis-url> [port] [--key PREFIX]
//                                  [--requests-timeout MS] [--name NAME]
//
// It binds 127.0.0.1 (port 0 by default), and once its adapters are
// subscribed in Redis it prints `listening http://127.0.0.1:<port>` on
// stdout (logs go to stderr). SIGTERM and SIGINT stop it cleanly: sockets get
// "server shutting down", the adapters unsubscribe, the Redis clients quit.
// --key is the adapter's channel prefix ("socket.io"), --requests-timeout its
// requestsTimeout (5000 ms: fetchSockets, serverSideEmit acks, serverCount),
// --name how this node calls itself in answers (default "node:<port>").
//
// Namespaces "/" and "/admin" (no auth) both offer these events
// (client -> server; the value is the ack's answer; a failed call answers
// {"error": message}). `nsp` is the socket's namespace.
//
// whoami()                        {id, nsp, auth, query}, as tests/js/server.py
// node()                          {name, port, uid}: this node, its adapter's uid
// echo(...args)                   emits `echo` with the same args, acks them too
// sum(a, b)                       a + b
// join(room) / leave(room)        the socket's rooms, sorted
// set_data(value)                 socket.data = value; true
// room(room, payload, mode)       mode "io": nsp.to(room), "socket": socket.to(room);
//                                 emits `room` {room, mode, payload}; true
// route(route, payload, to)       "all" (nsp.emit) | "me" | "broadcast" (socket.broadcast)
//                                 | "to_id" (nsp.to(to)) | "local" (nsp.local.emit):
//                                 emits `routed` {route, from, payload}; true, or false
//                                 for an unknown route
// broadcast(spec)                 spec {to?, except?, local?, volatile?, event, args?}:
//                                 nsp.to(to).except(except)[.local][.volatile]
//                                 .emit(event, ...args); true
// broadcast_ack(spec)             the same with spec.timeout ms (default 2000), through
//                                 .timeout(ms).emit(..., cb): {ok, result: [answers]}
//                                 or {ok: false, error, result: [answers so far]}
// fetch(room?)                    (await nsp.in(room?).fetchSockets())
//                                 .map(s => ({id, rooms: [...s.rooms], data}))
// remote_join(room, target?)      nsp.in(target).socketsJoin(room) (every socket when
//                                 target is null); true
// remote_leave(room, target?)     nsp.in(target).socketsLeave(room); true
// remote_disconnect(target?, close?) nsp.in(target).disconnectSockets(close); true
// server_side_emit(event, ...args) nsp.serverSideEmit(event, ...args); true
// server_side_emit_ack(event, ...args) the same with an ack, answers within
//                                 --requests-timeout: {ok, result: [answers]} or
//                                 {ok: false, error, result: [answers so far]}
// server_count()                  await nsp.adapter.serverCount()
// server_notes()                  the args of every `note` server-side event this
//                                 namespace got from other nodes, in order
// kick(close?)                    socket.disconnect(close) after acking
// reason(id)                      why socket `id` disconnected (server side), or null
//
// On connection the node emits `welcome(id)` to the new socket.
//
// Server-side events it answers (serverSideEmit from other nodes), on both
// namespaces:
// ping-node(arg, ack)             ack("pong from node " + arg)
// note(...args[, ack])            recorded for server_notes(); acks "noted by <name>"

import { createServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";

function parseArgs(argv) {
  const options = { key: "socket.io", requestsTimeout: 5000, name: null };
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--key") options.key = argv[++i];
    else if (arg === "--requests-timeout") options.requestsTimeout = Number(argv[++i]);
    else if (arg === "--name") options.name = argv[++i];
    else if (arg.startsWith("--")) throw new Error(`unknown option ${arg}`);
    else positional.push(arg);
  }
  const [redisUrl, port = "0"] = positional;
  if (!redisUrl) {
    throw new Error("usage: cluster_node.mjs <redis-url> [port] [--key P] [--requests-timeout MS]");
  }
  return { ...options, redisUrl, port: Number(port) };
}

const options = parseArgs(process.argv.slice(2));
const log = (...args) => console.error(`cluster_node ${options.name ?? ""}:`, ...args);

const pubClient = createClient({ url: options.redisUrl });
const subClient = pubClient.duplicate();
for (const client of [pubClient, subClient]) {
  let last = null; // while Redis is away, say so once, not at every retry
  client.on("error", (err) => {
    if (err.message !== last) log("redis:", err.message);
    last = err.message;
  });
  client.on("ready", () => (last = null));
}
await Promise.all([pubClient.connect(), subClient.connect()]);

const httpServer = createServer();
const io = new Server(httpServer, {
  serveClient: false,
  adapter: createAdapter(pubClient, subClient, {
    key: options.key,
    requestsTimeout: options.requestsTimeout,
  }),
});

const reasons = new Map(); // socket id -> disconnect reason

/** `ack`'s answer from `fn(...args)` (sync or async); an error answers {error}. */
function handle(socket, event, fn) {
  socket.on(event, async (...args) => {
    const ack = typeof args.at(-1) === "function" ? args.pop() : null;
    try {
      const result = await fn(...args);
      ack?.(result ?? null);
    } catch (err) {
      ack?.({ error: String(err?.message ?? err) });
    }
  });
}

/** `nsp` or `nsp.in(target)` when a target (room, socket id, or array of them) is given. */
const select = (nsp, target) => (target === undefined || target === null ? nsp : nsp.in(target));

/** A BroadcastOperator from a broadcast spec {to, except, local, volatile}. */
function operator(nsp, spec) {
  let op = nsp.to(spec.to ?? []);
  if (spec.except !== undefined && spec.except !== null) op = op.except(spec.except);
  if (spec.local) op = op.local;
  if (spec.volatile) op = op.volatile;
  return op;
}

/** The `(err, answers)` callback's outcome as {ok, result} or {ok: false, error, result}. */
const outcome = (err, answers) =>
  err
    ? { ok: false, error: String(err.message ?? err), result: answers ?? [] }
    : { ok: true, result: answers };

function setUp(nsp) {
  const notes = [];

  nsp.on("ping-node", (arg, ack) => ack?.(`pong from node ${arg}`));
  nsp.on("note", (...args) => {
    const ack = typeof args.at(-1) === "function" ? args.pop() : null;
    notes.push(args);
    ack?.(`noted by ${name()}`);
  });

  nsp.on("connection", (socket) => {
    socket.on("disconnect", (reason) => reasons.set(socket.id, reason));

    handle(socket, "whoami", () => ({
      id: socket.id,
      nsp: nsp.name,
      auth: socket.handshake.auth,
      query: socket.handshake.query,
    }));
    handle(socket, "node", () => ({ name: name(), port: port(), uid: nsp.adapter.uid }));
    socket.on("echo", (...args) => {
      const ack = typeof args.at(-1) === "function" ? args.pop() : null;
      socket.emit("echo", ...args);
      ack?.(...args);
    });
    handle(socket, "sum", (a, b) => a + b);
    handle(socket, "join", async (room) => {
      await socket.join(room);
      return [...socket.rooms].sort();
    });
    handle(socket, "leave", async (room) => {
      await socket.leave(room);
      return [...socket.rooms].sort();
    });
    handle(socket, "set_data", (value) => {
      socket.data = value;
      return true;
    });
    handle(socket, "room", (room, payload, mode = "io") => {
      const target = mode === "io" ? nsp.to(room) : socket.to(room);
      target.emit("room", { room, mode, payload });
      return true;
    });
    handle(socket, "route", (route, payload, to) => {
      const message = { route, from: socket.id, payload };
      if (route === "all") nsp.emit("routed", message);
      else if (route === "me") socket.emit("routed", message);
      else if (route === "broadcast") socket.broadcast.emit("routed", message);
      else if (route === "to_id" && typeof to === "string") nsp.to(to).emit("routed", message);
      else if (route === "local") nsp.local.emit("routed", message);
      else return false;
      return true;
    });
    handle(socket, "broadcast", (spec) => {
      operator(nsp, spec).emit(spec.event, ...(spec.args ?? []));
      return true;
    });
    handle(
      socket,
      "broadcast_ack",
      (spec) =>
        new Promise((resolve) => {
          operator(nsp, spec)
            .timeout(spec.timeout ?? 2000)
            .emit(spec.event, ...(spec.args ?? []), (err, answers) =>
              resolve(outcome(err, answers)),
            );
        }),
    );
    handle(socket, "fetch", async (room) =>
      (await select(nsp, room).fetchSockets()).map((s) => ({
        id: s.id,
        rooms: [...s.rooms],
        data: s.data,
      })),
    );
    handle(socket, "remote_join", (room, target) => {
      select(nsp, target).socketsJoin(room);
      return true;
    });
    handle(socket, "remote_leave", (room, target) => {
      select(nsp, target).socketsLeave(room);
      return true;
    });
    handle(socket, "remote_disconnect", (target, close = false) => {
      select(nsp, target).disconnectSockets(Boolean(close));
      return true;
    });
    handle(socket, "server_side_emit", (event, ...args) => {
      nsp.serverSideEmit(event, ...args);
      return true;
    });
    handle(
      socket,
      "server_side_emit_ack",
      (event, ...args) =>
        new Promise((resolve) => {
          nsp.serverSideEmit(event, ...args, (err, answers) => resolve(outcome(err, answers)));
        }),
    );
    handle(socket, "server_count", () => nsp.adapter.serverCount());
    handle(socket, "server_notes", () => notes);
    socket.on("kick", (close, ack) => {
      if (typeof close === "function") [close, ack] = [false, close];
      ack?.(null);
      setImmediate(() => socket.disconnect(Boolean(close)));
    });
    handle(socket, "reason", (id) => reasons.get(id) ?? null);

    socket.emit("welcome", socket.id);
  });
}

const port = () => httpServer.address()?.port ?? options.port;
const name = () => options.name ?? `node:${port()}`;

setUp(io.of("/"));
setUp(io.of("/admin"));

// The adapters subscribe without waiting; Redis answers one connection's
// commands in order, so once this SUBSCRIBE is confirmed theirs are too and no
// broadcast sent after "listening" can be missed.
const barrier = `${options.key}-cluster-node-ready#${process.pid}`;
await subClient.subscribe(barrier, () => {});
await subClient.unsubscribe(barrier);

await new Promise((resolve) => httpServer.listen(options.port, "127.0.0.1", resolve));
console.log(`listening http://127.0.0.1:${port()}`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  setTimeout(() => {
    log("did not stop within 3 s");
    process.exit(1);
  }, 3000).unref();
  await io.close(); // every socket: "server shutting down"; adapters unsubscribe
  await Promise.allSettled(
    [pubClient, subClient].map((client) => (client.isReady ? client.quit() : client.disconnect())),
  );
  process.exit(0);
}
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, stop);
