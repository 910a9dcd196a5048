// The sign-in page (/signin?next=...) and the invite page (/invite/<code>): one form, two uses.
"use strict";

const $ = (id) => document.getElementById(id);
const invite = location.pathname.startsWith("/invite/")
  ? decodeURIComponent(location.pathname.slice("/invite/".length))
  : null;

function next() {
  // Only a path on this server: a crafted ?next= never sends anyone elsewhere after sign-in.
  const target = new URLSearchParams(location.search).get("next") || "/";
  return target.startsWith("/") && !target.startsWith("//") ? target : "/";
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

async function submit(event) {
  event.preventDefault();
  showError("");
  $("submit").disabled = true;
  const body = { name: $("name").value.trim(), password: $("password").value };
  if (invite) body.code = invite;
  try {
    const response = await fetch(invite ? "/api/auth/invite" : "/api/auth/signin", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || `The server answered ${response.status}.`);
    location.href = next();
  } catch (error) {
    showError(error.message);
  } finally {
    $("submit").disabled = false;
  }
}

if (invite) {
  document.title = "huddle · join the web chat";
  $("intro").textContent = "You are invited to the web chat: pick a name and a password (at least 10 characters).";
  $("password").autocomplete = "new-password";
  $("password").minLength = 10;
  $("submit").textContent = "Make my account";
}
$("account-form").addEventListener("submit", submit);
