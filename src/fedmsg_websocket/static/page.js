// fedmsg live: the moksha livesocket protocol from the page that the daemon serves, with the daemon's
// resume extension: after a reconnect it asks for what it missed since the last message it showed.
// Everything from the bus is shown with textContent, never parsed as markup.
"use strict";

const KEEP = Number(new URLSearchParams(location.search).get("keep")) || 200;
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;
const SUMMARY_FIELDS = ["summary", "title", "subject", "name", "comment", "text", "message", "description"];

const list = document.getElementById("messages");
const status = document.getElementById("status");
const form = document.getElementById("subscribe");
const box = document.getElementById("prefix");

let socket = null;
let retryMs = RETRY_FIRST_MS;
let retryTimer = null;
let received = 0;
// The cursor ("id") of the last message shown for the current subscriptions; null: start live.
let lastId = null;

function url() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  return scheme + location.host + "/";
}

function prefixes() {
  const words = box.value.split(/[\s,]+/).filter(Boolean);
  return words.length ? words : ["*"];
}

function show(text, down) {
  status.textContent = text;
  status.classList.toggle("down", down);
}

function connect() {
  clearTimeout(retryTimer);
  const wanted = prefixes();
  const ws = new WebSocket(url());
  socket = ws;
  ws.onopen = () => {
    retryMs = RETRY_FIRST_MS;
    for (const topic of wanted) {
      ws.send(JSON.stringify({ topic: "__topic_subscribe__", body: topic }));
    }
    // A reconnect: everything after the last message shown, from the daemon's window, then live.
    if (lastId !== null) ws.send(JSON.stringify({ topic: "__resume__", body: { cursor: lastId } }));
    show(`connected to ${url()}, subscribed to ${wanted.join(" ")}; ${received} received`, false);
  };
  ws.onmessage = (event) => {
    if (ws !== socket) return;
    received += 1;
    const message = JSON.parse(event.data);
    if (typeof message.id === "string") lastId = message.id;
    add(message);
    show(`connected to ${url()}, subscribed to ${wanted.join(" ")}; ${received} received`, false);
  };
  ws.onclose = (event) => {
    if (ws !== socket) return; // replaced by a new subscription
    // Back off with jitter so that a restarted server is not hit by every page at once.
    const wait = retryMs / 2 + Math.random() * retryMs / 2;
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    const why = event.reason ? `: ${event.reason}` : "";
    show(`disconnected (${event.code}${why}); reconnecting in ${Math.round(wait / 1000)} s`, true);
    retryTimer = setTimeout(connect, wait);
  };
}

function summarise(body) {
  const msg = body && typeof body === "object" && body.msg && typeof body.msg === "object" ? body.msg : body;
  const who = body && (body.username || (msg && (msg.agent || msg.user || msg.owner)));
  let what = "";
  if (msg && typeof msg === "object") {
    for (const field of SUMMARY_FIELDS) {
      if (typeof msg[field] === "string" && msg[field]) { what = msg[field]; break; }
    }
    if (!what) what = Object.keys(msg).slice(0, 6).join(", ");
  } else {
    what = String(msg);
  }
  const text = (typeof who === "string" && who ? who + ": " : "") + what;
  return text.length > 160 ? text.slice(0, 157) + "…" : text;
}

function when(body) {
  const seconds = body && typeof body.timestamp === "number" ? body.timestamp : Date.now() / 1000;
  return new Date(seconds * 1000);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function add(message) {
  const item = element("li");
  const date = when(message.body);
  const time = element("time", "", date.toLocaleTimeString());
  time.dateTime = date.toISOString();
  item.append(time, element("span", "topic", message.topic), element("span", "summary", summarise(message.body)));
  const details = element("details");
  details.append(element("summary", "", "JSON"), element("pre", "", JSON.stringify(message.body, null, 2)));
  item.append(details);
  list.prepend(item);
  while (list.children.length > KEEP) list.lastElementChild.remove();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  // The protocol has no unsubscribe: a new set of prefixes is a new connection.
  const old = socket;
  socket = null;
  if (old) old.close(1000, "new subscription");
  retryMs = RETRY_FIRST_MS;
  lastId = null; // new subscriptions start live
  connect();
});

connect();
