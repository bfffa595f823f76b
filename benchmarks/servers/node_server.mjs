// The official Node server (socket.io from the root node_modules): long-polling and
// WebSocket (the defaults, as minisio), no compression, the same two events as the
// Python servers. With `--redis URL` it is one node of a cluster: @socket.io/redis-adapter
// (the classic createAdapter) on node-redis clients, a publisher and a subscriber.
import { createServer } from "node:http";
import { Server } from "socket.io";

function arg(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const port = Number(arg("--port") ?? 0);
const redisUrl = arg("--redis");

const httpServer = createServer();
const io = new Server(httpServer, {
  transports: ["polling", "websocket"],
  perMessageDeflate: false,
  httpCompression: false,
  maxHttpBufferSize: 1_000_000,
  serveClient: false,
});

if (redisUrl) {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const pubClient = createClient({ url: redisUrl });
  const subClient = pubClient.duplicate();
  for (const client of [pubClient, subClient]) {
    client.on("error", (err) => console.error("redis:", err.message));
  }
  await Promise.all([pubClient.connect(), subClient.connect()]);
  // It subscribes asynchronously: run.py waits for both nodes' PSUBSCRIBE (PUBSUB NUMPAT).
  io.adapter(createAdapter(pubClient, subClient));
}

io.on("connection", (socket) => {
  socket.on("echo", (data) => socket.emit("echo", data));
  socket.on("fan", (...data) => io.emit("fan", ...data));
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`PORT ${httpServer.address().port}`);
});

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => process.exit(0));
}
