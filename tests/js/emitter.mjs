// The official @socket.io/redis-emitter (5.1.0) with a node-redis client, for
// the tests that check a Node emitter can drive minisio's clients through Redis.
// It publishes one message, waits for Redis to take it, and exits 0.
//
//   node tests/js/emitter.mjs <redis-url> <nsp> <rooms> <event> [<json-args>]
//                             [--except <rooms>] [--key PREFIX] [--volatile]
//                             [--compress true|false]
//
// <rooms>      "-" for every socket of <nsp>, a room name, or a JSON array of names
//              (emitter.of(nsp).to(rooms)); --except takes the same forms.
// <json-args>  a JSON array, [] by default; an object {"$bytes": "<hex>"} anywhere
//              in it stands for a Buffer, so binary payloads can be sent too.
// --key        the channel prefix, "socket.io" by default.
//
// <event> is an event name (`.emit(event, ...args)`), or one of the other
// requests of the emitter, on the sockets <rooms> selects:
//   :socketsJoin        json-args [rooms]      .socketsJoin(rooms)
//   :socketsLeave       json-args [rooms]      .socketsLeave(rooms)
//   :disconnectSockets  json-args [close?]     .disconnectSockets(close)
//   :serverSideEmit     json-args [event, ...] emitter.of(nsp).serverSideEmit(...)
//                                               (<rooms> must be "-")

import { Emitter } from "@socket.io/redis-emitter";
import { createClient } from "redis";

function usage(message) {
  console.error(`emitter.mjs: ${message}`);
  console.error(
    "usage: emitter.mjs <redis-url> <nsp> <rooms|-> <event|:op> [json-args]" +
      " [--except R] [--key P] [--volatile] [--compress B]",
  );
  process.exit(2);
}

/** "-" -> null, "[...]" -> the JSON array, anything else -> that one room. */
const rooms = (text) => (text === "-" ? null : text.startsWith("[") ? JSON.parse(text) : text);

/** JSON with {"$bytes": hex} objects turned into Buffers. */
const parseArgs = (text) =>
  JSON.parse(text, (_, value) =>
    value !== null &&
    typeof value === "object" &&
    !Array.isArray(value) &&
    Object.keys(value).length === 1 &&
    typeof value.$bytes === "string"
      ? Buffer.from(value.$bytes, "hex")
      : value,
  );

const positional = [];
const flags = { except: null, key: "socket.io", volatile: false, compress: null };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const arg = argv[i];
  if (arg === "--except") flags.except = rooms(argv[++i]);
  else if (arg === "--key") flags.key = argv[++i];
  else if (arg === "--volatile") flags.volatile = true;
  else if (arg === "--compress") flags.compress = argv[++i] !== "false";
  else if (arg.startsWith("--")) usage(`unknown option ${arg}`);
  else positional.push(arg);
}
if (positional.length < 4 || positional.length > 5) usage("wrong number of arguments");
const [redisUrl, nsp, to, event, json = "[]"] = positional;
const args = parseArgs(json);
if (!Array.isArray(args)) usage("<json-args> must be a JSON array");

const client = createClient({ url: redisUrl });
client.on("error", (err) => console.error("emitter.mjs: redis:", err.message));
await client.connect();

const emitter = new Emitter(client, { key: flags.key }).of(nsp);
let op = emitter.to(rooms(to) ?? []);
if (flags.except !== null) op = op.except(flags.except);
if (flags.volatile) op = op.volatile;
if (flags.compress !== null) op = op.compress(flags.compress);

if (event === ":socketsJoin") op.socketsJoin(args[0]);
else if (event === ":socketsLeave") op.socketsLeave(args[0]);
else if (event === ":disconnectSockets") op.disconnectSockets(Boolean(args[0]));
else if (event === ":serverSideEmit") {
  if (rooms(to) !== null) usage(":serverSideEmit goes to every server: <rooms> must be -");
  emitter.serverSideEmit(...args);
} else if (event.startsWith(":")) usage(`unknown operation ${event}`);
else op.emit(event, ...args);

// QUIT is answered after the PUBLISH before it: the message is in Redis.
await client.quit();
