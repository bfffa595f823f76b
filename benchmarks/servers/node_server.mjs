// The official Node server (socket.io from the root node_modules): long-polling and
// WebSocket (the defaults, as minisio), no compression, the same two events as the
// Python servers.
import { createServer } from "node:http";
import { Server } from "socket.io";

const portArg = process.argv.indexOf("--port");
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;

const httpServer = createServer();
const io = new Server(httpServer, {
  transports: ["polling", "websocket"],
  perMessageDeflate: false,
  httpCompression: false,
  maxHttpBufferSize: 1_000_000,
  serveClient: false,
});

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
