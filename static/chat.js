// The minisio chat page: plain JavaScript over the official Socket.IO client.
//
// Server events (see minisio/__main__.py): "welcome" {id, name} to us only,
// "users" [{id, name}] whenever the roster changes, "notice" "X joined" /
// "X left", "chat" {from, name, text, route, to?}. We send "chat"
// {text, route, to?} and the server acks with {ok} or {ok: false, error}.
"use strict";

(() => {
  const MAX_LOG = 500; // conversation lines kept on the page
  const MAX_WIRE = 200; // frames kept in the wire panel
  const MAX_FRAME = 300; // characters shown of one frame
  const ACK_TIMEOUT_MS = 5000;

  // Engine.IO v4 packet types, as they appear first in a text frame.
  const EIO_TYPES = { open: "0", close: "1", ping: "2", pong: "3", message: "4", upgrade: "5", noop: "6" };

  const ROUTE_NAMES = {
    all: "to everyone",
    me: "echo, to you only",
    others: "to everyone but the sender",
    whisper: "whispered to you",
  };

  const $ = (selector) => document.querySelector(selector);
  const ui = {
    status: $('[data-testid="status"]'),
    missing: $('[data-testid="bundle-missing"]'),
    joinForm: $('[data-testid="join-form"]'),
    name: $('[data-testid="name"]'),
    joinButton: $('[data-testid="join"]'),
    users: $('[data-testid="users"]'),
    userCount: $('[data-testid="user-count"]'),
    leave: $('[data-testid="leave"]'),
    log: $('[data-testid="log"]'),
    composer: $('[data-testid="composer"]'),
    routes: $('[data-testid="routes"]'),
    whisperRoute: $('[data-testid="route-whisper"]'),
    whisperLabel: $('[data-testid="whisper-label"]'),
    text: $('[data-testid="text"]'),
    send: $('[data-testid="send"]'),
    sendStatus: $('[data-testid="send-status"]'),
    wire: $('[data-testid="wire"]'),
    wireClear: $('[data-testid="wire-clear"]'),
  };

  let socket = null; // the current Socket.IO socket, null when we are out
  let me = null; // {id, name} from "welcome"
  let users = []; // the last "users" roster
  let selected = null; // socket id of the person to whisper to

  // -- small DOM helpers -----------------------------------------------------
  function node(tag, props = {}, ...children) {
    const element = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "className") element.className = value;
      else if (key === "dataset") Object.assign(element.dataset, value);
      else element.setAttribute(key, value);
    }
    for (const child of children) {
      element.append(child); // strings become text nodes: never parsed as HTML
    }
    return element;
  }

  function setStatus(state, text) {
    ui.status.dataset.state = state;
    ui.status.textContent = text;
  }

  function clock() {
    return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function appendCapped(list, item, max) {
    const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
    list.append(item);
    while (list.children.length > max) list.firstElementChild.remove();
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function addLine(item) {
    appendCapped(ui.log, item, MAX_LOG);
  }

  function system(text) {
    addLine(node("li", { className: "line system", "data-testid": "system" }, text));
  }

  function nameOf(id) {
    const user = users.find((u) => u.id === id);
    return user ? user.name : "someone who left";
  }

  // -- the missing bundle ----------------------------------------------------
  if (typeof window.io !== "function") {
    ui.missing.hidden = false;
    ui.name.disabled = true;
    ui.joinButton.disabled = true;
    setStatus("error", "client bundle missing");
    return;
  }

  // -- the wire panel --------------------------------------------------------
  function isBinary(data) {
    return (
      data instanceof ArrayBuffer ||
      ArrayBuffer.isView(data) ||
      (typeof Blob !== "undefined" && data instanceof Blob)
    );
  }

  function describePacket(packet) {
    const data = packet.data;
    if (isBinary(data)) {
      const size = data instanceof Blob ? data.size : data.byteLength;
      return `<binary ${size} bytes>`;
    }
    const text = (EIO_TYPES[packet.type] ?? "?") + (data ?? "");
    return text.length <= MAX_FRAME ? text : `${text.slice(0, MAX_FRAME)}… (${text.length} chars)`;
  }

  function showFrame(direction, packet) {
    const incoming = direction === "in";
    const item = node(
      "li",
      { className: `frame ${direction}`, "data-testid": "frame", dataset: { dir: direction } },
      node("span", { className: "dir", "aria-label": incoming ? "received" : "sent" }, incoming ? "<" : ">"),
      " ",
      node("code", {}, describePacket(packet)),
    );
    appendCapped(ui.wire, item, MAX_WIRE);
  }

  // A line about the transport rather than a packet: an HTTP request, the upgrade.
  function showNote(text) {
    const item = node("li", { className: "frame note", "data-testid": "frame", dataset: { dir: "note" } },
      node("code", {}, text));
    appendCapped(ui.wire, item, MAX_WIRE);
  }

  // The engine emits "packet" for every packet it receives and "packetCreate"
  // for every packet it is about to send: the frames, one Engine.IO packet each.
  // Over long-polling, each held GET ("poll") and each POST carry them; the
  // upgrade probes a WebSocket ("2probe" / "3probe"), then sends "5" on it.
  function watchWire(manager) {
    const hooked = new WeakSet();
    const watchPolling = (transport) => {
      if (transport.name !== "polling") return;
      transport.on("poll", () => showNote("-- GET (long-poll, held until the server has something to send)"));
      transport.on("drain", () => showNote("-- POST answered ok"));
    };
    const hook = (engine) => {
      if (!engine || hooked.has(engine)) return;
      hooked.add(engine);
      engine.on("packet", (packet) => showFrame("in", packet));
      engine.on("packetCreate", (packet) => showFrame("out", packet));
      if (engine.transport) watchPolling(engine.transport);
      engine.on("upgrading", () => {
        showNote("-- websocket: > 2probe  < 3probe (the probe answered)");
      });
      engine.on("upgrade", (transport) => {
        showNote(`-- ${transport.name}: > 5 (upgrade: polling stops, frames go over ${transport.name})`);
      });
    };
    hook(manager.engine);
    // A reconnection makes a new engine right after this event.
    manager.on("reconnect_attempt", () => queueMicrotask(() => hook(manager.engine)));
    manager.on("open", () => hook(manager.engine));
  }

  ui.wireClear.addEventListener("click", () => ui.wire.replaceChildren());

  // -- the roster and whisper target -----------------------------------------
  function renderUsers() {
    if (selected !== null && !users.some((u) => u.id === selected)) selected = null;
    ui.userCount.textContent = String(users.length);
    ui.users.replaceChildren(
      ...users.map((user) => {
        const mine = me !== null && user.id === me.id;
        const button = node(
          "button",
          {
            type: "button",
            className: "user",
            "data-testid": "user",
            "aria-pressed": String(user.id === selected),
            title: mine ? "this is you" : `whisper to ${user.name}`,
            dataset: { id: user.id, name: user.name },
          },
          node("span", { className: "avatar", "aria-hidden": "true" }, user.name.slice(0, 1).toUpperCase()),
          node("span", { className: "user-name" }, user.name),
          mine ? node("span", { className: "you" }, "(you)") : "",
        );
        button.disabled = mine;
        button.addEventListener("click", () => select(user.id === selected ? null : user.id));
        return node("li", {}, button);
      }),
    );
    updateWhisper();
  }

  function select(id) {
    selected = id;
    if (id !== null) ui.composer.elements.route.value = "whisper";
    renderUsers();
    if (id !== null) ui.text.focus();
  }

  function updateWhisper() {
    const target = users.find((u) => u.id === selected);
    ui.whisperRoute.disabled = !target;
    ui.whisperLabel.textContent = target ? `whisper to ${target.name}` : "whisper (select someone)";
    if (!target && ui.whisperRoute.checked) ui.composer.elements.route.value = "all";
  }

  // -- joining and leaving ---------------------------------------------------
  function setJoined(joined) {
    ui.joinForm.hidden = joined;
    ui.leave.hidden = !joined;
    ui.routes.disabled = !joined;
    ui.text.disabled = !joined;
    ui.send.disabled = !joined;
  }

  function connect(name) {
    setStatus("connecting", "connecting…");
    // The client's default transports, as the classroom page had them:
    // long-polling first, then the upgrade to WebSocket.
    const current = window.io({ auth: { name } });
    socket = current;
    watchWire(current.io);
    // Events of a socket we already left are ignored.
    const on = (event, handler) => current.on(event, (...args) => current === socket && handler(...args));

    on("welcome", (info) => {
      me = info;
      setStatus("online", `connected as ${info.name}`);
      setJoined(true);
      // Recovered: the same socket as before the drop, and what was sent
      // meanwhile arrives right after this (connection state recovery).
      system(info.recovered ? `Reconnected as ${info.name}: nothing was missed.` : `You joined as ${info.name}.`);
      renderUsers();
      ui.text.focus();
    });
    on("users", (list) => {
      users = Array.isArray(list) ? list : [];
      renderUsers();
    });
    on("notice", (text) => {
      addLine(node("li", { className: "line notice", "data-testid": "notice" }, String(text)));
    });
    on("chat", showChat);
    on("connect_error", (error) => {
      setStatus("error", "cannot connect");
      system(`Could not connect: ${error.message}`);
    });
    on("disconnect", (reason) => {
      setJoined(false);
      users = [];
      me = null;
      renderUsers();
      if (current.active) {
        // The client reconnects by itself; keep the join form hidden meanwhile.
        ui.joinForm.hidden = true;
        setStatus("connecting", "connection lost, reconnecting…");
      } else {
        setStatus("offline", "not connected");
      }
      system(`Disconnected (${reason}).`);
    });
    current.io.on("reconnect_attempt", (attempt) => {
      if (current === socket) setStatus("connecting", `reconnecting (attempt ${attempt})…`);
    });
  }

  ui.joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = ui.name.value.trim();
    if (!name) return;
    ui.joinForm.hidden = true;
    connect(name);
  });

  // Closing the tab is leaving on purpose: say so, or the server would keep
  // the session for a reconnection that never comes (and announce the leave
  // only when it expires).
  window.addEventListener("pagehide", () => {
    if (socket) socket.disconnect();
  });

  ui.leave.addEventListener("click", () => {
    if (socket) socket.disconnect();
    socket = null;
    ui.joinForm.hidden = false;
    ui.name.focus();
  });

  // -- messages --------------------------------------------------------------
  function showChat(message) {
    const mine = me !== null && message.from === me.id;
    const item = node(
      "li",
      {
        className: `line chat route-${message.route}${mine ? " mine" : ""}`,
        "data-testid": "chat-message",
        dataset: { route: String(message.route), from: String(message.from) },
      },
      node("span", { className: "time" }, clock()),
      node("span", { className: "who" }, mine ? `${message.name} (you)` : String(message.name)),
      node("span", { className: "badge" }, ROUTE_NAMES[message.route] ?? String(message.route)),
      node("span", { className: "text", "data-testid": "chat-text" }, String(message.text)),
    );
    addLine(item);
  }

  // The server sends nothing back to the sender for "others" and "whisper":
  // keep a local copy so the sender sees what they said.
  function showSentCopy(payload) {
    const where =
      payload.route === "whisper" ? `you whispered to ${nameOf(payload.to)}` : "you, to everyone but you";
    addLine(
      node(
        "li",
        { className: `line chat sent route-${payload.route}`, "data-testid": "sent-copy" },
        node("span", { className: "time" }, clock()),
        node("span", { className: "who" }, me ? `${me.name} (you)` : "you"),
        node("span", { className: "badge" }, where),
        node("span", { className: "text" }, payload.text),
      ),
    );
  }

  ui.composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = ui.text.value;
    if (!socket || !text.trim()) return;
    const payload = { text, route: ui.composer.elements.route.value };
    if (payload.route === "whisper") payload.to = selected;
    ui.send.disabled = true;
    ui.sendStatus.textContent = "";
    ui.sendStatus.dataset.state = "pending";
    try {
      const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("chat", payload);
      if (ack && ack.ok) {
        ui.text.value = "";
        ui.sendStatus.dataset.state = "ok";
        if (payload.route === "others" || payload.route === "whisper") showSentCopy(payload);
      } else {
        ui.sendStatus.dataset.state = "error";
        ui.sendStatus.textContent = `Not sent: ${ack?.error ?? "refused by the server"}`;
      }
    } catch {
      ui.sendStatus.dataset.state = "error";
      ui.sendStatus.textContent = "Not sent: no answer from the server";
    } finally {
      ui.send.disabled = !socket || !socket.connected;
      ui.text.focus();
    }
  });
})();
