// The built-in web chat page: history over the JSON API, live updates over server-sent events.
"use strict";

const state = {
  channel: decodeURIComponent(location.pathname.split("/")[2] || "general"),
  user: localStorage.getItem("huddle.user") || "",
  threadOf: null,
  // True when the server has accounts: the name is the signed-in one, not typed here.
  accounts: false,
  posts: new Map(),
  events: null,
};

const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function localTime(unix) {
  return new Date(unix * 1000).toLocaleString([], {
    weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
}

function formatText(text) {
  // `code` spans, and <t:unix|fallback> times shown in the reader's own time zone.
  return escapeHtml(text)
    .replace(/`([^`\n]+)`/g, "<code>$1</code>")
    .replace(/&lt;t:(\d+)\|([^&]*)&gt;/g, (_, unix, fallback) => `<time data-unix="${unix}" title="${fallback}">${localTime(Number(unix))}</time>`);
}

function joinHref(url) {
  // The web chat knows who you are: pre-fill your name on the huddle page.
  if (!state.user) return url;
  const link = new URL(url, location.href);
  if (!link.searchParams.has("name")) link.searchParams.set("name", state.user);
  return link.toString();
}

function renderPost(post) {
  const li = document.createElement("li");
  li.className = "message" + (post.bot ? " bot" : "") + (post.ephemeral ? " ephemeral" : "");
  li.dataset.testid = "message";
  li.dataset.id = post.id;
  const time = new Date(post.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  let body = `<div class="meta"><span class="author">${escapeHtml(post.user)}</span>${time}${post.edited_at ? " (updated)" : ""}</div>`;
  const buttons = post.buttons.map((b) => b.action
    ? `<button type="button" data-testid="action-button" data-action="${escapeHtml(b.action)}">${escapeHtml(b.label)}</button>`
    : `<a data-testid="card-button" target="_blank" rel="noopener" href="${escapeHtml(joinHref(b.url))}">${escapeHtml(b.label)}</a>`
  ).join("");
  const inner = `${post.title ? `<div class="title">${escapeHtml(post.title)}</div>` : ""}<div class="text">${formatText(post.markup || post.text)}</div>${buttons ? `<div class="buttons">${buttons}</div>` : ""}`;
  body += post.bot && (post.title || buttons) ? `<div class="card" data-testid="card">${inner}</div>` : inner;
  if (!post.thread_of && !post.ephemeral) body += `<button type="button" class="reply-link">Reply in thread</button>`;
  body += `<ol class="thread" data-thread="${post.id}"></ol>`;
  li.innerHTML = body;
  li.querySelectorAll("button[data-action]").forEach((button) => button.addEventListener("click", () => act(button.dataset.action)));
  const reply = li.querySelector(".reply-link");
  if (reply) reply.addEventListener("click", () => { state.threadOf = post.id; $("replying").hidden = false; $("text").focus(); });
  return li;
}

function upsert(post) {
  const old = state.posts.get(post.id);
  state.posts.set(post.id, post);
  const element = renderPost(post);
  const existing = document.querySelector(`#messages li[data-id="${post.id}"]`);
  if (existing) {
    // Keep the thread's replies when the parent is edited in place.
    element.querySelector(".thread").replaceWith(existing.querySelector(".thread"));
    existing.replaceWith(element);
    return;
  }
  if (old) return;
  const parent = post.thread_of ? document.querySelector(`ol.thread[data-thread="${post.thread_of}"]`) : null;
  (parent || $("messages")).appendChild(element);
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

function toSignIn() {
  location.href = `/signin?next=${encodeURIComponent(location.pathname)}`;
}

async function api(path, options = {}) {
  const response = await fetch(path, { headers: { "Content-Type": "application/json" }, ...options });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401 && state.accounts) toSignIn();
  if (!response.ok) throw new Error(body.error || `The server answered ${response.status}.`);
  return body;
}

async function whoAmI() {
  // Open mode (a server on loopback): {"accounts": false}, and people type their name.
  const response = await fetch("/api/auth/me");
  if (response.status === 401) { toSignIn(); return false; }
  const me = await response.json();
  state.accounts = me.accounts;
  if (me.accounts) {
    state.user = me.name;
    $("user").readOnly = true;
    $("sign-out").hidden = false;
  }
  return true;
}

async function signOut() {
  await fetch("/api/auth/signout", { method: "POST" });
  toSignIn();
}

async function loadChannels() {
  const { channels } = await api("/api/chat/channels");
  if (!channels.includes(state.channel)) channels.push(state.channel);
  $("channels").innerHTML = channels.map(
    (c) => `<li><a href="/chat/${encodeURIComponent(c)}" class="${c === state.channel ? "active" : ""}"># ${escapeHtml(c)}</a></li>`
  ).join("");
}

async function loadHistory() {
  state.posts.clear();
  $("messages").innerHTML = "";
  const { posts } = await api(`/api/chat/${encodeURIComponent(state.channel)}/messages?user=${encodeURIComponent(state.user)}`);
  posts.forEach(upsert);
}

function listen() {
  if (state.events) state.events.close();
  const url = `/api/chat/${encodeURIComponent(state.channel)}/events?user=${encodeURIComponent(state.user)}`;
  state.events = new EventSource(url);
  state.events.addEventListener("post", (event) => upsert(JSON.parse(event.data)));
  state.events.onopen = () => { $("status").textContent = "live"; loadHistory().catch((e) => showError(e.message)); };
  state.events.onerror = () => { $("status").textContent = "reconnecting…"; };
}

async function act(action) {
  if (!state.user) { showError("Type your name first (top left)."); $("user").focus(); return; }
  try {
    const { posts } = await api(`/api/chat/${encodeURIComponent(state.channel)}/actions`, {
      method: "POST", body: JSON.stringify({ user: state.user, action }),
    });
    posts.forEach(upsert);
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

async function send(event) {
  event.preventDefault();
  const text = $("text").value;
  if (!text.trim()) return;
  if (!state.user) { showError("Type your name first (top left)."); $("user").focus(); return; }
  showError("");
  try {
    const body = { user: state.user, text };
    if (state.threadOf) body.thread_of = state.threadOf;
    const { posts } = await api(`/api/chat/${encodeURIComponent(state.channel)}/messages`, { method: "POST", body: JSON.stringify(body) });
    posts.forEach(upsert);
    $("text").value = "";
    state.threadOf = null;
    $("replying").hidden = true;
  } catch (error) {
    showError(error.message);
  }
}

async function start() {
  try {
    if (!(await whoAmI())) return;
  } catch (error) {
    showError(`The server cannot be reached: ${error.message}`);
    return;
  }
  $("sign-out").addEventListener("click", () => signOut().catch((e) => showError(e.message)));
  $("channel-title").textContent = `# ${state.channel}`;
  $("user").value = state.user;
  $("user").addEventListener("change", () => {
    state.user = $("user").value.trim();
    localStorage.setItem("huddle.user", state.user);
    listen();
  });
  $("composer").addEventListener("submit", send);
  $("cancel-reply").addEventListener("click", () => { state.threadOf = null; $("replying").hidden = true; });
  $("new-channel").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("new-channel-name").value.trim().toLowerCase();
    if (/^[a-z0-9][a-z0-9_-]{0,79}$/.test(name)) location.href = `/chat/${name}`;
    else showError("Channel names are lowercase letters, digits, '-' and '_'.");
  });
  loadChannels().catch((e) => showError(e.message));
  listen();
}

start();
