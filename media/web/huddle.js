// The huddle web client: pre-join preview, then one RTCPeerConnection to the server (PROTOCOL.md).
// Plain browser JavaScript, no build step. The client publishes with its first offer; after that
// it only answers the server's offers, and maps receiving transceivers to people by `mid`.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("huddle-config").textContent);
  // Where this script came from: the vendored modules sit beside it.
  const SCRIPT_URL = document.currentScript ? document.currentScript.src : location.href;
  const params = new URLSearchParams(location.search);
  const token = params.get("t") || "";
  // Waiting longer than this for ICE gathering (an unreachable STUN server) is worse than
  // sending the candidates found so far.
  const GATHER_TIMEOUT_MS = 3000;
  const PING_INTERVAL_MS = 25000;
  // How often each tile's connection indicator is refreshed from getStats.
  const QUALITY_INTERVAL_MS = 2000;
  // The media path "disconnected" this long is an outage, not a hiccup: start over (resume).
  const RECOVER_AFTER_MS = 4000;
  // A socket that has not opened by then will not: try again.
  const SOCKET_OPEN_TIMEOUT_MS = 8000;
  // Give up a little before the server gives our place up (60 s).
  const RECONNECT_GIVE_UP_MS = 55000;
  const RECONNECT_MAX_DELAY_MS = 5000;
  // The pre-join check gives up on each step after this long (ICE tries TURN meanwhile).
  const CHECK_TIMEOUT_MS = 15000;
  // The camera in layers, smallest first (PROTOCOL.md, simulcast): each viewer is sent the one
  // its tile needs, and the server pauses the ones nobody needs (`layers`). Chromium encodes
  // three layers from 960x540 up, two below that (and would silently drop the largest).
  const SIMULCAST = [
    { rid: "q", scaleResolutionDownBy: 4 },
    { rid: "h", scaleResolutionDownBy: 2 },
    { rid: "f", scaleResolutionDownBy: 1 },
  ];
  const THREE_LAYERS_FROM = 540; // camera height, pixels
  // Tile sizes settle for this long before the server hears of them (`view`).
  const VIEW_REPORT_MS = 300;

  const $ = (id) => document.getElementById(id);
  const ui = {
    prejoin: $("prejoin"),
    preview: $("preview"),
    previewNote: $("preview-note"),
    form: $("join-form"),
    name: $("name-input"),
    join: $("join-button"),
    prejoinStatus: $("prejoin-status"),
    micLevel: $("mic-level"),
    audioSelect: $("audio-select"),
    videoSelect: $("video-select"),
    outputSelect: $("output-select"),
    outputLabel: $("output-label"),
    joinMuted: $("join-muted"),
    joinCameraOff: $("join-camera-off"),
    noiseToggle: $("noise-toggle"),
    noiseLabel: $("noise-label"),
    noiseButton: $("noise-button"),
    connectionCheck: $("connection-check"),
    call: $("call"),
    count: $("call-count"),
    grid: $("grid"),
    people: $("people"),
    peopleList: $("people-list"),
    toast: $("toast"),
    mute: $("mute-button"),
    camera: $("camera-button"),
    peopleButton: $("people-button"),
    notesPanel: $("notes-panel"),
    notes: $("notes"),
    notesStatus: $("notes-status"),
    notesButton: $("notes-button"),
    leave: $("leave-button"),
    controls: $("controls"),
    more: $("more-button"),
    end: $("end-button"),
    hostControls: $("host-controls"),
    muteAll: $("mute-all-button"),
    lockToggle: $("lock-toggle"),
    unmuteToggle: $("unmute-toggle"),
    hand: $("hand-button"),
    share: $("share-button"),
    presenting: $("presenting"),
    stopShare: $("stop-share-button"),
    view: $("view-button"),
    details: $("details-button"),
    chatPanel: $("chat-panel"),
    chatList: $("chat-list"),
    chatForm: $("chat-form"),
    chatText: $("chat-text"),
    chatButton: $("chat-button"),
    chatNotesToggle: $("chat-notes-toggle"),
    reactions: $("reactions"),
    passcode: $("passcode-input"),
    passcodeLabel: $("passcode-label"),
    waiting: $("waiting"),
    waitingLeave: $("waiting-leave"),
    lobbyToggle: $("lobby-toggle"),
    lobby: $("lobby"),
    lobbyList: $("lobby-list"),
    admitAll: $("admit-all-button"),
    ask: $("ask"),
    askText: $("ask-text"),
    askYes: $("ask-yes"),
    askNo: $("ask-no"),
    notice: $("notice"),
    noticeTitle: $("notice-title"),
    noticeText: $("notice-text"),
    rejoin: $("rejoin-button"),
    reconnecting: $("reconnecting"),
  };

  const state = {
    pc: null,
    ws: null,
    local: null, // MediaStream from getUserMedia, or null
    micSender: null, // the RTCRtpSender of our microphone (not of a shared tab's audio)
    cameraSender: null, // and of our camera (not of a shared screen)
    noise: null, // the running noise filter ({track, feed, resume, close}), or null
    wantNoise: false, // noise suppression asked for (it may still be starting)
    you: null, // participant object
    participants: new Map(), // id -> participant object, others, in joining order
    streams: new Map(), // mid -> {participant, kind, track}
    tiles: new Map(), // id -> {root, video, label, trackIds}
    screenTiles: new Map(), // presenter id -> tile of their shared screen
    screen: null, // our own shared screen (MediaStream from getDisplayMedia), or null
    publish: new Map(), // mid -> "screen" | "screen-audio": the sections we present on
    shownScreen: null, // whose screen is shown large (the latest, unless one was chosen)
    audio: true,
    video: true,
    room: { locked: false, unmuteAllowed: true, lobby: false },
    waitingList: [], // hosts: who is in the waiting room
    unread: 0, // chat messages not seen (the chat panel was closed)
    speaker: null, // who the server says is the speaker (stays through silences)
    speaking: new Set(), // who is speaking now
    pinned: null, // the tile the person chose to keep large, if any
    speakerView: false,
    details: false, // the connection figures shown on every tile
    finished: false, // left, ended or failed: no more reconnect or error noise
    resume: null, // the token from welcome: takes our place back on a new socket
    recovering: null, // {since, delay} while reconnecting after a drop
    mediaUp: false, // the media path has worked once (losing it is an outage)
    reshare: false, // present the screen again once the resumed connection is up
    inbox: Promise.resolve(),
    onScreen: new WeakMap(), // tile root -> whether any of it is in the viewport
    viewObserver: null, // IntersectionObserver of the tiles
    tileResize: null, // ResizeObserver of the tiles
    viewTimer: null,
    viewSent: "", // the last `view` sent, as JSON (only changes are sent)
    layers: null, // the camera layers the server last asked for (`layers`), or null
    timeline: [], // [what, ms since page start]: where the time to first video goes
  };

  function mark(what) {
    state.timeline.push([what, Math.round(performance.now())]);
  }

  // Read-only debug hook (tests call window.huddle.pc.getStats()).
  window.huddle = Object.freeze({
    get pc() { return state.pc; },
    get ws() { return state.ws; },
    get you() { return state.you; },
    get participants() {
      const all = state.you ? [state.you, ...state.participants.values()] : [...state.participants.values()];
      return all.map((p) => ({ ...p }));
    },
    get streams() {
      return [...state.streams.entries()].map(([mid, s]) => ({ mid, ...s }));
    },
    get timeline() {
      return state.timeline.map((entry) => [...entry]);
    },
    get room() { return { ...state.room }; },
    get speaker() { return state.speaker; },
    get sharing() { return !!state.screen; },
    get noiseSuppression() { return !!state.noise && state.micSender && state.micSender.track === state.noise.track; },
    get reconnecting() { return !!state.recovering; },
    get waiting() { return state.waitingList.map((w) => ({ ...w })); },
  });

  // -- pre-join ---------------------------------------------------------------------------------

  ui.name.value = (params.get("name") || "").slice(0, 64);
  ui.passcode.hidden = ui.passcodeLabel.hidden = !config.passcode;
  // The publishing offer (with its ICE gathering) is made while the person types their name, so
  // that Join only has to send it.
  const publishing = startPreview().then(preparePublishing);
  publishing.catch(() => {}); // reported when Join is clicked
  checkConnection().catch((err) => console.warn("connection check", err));
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (state.ws && state.ws.readyState === WebSocket.OPEN && !state.you) {
      // Trying another passcode on the same connection.
      ui.join.disabled = true;
      sendJoin();
    } else {
      join();
    }
  });

  function sendJoin() {
    const message = { type: "join", name: ui.name.value.trim() };
    if (config.passcode) message.passcode = ui.passcode.value;
    send(message);
  }

  // Devices chosen on an earlier visit (this browser only). Declarations, not consts: the
  // preview starts (and reads them) before this part of the script has run.
  function saved(kind) {
    try {
      return localStorage.getItem(`huddle.${kind}`) || "";
    } catch {
      return "";
    }
  }
  function remember(kind, id) {
    try {
      localStorage.setItem(`huddle.${kind}`, id);
    } catch {
      /* private mode: nothing kept */
    }
  }

  function deviceError(err) {
    // A sentence a person can act on, not the browser's exception name.
    if (!err) return "";
    if (err.name === "NotAllowedError") return "Access to the camera and microphone was refused: allow it in the browser's site settings, then reload.";
    if (err.name === "NotReadableError") return "The camera or microphone is in use by another app: close it, then reload.";
    if (err.name === "NotFoundError" || err.name === "OverconstrainedError") return "No camera or microphone was found.";
    return `The camera and microphone could not start (${err.name || err}).`;
  }

  async function startPreview() {
    const video = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } };
    const audioId = saved("audioinput");
    const videoId = saved("videoinput");
    const audio = audioId ? { deviceId: { ideal: audioId } } : true;
    if (videoId) video.deviceId = { ideal: videoId };
    const attempts = [{ audio, video }, { audio }, { video }];
    let failure = null;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      ui.previewNote.textContent = "This browser cannot use a camera here (the page needs HTTPS). You can still join to watch and listen.";
      return;
    }
    for (const constraints of attempts) {
      try {
        state.local = await navigator.mediaDevices.getUserMedia(constraints);
        break;
      } catch (err) {
        console.warn("getUserMedia", constraints, err);
        failure = failure || err;
      }
    }
    if (!state.local) {
      ui.previewNote.textContent = `${deviceError(failure) || "No camera or microphone available."} You can still join to watch and listen.`;
      return;
    }
    const hasVideo = state.local.getVideoTracks().length > 0;
    const hasAudio = state.local.getAudioTracks().length > 0;
    state.video = hasVideo;
    state.audio = hasAudio;
    if (hasVideo) {
      ui.preview.srcObject = state.local;
      ui.preview.play().catch(() => {});
      ui.previewNote.textContent = hasAudio ? "" : "No microphone: the others will not hear you.";
    } else {
      ui.previewNote.textContent = "No camera: the others will hear you but not see you.";
    }
    try {
      watchLevel(state.local);
    } catch (err) {
      console.warn("level meter", err);
    }
    listDevices().catch((err) => console.warn("devices", err));
    offerNoise();
  }

  // -- the pre-join check: a live microphone level, device choice, join muted ------------------

  let levelSource = null;
  function watchLevel(stream) {
    const track = stream.getAudioTracks()[0];
    if (!track || !window.AudioContext) return;
    const audio = watchLevel.context || (watchLevel.context = new AudioContext());
    if (levelSource) levelSource.disconnect();
    levelSource = audio.createMediaStreamSource(new MediaStream([track]));
    const analyser = audio.createAnalyser();
    analyser.fftSize = 1024;
    levelSource.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const tick = () => {
      if (state.you || state.finished) return; // the meter is for the check before joining
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const v of samples) sum += v * v;
      // RMS on a rough dB scale: -60 dB (silence) to 0 dB fills the meter.
      const db = 10 * Math.log10(sum / samples.length + 1e-12);
      ui.micLevel.value = Math.max(0, Math.min(1, (db + 60) / 60));
      requestAnimationFrame(tick);
    };
    audio.resume().catch(() => {});
    tick();
  }

  async function listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const fill = (select, kind) => {
      const ofKind = devices.filter((d) => d.kind === kind);
      select.replaceChildren(
        ...ofKind.map((d, n) => {
          const option = document.createElement("option");
          option.value = d.deviceId;
          option.textContent = d.label || `${kind} ${n + 1}`;
          return option;
        }),
      );
      const current = state.local && state.local.getTracks().find((t) => `${t.kind}input` === kind);
      const id = current ? current.getSettings().deviceId : saved(kind);
      if (id) select.value = id;
      select.disabled = ofKind.length < 2 && kind !== "audiooutput";
      return ofKind.length;
    };
    fill(ui.audioSelect, "audioinput");
    fill(ui.videoSelect, "videoinput");
    const outputs = fill(ui.outputSelect, "audiooutput");
    // Choosing a speaker needs setSinkId (not in every browser).
    ui.outputSelect.hidden = ui.outputLabel.hidden = !outputs || !HTMLMediaElement.prototype.setSinkId;
  }

  async function switchDevice(kind, deviceId) {
    remember(kind, deviceId);
    const mediaKind = kind === "audioinput" ? "audio" : "video";
    const constraints = { [mediaKind]: { deviceId: { exact: deviceId } } };
    let fresh;
    try {
      fresh = await navigator.mediaDevices.getUserMedia(constraints);
    } catch (err) {
      ui.previewNote.textContent = deviceError(err);
      return;
    }
    const track = fresh.getTracks()[0];
    for (const old of state.local.getTracks().filter((t) => t.kind === mediaKind)) {
      state.local.removeTrack(old);
      old.stop();
    }
    state.local.addTrack(track);
    if (mediaKind === "audio") {
      track.enabled = state.audio;
      // The filter, if on, takes the new microphone; what is sent stays its output.
      if (state.noise) state.noise.feed(track);
      await sendAudio();
      watchLevel(new MediaStream([outgoingAudio()]));
      return;
    }
    // The publishing connection sends the new device without renegotiating.
    if (state.cameraSender) await state.cameraSender.replaceTrack(track);
    ui.preview.srcObject = state.local;
  }

  ui.audioSelect.addEventListener("change", () => switchDevice("audioinput", ui.audioSelect.value));
  ui.videoSelect.addEventListener("change", () => switchDevice("videoinput", ui.videoSelect.value));
  ui.outputSelect.addEventListener("change", () => {
    remember("audiooutput", ui.outputSelect.value);
    for (const tile of state.tiles.values()) applySink(tile.video);
  });

  function applySink(video) {
    const id = ui.outputSelect.value || saved("audiooutput");
    if (id && video.setSinkId) video.setSinkId(id).catch((err) => console.warn("setSinkId", err));
  }

  async function join() {
    const name = ui.name.value.trim();
    if (!name) {
      ui.prejoinStatus.textContent = "Enter your name first.";
      ui.name.focus();
      return;
    }
    ui.join.disabled = true;
    ui.prejoinStatus.textContent = "Joining…";
    if (state.noise) state.noise.resume(); // a click: the browser lets audio run now
    // "Join with the microphone / camera off": the tracks are sent disabled from the start.
    if (ui.joinMuted.checked) setMicrophone(false);
    if (ui.joinCameraOff.checked && state.local) {
      state.video = false;
      for (const t of state.local.getVideoTracks()) t.enabled = false;
    }
    mark("join");
    const offer = publishing.catch((err) => {
      finish("Could not start the call", `Your browser refused to set up the call: ${err.message || err}`);
      throw err;
    });
    openSocket(() => offer);
    setInterval(() => send({ type: "ping" }), PING_INTERVAL_MS);
    setInterval(() => measureQuality().catch((err) => console.warn("stats", err)), QUALITY_INTERVAL_MS);
  }

  function openSocket(offer) {
    // `offer`: a function giving the publishing offer (made ahead for the first join, made
    // afresh when resuming: the network may have changed meanwhile).
    const ws = new WebSocket(signalingUrl());
    state.ws = ws;
    const opening = setTimeout(() => {
      if (ws.readyState === WebSocket.CONNECTING) ws.close();
    }, SOCKET_OPEN_TIMEOUT_MS);
    ws.addEventListener("open", () => {
      clearTimeout(opening);
      mark("socket open");
      if (state.recovering) send({ type: "resume", token: state.resume });
      else sendJoin();
    });
    ws.addEventListener("message", (event) => {
      if (ws !== state.ws) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      // One message at a time, in order: an offer is applied before the next message is looked at.
      state.inbox = state.inbox.then(() => handle(message, offer)).catch((err) => console.error(message.type, err));
    });
    let opened = false;
    ws.addEventListener("open", () => { opened = true; });
    ws.addEventListener("close", async () => {
      clearTimeout(opening);
      if (state.finished || ws !== state.ws) return;
      if (!state.you) {
        explainRefusal();
        return;
      }
      if (state.recovering && !opened) {
        // Refused while coming back (the huddle ended, the link expired): say so, stop trying.
        const refused = await refusal();
        if (refused && refused.status === 403 && !state.finished) {
          finish("Could not rejoin", refused.reason || "The huddle server refused the connection.", true);
          return;
        }
      }
      recover("the connection to the server closed");
    });
    return ws;
  }

  // -- coming back after a drop: a new socket resumes our place, with a new media connection --

  function recover(why) {
    if (state.finished || !state.you || !state.resume) return;
    if (!state.recovering) {
      console.warn("reconnecting:", why);
      mark(`reconnecting (${why})`);
      state.recovering = { since: Date.now(), delay: 0 };
      ui.reconnecting.hidden = false;
      const ws = state.ws;
      state.ws = null;
      // Code 4000: not leaving (a clean close would give our place up at once).
      if (ws && ws.readyState <= WebSocket.OPEN) ws.close(4000, "resuming");
      dropConnection();
    }
    const attempt = state.recovering;
    if (Date.now() - attempt.since > RECONNECT_GIVE_UP_MS) {
      finish("Connection lost", "The connection to the huddle was lost and did not come back. Check your network, then join again.", true);
      return;
    }
    setTimeout(() => {
      if (!state.finished && state.recovering === attempt) openSocket(() => preparePublishing());
    }, attempt.delay);
    attempt.delay = Math.min(Math.max(1000, attempt.delay * 2), RECONNECT_MAX_DELAY_MS);
  }

  function dropConnection() {
    if (!state.pc) return;
    const pc = state.pc;
    state.pc = null;
    state.mediaUp = false;
    state.publish = new Map();
    state.streams = new Map();
    state.micSender = state.cameraSender = null;
    state.layers = null; // the next connection starts with every layer, until told
    clearTimeout(state.stallTimer);
    pc.close();
  }

  function resumed(message) {
    // Everything we may have missed comes with welcome: start from it.
    state.recovering = null;
    ui.reconnecting.hidden = true;
    state.viewSent = ""; // the new connection's server side knows nothing of our tiles yet
    state.participants = new Map();
    ui.chatList.replaceChildren();
    if (state.screen) state.reshare = true;
    showToast("Reconnected.");
  }

  // -- the pre-join connection check: signaling round trip, then ICE to the media server -------

  function signalingUrl() {
    const url = new URL(location.pathname.replace(/\/$/, "") + "/ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.search = new URLSearchParams({ t: token }).toString();
    return url;
  }

  function showCheck(result, text) {
    ui.connectionCheck.dataset.result = result;
    ui.connectionCheck.textContent = text;
  }

  async function checkConnection() {
    // A socket and a peer connection of their own, closed once the answer is known: joining
    // later starts from scratch, whatever the check found.
    const ws = new WebSocket(signalingUrl());
    const pc = new RTCPeerConnection({ iceServers: config.iceServers, bundlePolicy: "max-bundle" });
    const timeout = new Promise((resolve) => setTimeout(() => resolve("timeout"), CHECK_TIMEOUT_MS));
    try {
      const opened = await Promise.race([
        new Promise((resolve) => {
          ws.addEventListener("open", () => resolve("open"), { once: true });
          ws.addEventListener("close", () => resolve("closed"), { once: true });
        }),
        timeout,
      ]);
      if (opened !== "open") {
        showCheck("unreachable", "The huddle server does not answer from this network. Check your connection, or try the link again later.");
        return;
      }
      const replies = [];
      let wake = () => {};
      ws.addEventListener("message", (event) => {
        try {
          replies.push(JSON.parse(event.data));
        } catch {
          return;
        }
        wake();
      });
      const reply = (type) =>
        Promise.race([
          new Promise((resolve) => {
            const look = () => {
              const found = replies.find((m) => m.type === type || m.type === "error" || m.type === "ended");
              if (found) resolve(found);
              else wake = look;
            };
            look();
          }),
          timeout,
        ]);
      const sent = performance.now();
      ws.send(JSON.stringify({ type: "ping" }));
      const pong = await reply("pong");
      if (pong === "timeout" || pong.type !== "pong") {
        showCheck("unreachable", "The huddle server does not answer. Try the link again later.");
        return;
      }
      const rtt = Math.round(performance.now() - sent);
      showCheck("checking", `Server answers in ${rtt} ms; checking audio and video…`);
      pc.addTransceiver("audio", { direction: "recvonly" });
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      ws.send(JSON.stringify({ type: "check", sdp: pc.localDescription.sdp }));
      const answer = await reply("check-answer");
      if (answer === "timeout" || answer.type !== "check-answer") {
        showCheck("unknown", `Server answers in ${rtt} ms; the audio and video check could not run.`);
        return;
      }
      await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      const connected = await Promise.race([
        new Promise((resolve) => {
          const look = () => {
            if (pc.connectionState === "connected") resolve("connected");
            else if (pc.connectionState === "failed") resolve("failed");
          };
          pc.addEventListener("connectionstatechange", look);
          look();
        }),
        timeout,
      ]);
      if (connected !== "connected") {
        showCheck(
          "blocked",
          "Audio and video cannot get through from this network to the server: a firewall probably blocks UDP. " +
            "Try another network (a phone's hotspot works), or ask whoever runs huddle to set up TURN.",
        );
        return;
      }
      const path = await candidatePath(pc);
      const relayed = path && path.candidateType === "relay";
      showCheck(
        relayed ? "relay" : "direct",
        relayed
          ? `Connection OK through a relay (${path.relayProtocol || path.protocol}): server answers in ${rtt} ms.`
          : `Connection OK: server answers in ${rtt} ms, audio and video go directly.`,
      );
    } finally {
      pc.close();
      ws.close();
    }
  }

  async function candidatePath(pc) {
    // The local candidate of the nominated pair: host/srflx (direct) or relay (TURN).
    const stats = await pc.getStats();
    let pairId = null;
    stats.forEach((r) => {
      if (r.type === "transport" && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
    });
    const pair = pairId && stats.get(pairId);
    return pair ? stats.get(pair.localCandidateId) : null;
  }

  async function refusal() {
    // A refused socket carries no reason (HTTP 403 or 429 before the upgrade); the join page,
    // asked again, says why in words (expired link, huddle ended, too many joins, ...).
    // {status, reason}, or null when the server could not be asked (the network is down).
    try {
      const response = await fetch(location.href, { cache: "no-store" });
      if (response.status !== 403 && response.status !== 429) return { status: response.status, reason: null };
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const text = page.querySelector('[data-testid="refusal-reason"]');
      return { status: response.status, reason: text ? text.textContent : null };
    } catch (err) {
      console.warn("explaining the refusal", err);
      return null;
    }
  }

  async function explainRefusal() {
    const refused = await refusal();
    finish("Could not join", (refused && refused.reason) || "The huddle server refused the connection or is unreachable.", true);
  }

  async function preparePublishing() {
    const pc = new RTCPeerConnection({
      // STUN, and TURN with credentials that expire with this page's join link.
      iceServers: config.iceServers,
      bundlePolicy: "max-bundle",
    });
    state.pc = pc;
    state.mediaUp = false;
    pc.addEventListener("track", (event) => {
      // The receiving transceivers are mapped by mid; a new one only needs a re-render.
      if (event.transceiver && event.transceiver.mid) render();
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== state.pc || state.finished) return;
      const now = pc.connectionState;
      mark(`connection ${now}`);
      clearTimeout(state.stallTimer);
      if (now === "connected") state.mediaUp = true;
      if (now === "disconnected" && state.mediaUp) {
        // Packets stopped: the browser may find its way back by itself; if not soon, start over.
        state.stallTimer = setTimeout(() => {
          if (pc === state.pc && pc.connectionState !== "connected") recover("no media for a few seconds");
        }, RECOVER_AFTER_MS);
      } else if (now === "failed" && state.mediaUp) {
        recover("the media connection failed");
      } else if (now === "failed") {
        finish("Media connection failed", "Audio and video could not get through to the huddle server (a firewall may block it).", true);
      }
    });
    const tracks = state.local ? state.local.getTracks() : [];
    for (const track of tracks) {
      const sent = track.kind === "audio" ? outgoingAudio() : track;
      const init = { direction: "sendonly", streams: [state.local] };
      if (track.kind === "video" && canSimulcast()) init.sendEncodings = layersFor(track);
      const transceiver = pc.addTransceiver(sent, init);
      if (track.kind === "video") {
        preferVp8(transceiver);
        state.cameraSender = transceiver.sender;
      } else {
        state.micSender = transceiver.sender;
      }
    }
    if (!tracks.length) {
      // The first offer needs one media section; a viewer offers to receive audio.
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    mark("offer ready");
    return pc.localDescription.sdp;
  }

  function layersFor(track) {
    const height = track.getSettings().height || 0;
    const layers = height >= THREE_LAYERS_FROM ? SIMULCAST : SIMULCAST.slice(1);
    return layers.map((e) => ({ ...e }));
  }

  function canSimulcast() {
    // Layers are VP8 here (the server reads VP8's picture IDs to switch between them).
    if (!window.RTCRtpSender || !RTCRtpSender.getCapabilities) return false;
    const video = RTCRtpSender.getCapabilities("video");
    return !!video && video.codecs.some((c) => c.mimeType.toLowerCase() === "video/vp8");
  }

  async function setLayers(active) {
    // The server says which layers anybody receives: the others are not even encoded.
    state.layers = active;
    const sender = state.cameraSender;
    if (!sender) return;
    const parameters = sender.getParameters();
    if (!parameters.encodings || parameters.encodings.length < 2) return;
    let changed = false;
    for (const encoding of parameters.encodings) {
      const on = active.includes(encoding.rid);
      if (encoding.active !== on) {
        encoding.active = on;
        changed = true;
      }
    }
    if (!changed) return;
    try {
      await sender.setParameters(parameters);
      mark(`layers ${active.join(",") || "none"}`);
    } catch (err) {
      console.warn("setParameters", err);
    }
  }

  // -- what this page shows: each camera tile's height and visibility (PROTOCOL.md `view`) ----

  function watchTile(root) {
    if (window.IntersectionObserver) {
      if (!state.viewObserver) {
        state.viewObserver = new IntersectionObserver((entries) => {
          for (const entry of entries) state.onScreen.set(entry.target, entry.isIntersecting);
          scheduleView();
        });
      }
      state.viewObserver.observe(root);
    }
    if (window.ResizeObserver) {
      if (!state.tileResize) state.tileResize = new ResizeObserver(() => scheduleView());
      state.tileResize.observe(root);
    }
  }

  function scheduleView() {
    if (state.viewTimer || !state.you || state.finished) return;
    state.viewTimer = setTimeout(() => {
      state.viewTimer = null;
      reportView();
    }, VIEW_REPORT_MS);
  }

  function reportView() {
    if (!state.you || state.finished) return;
    const away = document.visibilityState === "hidden"; // a minimised window, another tab
    const tiles = [];
    for (const [mid, stream] of state.streams) {
      if (stream.track !== "video") continue; // cameras: a shared screen has no layers
      const tile = state.tiles.get(stream.participant);
      if (!tile || !tile.root.isConnected) continue;
      // Camera off: an avatar stands there, nothing of the video is seen.
      const person = state.participants.get(stream.participant);
      const visible = !away && state.onScreen.get(tile.root) !== false && !(person && person.video === false);
      const height = Math.round(tile.video.clientHeight * (window.devicePixelRatio || 1));
      tiles.push({ mid, height: Math.max(0, Math.min(16384, height)), visible });
    }
    const body = JSON.stringify(tiles);
    if (body === state.viewSent) return;
    state.viewSent = body;
    send({ type: "view", tiles });
  }

  document.addEventListener("visibilitychange", () => scheduleView());
  window.addEventListener("resize", () => scheduleView());

  function preferVp8(transceiver) {
    // Everyone sending the same codec keeps forwarding simple for every receiver.
    if (!transceiver.setCodecPreferences || !RTCRtpReceiver.getCapabilities) return;
    const codecs = RTCRtpReceiver.getCapabilities("video").codecs;
    const vp8 = codecs.filter((c) => c.mimeType.toLowerCase() === "video/vp8");
    if (!vp8.length) return;
    try {
      transceiver.setCodecPreferences([...vp8, ...codecs.filter((c) => !vp8.includes(c))]);
    } catch (err) {
      console.warn("setCodecPreferences", err);
    }
  }

  function gathered(pc) {
    // No trickle ICE: offers and answers carry all candidates (PROTOCOL.md).
    return new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      const timer = setTimeout(done, GATHER_TIMEOUT_MS);
      function done() {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
      function check() {
        if (pc.iceGatheringState === "complete") done();
      }
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  // -- signaling --------------------------------------------------------------------------------

  function send(message) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
  }

  async function handle(message, offer) {
    if (message.type !== "pong") mark(`got ${message.type}`);
    switch (message.type) {
      case "welcome": {
        // The offer waits for the camera and microphone: someone who clicks Join before the
        // preview is up still joins with them, and the call screen shows them from the start.
        if (message.resumed) resumed(message);
        const sdp = await offer();
        state.you = message.you;
        state.resume = message.resume || null;
        if (!message.you.speak) setMicrophone(false); // a host keeps newcomers muted
        state.you.audio = state.audio;
        state.you.video = state.video;
        state.room = message.room || state.room;
        for (const p of message.participants) state.participants.set(p.id, p);
        try {
          await startNotes(message);
        } catch (err) {
          console.warn("shared notes", err);
          ui.notesStatus.textContent = "The shared notes could not load in this browser.";
        }
        for (const entry of message.chat || []) addChat(entry, false);
        showCall();
        send({ type: "offer", sdp });
        if (!state.audio || !state.video) send({ type: "state", audio: state.audio, video: state.video });
        break;
      }
      case "answer":
        await state.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
        if (state.reshare) {
          // We were presenting when the connection dropped: present again on the new one.
          state.reshare = false;
          send({ type: "share", on: true, audio: state.screen.getAudioTracks().length > 0 });
        }
        break;
      case "offer": {
        setStreams(message.streams);
        await state.pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
        // Sections the server receives on (a screen share): always answered sendonly, so that
        // presenting again later only attaches the tracks, without renegotiating.
        state.publish = new Map((message.publish || []).map((p) => [p.mid, p.track]));
        for (const transceiver of state.pc.getTransceivers()) {
          if (!state.publish.has(transceiver.mid)) continue;
          transceiver.direction = "sendonly";
          if (transceiver.receiver.track.kind === "video") preferVp8(transceiver);
        }
        await attachShare();
        await state.pc.setLocalDescription(await state.pc.createAnswer());
        // A description may set the layers' `active` anew: keep what the server asked.
        if (state.layers) await setLayers(state.layers);
        await gathered(state.pc);
        send({ type: "answer", sdp: state.pc.localDescription.sdp });
        mark("sent answer");
        render();
        break;
      }
      case "streams":
        setStreams(message.streams);
        render();
        break;
      case "layers":
        await setLayers(message.active || []);
        break;
      case "participant-joined":
      case "participant-updated":
        if (state.you && message.participant.id === state.you.id) {
          // What hosts made of us: a role, or being kept muted. Our own audio/video stay ours.
          state.you.role = message.participant.role;
          state.you.speak = message.participant.speak;
          state.you.hand = message.participant.hand;
          if (!isHost(state.you)) {
            state.waitingList = []; // no longer a host: the queue is not ours to see
            renderLobby();
          }
          updateButtons();
        } else {
          state.participants.set(message.participant.id, message.participant);
        }
        render();
        break;
      case "muted":
        setMicrophone(false);
        if (state.you) state.you.speak = message.speak;
        announceState();
        showToast(message.speak ? `${message.by} muted you.` : `${message.by} muted you; a host will let you speak.`);
        break;
      case "may-speak":
        if (state.you) state.you.speak = true;
        updateButtons();
        showToast(`${message.by} lets you speak: unmute when you are ready.`);
        break;
      case "camera-off-asked":
        ui.askText.textContent = `${message.by} asks you to turn your camera off.`;
        ui.ask.hidden = false;
        break;
      case "room":
        state.room = message.room;
        updateButtons();
        break;
      case "notice":
        showToast(message.text);
        break;
      case "reaction":
        showReaction(message.participant, message.emoji);
        break;
      case "chat":
        addChat(message, true);
        break;
      case "speaker":
        state.speaker = message.participant;
        state.speaking = new Set(message.speaking);
        render();
        break;
      case "waiting":
        ui.prejoin.hidden = true;
        ui.waiting.hidden = false;
        break;
      case "lobby":
        state.waitingList = message.waiting;
        renderLobby();
        if (message.arrived) {
          showToast(`${message.arrived.name} is waiting to join.`);
          chime();
        }
        break;
      case "participant-left":
        state.participants.delete(message.id);
        render();
        break;
      case "ended":
        finish("The huddle ended", message.reason ? `The huddle ended: ${message.reason}.` : "The huddle ended.");
        break;
      case "error":
        if (message.code === "bad_passcode" || (message.code === "rate_limited" && !state.you)) {
          // The huddle may have got its passcode after this page was opened.
          ui.passcode.hidden = ui.passcodeLabel.hidden = false;
          config.passcode = true;
          ui.prejoinStatus.textContent = message.message;
          ui.join.disabled = false;
          ui.passcode.focus();
          break;
        }
        if (message.fatal) {
          const titles = {
            denied: "You were not let in",
            media_unreachable: "Media connection failed",
            removed: "You were removed from the huddle",
            locked: "This huddle is locked",
            cannot_resume: "Connection lost",
          };
          const canRejoin = message.code === "locked" || message.code === "cannot_resume";
          finish(titles[message.code] || "Could not join", message.message, canRejoin);
        } else {
          showToast(message.message);
          console.warn("huddle error", message.code, message.message);
        }
        break;
      case "notes-update":
        remoteNotes(message.update, message.by);
        break;
      case "pong":
        break;
      default:
        console.warn("unknown message", message.type);
    }
  }

  function setStreams(streams) {
    state.streams = new Map(
      streams.map((s) => [s.mid, { participant: s.participant, kind: s.kind, track: s.track || s.kind }]),
    );
  }

  // -- the call ----------------------------------------------------------------------------------

  function showCall() {
    ui.prejoin.hidden = true;
    ui.waiting.hidden = true;
    ui.call.hidden = false;
    ui.preview.srcObject = null;
    updateButtons();
    render();
  }

  const CAMERA_TRACKS = ["audio", "video"];
  const SCREEN_TRACKS = ["screen", "screen-audio"];

  function remoteTracks(participantId, which = CAMERA_TRACKS) {
    if (!state.pc) return [];
    const tracks = [];
    for (const transceiver of state.pc.getTransceivers()) {
      const stream = transceiver.mid && state.streams.get(transceiver.mid);
      if (stream && stream.participant === participantId && which.includes(stream.track)) {
        tracks.push(transceiver.receiver.track);
      }
    }
    return tracks;
  }

  function showTracks(tile, tracks) {
    const trackIds = tracks.map((t) => t.id).sort().join(",");
    // A new MediaStream only when the set of tracks changed: replacing srcObject restarts playback.
    if (trackIds === tile.trackIds) return;
    tile.trackIds = trackIds;
    tile.video.srcObject = tracks.length ? new MediaStream(tracks) : null;
    if (tracks.length) tile.video.play().catch(() => {});
  }

  function renderScreens(everyone) {
    // One tile per shared screen (never our own: it would mirror itself), in joining order.
    const presenters = everyone.filter((p) => p.id !== state.you.id && remoteTracks(p.id, ["screen"]).length);
    for (const [id, tile] of state.screenTiles) {
      if (!presenters.some((p) => p.id === id)) {
        tile.root.remove();
        state.screenTiles.delete(id);
      }
    }
    if (!presenters.some((p) => p.id === state.shownScreen)) {
      state.shownScreen = presenters.length ? presenters[presenters.length - 1].id : null;
    }
    for (const p of presenters) {
      const tile = state.screenTiles.get(p.id) || createScreenTile(p);
      showTracks(tile, remoteTracks(p.id, SCREEN_TRACKS));
      tile.label.textContent = `${p.name}'s screen`;
      tile.root.classList.toggle("shown", p.id === state.shownScreen);
      ui.grid.appendChild(tile.root);
    }
    ui.grid.classList.toggle("presenting", presenters.length > 0);
    return presenters.length > 0;
  }

  function createScreenTile(p) {
    const root = document.createElement("div");
    root.className = "tile screen";
    root.dataset.testid = "screen-tile";
    root.dataset.participantId = p.id;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    applySink(video);
    const caption = document.createElement("div");
    caption.className = "caption";
    const label = document.createElement("span");
    label.className = "name";
    caption.append(label);
    root.append(video, caption);
    root.tabIndex = 0;
    root.setAttribute("role", "button");
    root.setAttribute("aria-label", `${p.name}'s screen: show it large; double-click for full screen`);
    const choose = () => {
      state.shownScreen = p.id;
      render();
    };
    root.addEventListener("click", choose);
    root.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        choose();
      }
    });
    root.addEventListener("dblclick", () => {
      if (root.requestFullscreen) root.requestFullscreen().catch(() => {});
    });
    const tile = { root, video, label, trackIds: null };
    state.screenTiles.set(p.id, tile);
    return tile;
  }

  function render() {
    if (!state.you) return;
    const everyone = [state.you, ...state.participants.values()];
    const present = new Set(everyone.map((p) => p.id));
    for (const [id, tile] of state.tiles) {
      if (!present.has(id)) {
        tile.root.remove();
        state.tiles.delete(id);
        if (state.viewObserver) state.viewObserver.unobserve(tile.root);
        if (state.tileResize) state.tileResize.unobserve(tile.root);
      }
    }
    // While someone presents, their screen is large and people are in a strip (no speaker tile).
    const presenting = renderScreens(everyone);
    for (const p of everyone) {
      const self = p.id === state.you.id;
      const tile = state.tiles.get(p.id) || createTile(p, self);
      const tracks = self ? (state.local ? state.local.getVideoTracks() : []) : remoteTracks(p.id);
      showTracks(tile, tracks);
      tile.label.textContent = self ? `${p.name} (you)` : p.name;
      tile.root.classList.toggle("no-video", !p.video || !tracks.some((t) => t.kind === "video"));
      tile.root.classList.toggle("muted", !p.audio);
      tile.root.classList.toggle("hand", p.hand != null);
      tile.root.classList.toggle("speaking", state.speaking.has(p.id));
      const main = state.pinned ? p.id === state.pinned : p.id === state.speaker;
      tile.root.classList.toggle("main", state.speakerView && !presenting && main);
      tile.root.classList.toggle("pinned", p.id === state.pinned);
      tile.label.textContent += p.hand != null ? " ✋" : "";
      ui.grid.appendChild(tile.root); // keeps joining order
    }
    ui.count.textContent = everyone.length === 1 ? "Just you" : `${everyone.length} people`;
    const waiting = state.waitingList.length;
    ui.peopleButton.textContent = `People (${everyone.length})` + (waiting ? ` · ${waiting} waiting` : "");
    renderPeople(everyone);
    layout();
    scheduleView();
  }

  function createTile(p, self) {
    const root = document.createElement("div");
    root.className = "tile" + (self ? " self" : "");
    root.dataset.testid = "participant";
    root.dataset.participantId = p.id;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = self; // never play your own microphone back
    if (!self) applySink(video);
    const avatar = document.createElement("div");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    avatar.textContent = (p.name.trim()[0] || "?").toUpperCase();
    const caption = document.createElement("div");
    caption.className = "caption";
    const label = document.createElement("span");
    label.className = "name";
    const mic = document.createElement("span");
    mic.className = "mic-off";
    mic.textContent = "muted";
    const quality = document.createElement("span");
    quality.className = "quality";
    quality.dataset.testid = "quality";
    quality.hidden = true;
    caption.append(label, mic, quality);
    root.append(video, avatar, caption);
    const tile = { root, video, label, quality, trackIds: null };
    // Click: pin this tile large (again: unpin). Double-click: full screen.
    root.tabIndex = 0;
    root.setAttribute("aria-label", `${p.name}: click to pin, double-click for full screen`);
    root.addEventListener("click", () => {
      state.pinned = state.pinned === p.id ? null : p.id;
      if (state.pinned) state.speakerView = true;
      updateButtons();
      render();
    });
    root.addEventListener("dblclick", () => {
      if (root.requestFullscreen) root.requestFullscreen().catch(() => {});
    });
    if (!self) watchTile(root);
    state.tiles.set(p.id, tile);
    return tile;
  }

  const ROLE_NAMES = { host: "host", cohost: "co-host", guest: "guest" };

  function isHost(p) {
    return !!p && (p.role === "host" || p.role === "cohost");
  }

  function renderPeople(everyone) {
    const hosting = isHost(state.you);
    ui.peopleList.replaceChildren(
      ...everyone.map((p) => {
        const li = document.createElement("li");
        li.dataset.participantId = p.id;
        li.dataset.testid = "person";
        const self = p.id === state.you.id;
        const flags = [
          p.hand != null ? `✋ ${handOrder(p.id)}` : null,
          ROLE_NAMES[p.role] || null,
          p.audio ? null : "muted",
          p.speak === false ? "kept muted" : null,
          p.video ? null : "camera off",
        ].filter(Boolean);
        const label = document.createElement("span");
        label.className = "person";
        label.textContent = (self ? `${p.name} (you)` : p.name) + (flags.length ? ` — ${flags.join(", ")}` : "");
        li.append(label);
        if (hosting && !self) li.append(hostButtons(p));
        return li;
      }),
    );
  }

  function handOrder(id) {
    // 1 for the first hand raised, 2 for the next...
    const everyone = state.you ? [state.you, ...state.participants.values()] : [];
    const raised = everyone.filter((p) => p.hand != null).sort((a, b) => a.hand - b.hand);
    return raised.findIndex((p) => p.id === id) + 1;
  }

  function hostButtons(p) {
    const box = document.createElement("span");
    box.className = "person-actions";
    const add = (label, testid, message) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      button.dataset.testid = testid;
      button.addEventListener("click", () => send({ ...message, participant: p.id }));
      box.append(button);
    };
    if (p.hand != null) add("Lower hand", "host-lower-hand", { type: "lower-hand" });
    if (p.audio) add("Mute", "host-mute", { type: "mute" });
    if (p.speak === false) add("Let speak", "host-let-speak", { type: "let-speak" });
    if (p.video) add("Ask camera off", "host-camera-off", { type: "ask-camera-off" });
    if (p.role === "cohost") add("Remove co-host", "host-uncohost", { type: "role", role: "participant" });
    else if (p.role !== "host") add("Make co-host", "host-cohost", { type: "role", role: "cohost" });
    if (p.role !== "host" || state.you.role === "host") add("Remove", "host-remove", { type: "remove" });
    return box;
  }

  function layout() {
    // Pick the column count that gives the largest 4:3 tiles that all fit on screen.
    const n = state.tiles.size || 1;
    // The grid's box less its padding (8 px each side): tiles never overflow it sideways.
    const width = (ui.grid.clientWidth || window.innerWidth) - 16;
    const height = ui.grid.clientHeight || window.innerHeight;
    const gap = 8;
    let best = { cols: 1, tileWidth: 0 };
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const w = Math.min((width - gap * (cols - 1)) / cols, ((height - gap * (rows - 1)) / rows) * (4 / 3));
      if (w > best.tileWidth) best = { cols, tileWidth: w };
    }
    ui.grid.style.setProperty("--cols", best.cols);
    ui.grid.style.setProperty("--tile-width", `${Math.max(80, Math.floor(best.tileWidth))}px`);
  }
  window.addEventListener("resize", layout);
  // Panels opening, More unfolding, a phone turning: whatever changes the grid's room.
  if (window.ResizeObserver) new ResizeObserver(() => layout()).observe(ui.grid);

  ui.more.addEventListener("click", () => {
    const open = !ui.controls.classList.contains("expanded");
    ui.controls.classList.toggle("expanded", open);
    ui.more.setAttribute("aria-expanded", String(open));
    ui.more.textContent = open ? "Less" : "More";
  });

  // -- controls -----------------------------------------------------------------------------------

  function setMicrophone(on) {
    state.audio = on && !!(state.local && state.local.getAudioTracks().length);
    for (const t of state.local ? state.local.getAudioTracks() : []) t.enabled = state.audio;
    if (state.noise) state.noise.track.enabled = state.audio;
  }

  ui.mute.addEventListener("click", () => {
    const tracks = state.local ? state.local.getAudioTracks() : [];
    if (!tracks.length) return;
    if (!state.audio && state.you && state.you.speak === false) {
      showToast("A host muted you; they will let you speak.");
      return;
    }
    setMicrophone(!state.audio);
    announceState();
  });

  ui.muteAll.addEventListener("click", () => send({ type: "mute-all" }));

  // -- noise suppression: the microphone through RNNoise (noise.mjs), sent in its place ---------

  function outgoingAudio() {
    // What the others hear: the filter's output while it runs, else the microphone itself.
    if (state.noise) return state.noise.track;
    return state.local ? state.local.getAudioTracks()[0] || null : null;
  }

  async function sendAudio() {
    const track = outgoingAudio();
    if (track) track.enabled = state.audio;
    if (state.micSender && track && state.micSender.track !== track) await state.micSender.replaceTrack(track);
  }

  function showNoise() {
    ui.noiseToggle.checked = state.wantNoise;
    ui.noiseButton.setAttribute("aria-pressed", String(state.wantNoise));
    ui.noiseButton.textContent = state.wantNoise ? "Noise filter on" : "Noise filter";
  }

  async function setNoise(on) {
    // Off by default: the filter costs processing a phone may not spare. The choice is kept.
    state.wantNoise = on;
    remember("noise", on ? "on" : "off");
    showNoise();
    const microphone = state.local && state.local.getAudioTracks()[0];
    if (on && !state.noise && microphone) {
      let filter;
      try {
        const { startFilter } = await import(new URL("noise.mjs", SCRIPT_URL).href);
        filter = await startFilter(microphone);
      } catch (err) {
        console.warn("noise filter", err);
        state.wantNoise = false;
        showNoise();
        showToast("Noise suppression could not start in this browser.");
        return;
      }
      if (!state.wantNoise || state.finished || state.noise) {
        filter.close(); // switched off (or started twice) while it loaded
        return;
      }
      state.noise = filter;
    } else if (!on && state.noise) {
      const filter = state.noise;
      state.noise = null;
      await sendAudio();
      filter.close();
      watchLevel(new MediaStream([outgoingAudio()]));
      return;
    }
    await sendAudio();
    if (outgoingAudio()) watchLevel(new MediaStream([outgoingAudio()]));
  }

  function offerNoise() {
    // Shown only where it can run and there is a microphone to filter: never a dead control.
    const can = !!(window.AudioWorkletNode && window.WebAssembly && state.local && state.local.getAudioTracks().length);
    ui.noiseToggle.hidden = ui.noiseLabel.hidden = ui.noiseButton.hidden = !can;
    if (can && saved("noise") === "on") setNoise(true);
  }

  ui.noiseToggle.addEventListener("change", () => setNoise(ui.noiseToggle.checked));
  ui.noiseButton.addEventListener("click", () => {
    if (state.noise) state.noise.resume();
    setNoise(!state.wantNoise);
  });
  ui.details.addEventListener("click", () => {
    state.details = !state.details;
    updateButtons();
    measureQuality().catch(() => {});
  });
  ui.view.addEventListener("click", () => {
    state.speakerView = !state.speakerView;
    if (!state.speakerView) state.pinned = null;
    updateButtons();
    render();
  });
  ui.hand.addEventListener("click", () => {
    if (!state.you) return;
    send({ type: "hand", raised: state.you.hand == null });
  });
  for (const emoji of ["👍", "👏", "😂", "❤️", "🎉", "😮"]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = emoji;
    button.dataset.testid = "react-button";
    button.setAttribute("aria-label", `React ${emoji}`);
    button.addEventListener("click", () => send({ type: "react", emoji }));
    ui.reactions.append(button);
  }
  document.addEventListener("keydown", (event) => {
    if (event.target.closest && event.target.closest("input, textarea")) return;
    if (event.ctrlKey || event.metaKey || event.altKey || ui.call.hidden) return;
    const key = event.key.toLowerCase();
    if (key === "h") ui.hand.click();
    else if (key === "m") ui.mute.click();
    else if (key === "v") ui.camera.click();
    else if (key === "s") ui.share.click();
  });

  // -- presenting a screen: a track of its own beside the camera (PROTOCOL.md, `share`) ---------

  async function startShare() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) {
      showToast("This browser cannot share its screen.");
      return;
    }
    let stream;
    try {
      // Text stays sharp at a low frame rate; a browser offers tab audio where it can.
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: true });
    } catch (err) {
      if (err.name !== "NotAllowedError") showToast(`Sharing could not start (${err.name || err}).`);
      return; // NotAllowedError: the person cancelled the picker
    }
    if (state.finished) {
      for (const t of stream.getTracks()) t.stop();
      return;
    }
    state.screen = stream;
    for (const track of stream.getVideoTracks()) {
      track.contentHint = "detail";
      // The browser's own "Stop sharing" ends the track.
      track.addEventListener("ended", stopShare);
    }
    await attachShare();
    send({ type: "share", on: true, audio: stream.getAudioTracks().length > 0 });
    updateButtons();
  }

  function stopShare() {
    if (!state.screen) return;
    for (const t of state.screen.getTracks()) t.stop();
    state.screen = null;
    attachShare().catch((err) => console.warn("stop sharing", err));
    send({ type: "share", on: false });
    updateButtons();
  }

  async function attachShare() {
    // The screen goes out on the sections the server offered for it; nothing while not sharing.
    if (!state.pc) return;
    for (const transceiver of state.pc.getTransceivers()) {
      const track = state.publish.get(transceiver.mid);
      if (!track) continue;
      const kind = track === "screen" ? "video" : "audio";
      const source = (state.screen && state.screen.getTracks().find((t) => t.kind === kind)) || null;
      if (transceiver.sender.track === source) continue;
      await transceiver.sender.replaceTrack(source);
      if (kind === "video" && source) {
        // A shared screen keeps its resolution (text stays readable) and gives up frame rate.
        const parameters = transceiver.sender.getParameters();
        parameters.degradationPreference = "maintain-resolution";
        await transceiver.sender.setParameters(parameters).catch((err) => console.warn("screen parameters", err));
      }
    }
  }

  ui.share.addEventListener("click", () => {
    if (state.screen) stopShare();
    else startShare().catch((err) => console.warn("share", err));
  });
  ui.stopShare.addEventListener("click", stopShare);

  // -- in-call chat: text only (never HTML), links made clickable ------------------------------

  const URL_PATTERN = /\bhttps?:\/\/[^\s<>"]+/g;

  function addChat(entry, fresh) {
    const li = document.createElement("li");
    li.dataset.testid = "chat-message";
    const who = document.createElement("span");
    who.className = "chat-name";
    who.textContent = entry.participant === (state.you && state.you.id) ? `${entry.name} (you)` : entry.name;
    const when = document.createElement("time");
    when.dateTime = entry.at;
    when.textContent = new Date(entry.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const body = document.createElement("span");
    body.className = "chat-text";
    let last = 0;
    for (const match of entry.text.matchAll(URL_PATTERN)) {
      body.append(document.createTextNode(entry.text.slice(last, match.index)));
      const a = document.createElement("a");
      a.href = match[0];
      a.textContent = match[0];
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      body.append(a);
      last = match.index + match[0].length;
    }
    body.append(document.createTextNode(entry.text.slice(last)));
    li.append(who, " ", when, document.createElement("br"), body);
    ui.chatList.append(li);
    li.scrollIntoView({ block: "nearest" });
    if (fresh && ui.chatPanel.hidden) {
      state.unread += 1;
      updateChatButton();
    }
  }

  function updateChatButton() {
    ui.chatButton.textContent = state.unread ? `Chat (${state.unread} new)` : "Chat";
    ui.chatButton.classList.toggle("badge", state.unread > 0);
  }

  ui.chatButton.addEventListener("click", () => {
    ui.chatPanel.hidden = !ui.chatPanel.hidden;
    ui.chatButton.setAttribute("aria-expanded", String(!ui.chatPanel.hidden));
    if (!ui.chatPanel.hidden) {
      state.unread = 0;
      updateChatButton();
      ui.chatText.focus();
    }
    layout();
  });

  ui.chatForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.chatText.value.trim();
    if (!text) return;
    send({ type: "chat", text });
    ui.chatText.value = "";
  });

  ui.chatNotesToggle.addEventListener("change", () => send({ type: "chat-to-notes", on: ui.chatNotesToggle.checked }));

  // -- connection quality, from what WebRTC reports -------------------------------------------

  let lastStats = new Map(); // report id -> the previous inbound/outbound report

  // Loss and round trip beyond these make a link "fair", then "poor".
  const FAIR = { loss: 0.02, rtt: 0.3 };
  const POOR = { loss: 0.08, rtt: 0.8 };

  function grade(loss, rtt) {
    if (loss >= POOR.loss || rtt >= POOR.rtt) return "poor";
    if (loss >= FAIR.loss || rtt >= FAIR.rtt) return "fair";
    return "good";
  }

  async function measureQuality() {
    if (!state.pc || !state.you || state.finished) return;
    // A tile's figures are its camera's and microphone's (a shared screen has its own tile).
    const byMid = new Map(
      [...state.streams.entries()].filter(([, s]) => CAMERA_TRACKS.includes(s.track)).map(([mid, s]) => [mid, s.participant]),
    );
    const reports = await state.pc.getStats();
    const seconds = QUALITY_INTERVAL_MS / 1000;
    const per = new Map(); // participant id -> figures
    let rtt = null;
    const next = new Map();
    reports.forEach((r) => {
      if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") {
        rtt = r.currentRoundTripTime ?? rtt;
      }
      if (r.type !== "inbound-rtp" && r.type !== "outbound-rtp") return;
      next.set(r.id, r);
      const before = lastStats.get(r.id);
      const who = r.type === "outbound-rtp" ? state.you.id : byMid.get(r.mid);
      if (!who) return;
      const f = per.get(who) || { kbps: 0, fps: null, lost: 0, received: 0, jitter: null, height: null };
      const bytes = r.type === "inbound-rtp" ? r.bytesReceived : r.bytesSent;
      if (before) f.kbps += (8 * (bytes - (r.type === "inbound-rtp" ? before.bytesReceived : before.bytesSent))) / 1000 / seconds;
      if (r.kind === "video" && r.framesPerSecond != null) f.fps = r.framesPerSecond;
      // The layer received (simulcast: the server sends the one that fills the tile).
      if (r.type === "inbound-rtp" && r.kind === "video" && r.frameHeight) f.height = r.frameHeight;
      if (r.type === "inbound-rtp" && before) {
        f.lost += Math.max(0, r.packetsLost - before.packetsLost);
        f.received += Math.max(0, r.packetsReceived - before.packetsReceived);
      }
      if (r.jitter != null) f.jitter = Math.max(f.jitter || 0, r.jitter);
      per.set(who, f);
    });
    lastStats = next;
    for (const [id, tile] of state.tiles) {
      const f = per.get(id);
      if (!f) continue;
      const loss = f.received + f.lost ? f.lost / (f.received + f.lost) : 0;
      const level = grade(loss, rtt || 0);
      const parts = [
        rtt != null ? `RTT ${Math.round(rtt * 1000)} ms` : null,
        id === state.you.id ? null : `loss ${(loss * 100).toFixed(1)}%`,
        f.jitter != null && id !== state.you.id ? `jitter ${Math.round(f.jitter * 1000)} ms` : null,
        `${Math.round(f.kbps)} kbit/s`,
        f.fps != null ? `${Math.round(f.fps)} fps` : null,
        f.height ? `${f.height}p` : null,
      ].filter(Boolean);
      tile.quality.hidden = false;
      tile.quality.dataset.level = level;
      tile.quality.textContent = level;
      tile.quality.title = parts.join(" · ");
      tile.quality.dataset.details = parts.join(" · ");
      tile.root.classList.toggle("show-details", state.details);
      if (state.details) tile.quality.textContent = `${level} · ${parts.join(" · ")}`;
    }
  }

  function showReaction(participantId, emoji) {
    const tile = state.tiles.get(participantId);
    if (!tile) return;
    const bubble = document.createElement("span");
    bubble.className = "reaction";
    bubble.dataset.testid = "reaction";
    bubble.textContent = emoji;
    tile.root.append(bubble);
    setTimeout(() => bubble.remove(), 4000);
  }
  ui.lobbyToggle.addEventListener("change", () => send({ type: "lobby", on: ui.lobbyToggle.checked }));
  ui.admitAll.addEventListener("click", () => send({ type: "admit-all" }));
  ui.waitingLeave.addEventListener("click", () => {
    send({ type: "leave" });
    finish("You left the waiting room", "You can come back with the same link while the huddle is on.", true);
  });

  function renderLobby() {
    const count = state.waitingList.length;
    ui.lobby.hidden = !count;
    ui.peopleButton.dataset.waiting = String(count);
    ui.peopleButton.classList.toggle("badge", count > 0);
    ui.lobbyList.replaceChildren(
      ...state.waitingList.map((w) => {
        const li = document.createElement("li");
        li.dataset.testid = "waiter";
        const label = document.createElement("span");
        label.textContent = w.role === "guest" ? `${w.name} (guest)` : w.name;
        const admit = document.createElement("button");
        admit.type = "button";
        admit.textContent = "Admit";
        admit.dataset.testid = "admit-button";
        admit.addEventListener("click", () => send({ type: "admit", participant: w.id }));
        const deny = document.createElement("button");
        deny.type = "button";
        deny.textContent = "Deny";
        deny.dataset.testid = "deny-button";
        deny.addEventListener("click", () => send({ type: "deny", participant: w.id }));
        li.append(label, admit, deny);
        return li;
      }),
    );
    render();
  }

  function chime() {
    // A short tone: someone is at the door (no sound file to fetch).
    try {
      const audio = new AudioContext();
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
      tone.connect(gain).connect(audio.destination);
      tone.start();
      tone.stop(audio.currentTime + 0.4);
      tone.onended = () => audio.close();
    } catch (err) {
      console.warn("chime", err);
    }
  }
  ui.lockToggle.addEventListener("change", () => send({ type: "lock", locked: ui.lockToggle.checked }));
  ui.unmuteToggle.addEventListener("change", () => send({ type: "allow-unmute", allowed: ui.unmuteToggle.checked }));
  ui.end.addEventListener("click", () => {
    if (confirm("End the huddle for everyone?")) send({ type: "end" });
  });
  ui.askYes.addEventListener("click", () => {
    ui.ask.hidden = true;
    if (!state.video) return;
    state.video = false;
    for (const t of state.local ? state.local.getVideoTracks() : []) t.enabled = false;
    announceState();
  });
  ui.askNo.addEventListener("click", () => { ui.ask.hidden = true; });

  ui.camera.addEventListener("click", () => {
    const tracks = state.local ? state.local.getVideoTracks() : [];
    if (!tracks.length) return;
    state.video = !state.video;
    for (const t of tracks) t.enabled = state.video;
    announceState();
  });

  // -- shared notes: a Yjs document (a CRDT); the server merges everyone's updates ------------
  // Two people typing at once both keep their words. Updates go out in small batches; the
  // document survives a reload (the server's state comes with welcome) and a reconnect (what
  // was typed meanwhile is sent once the socket is back).

  const NOTES_FLUSH_MS = 100;
  const notes = { Y: null, doc: null, text: null, pending: [], timer: null, loading: null };

  function loadYjs() {
    // Yjs 13.6.33 from the npm registry, vendored (media/web/vendor/README.md).
    notes.loading = notes.loading || import(new URL("yjs.mjs", SCRIPT_URL).href);
    return notes.loading;
  }
  loadYjs().catch((err) => console.warn("loading Yjs", err));

  function fromBase64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function toBase64(bytes) {
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(binary);
  }

  async function startNotes(message) {
    const Y = (notes.Y = await loadYjs());
    const server = fromBase64(message.notesState || "");
    if (notes.doc && message.resumed) {
      // Back after a drop: take what others wrote, send what we wrote meanwhile.
      Y.applyUpdate(notes.doc, server, "remote");
      queueNotes(Y.encodeStateAsUpdate(notes.doc, Y.encodeStateVectorFromUpdate(server)));
    } else {
      notes.doc = new Y.Doc();
      notes.text = notes.doc.getText("notes");
      Y.applyUpdate(notes.doc, server, "remote");
      notes.doc.on("update", (update, origin) => {
        if (origin !== "remote") queueNotes(update);
      });
    }
    ui.notes.value = notes.text.toString();
    ui.notes.disabled = false;
  }

  function queueNotes(update) {
    notes.pending.push(update);
    ui.notesStatus.textContent = "Saving…";
    if (!notes.timer) notes.timer = setTimeout(flushNotes, NOTES_FLUSH_MS);
  }

  function flushNotes() {
    clearTimeout(notes.timer);
    notes.timer = null;
    if (!notes.pending.length || !notes.Y) return;
    const update = notes.Y.mergeUpdates(notes.pending);
    notes.pending = [];
    send({ type: "notes-update", update: toBase64(update) });
    ui.notesStatus.textContent = "Saved";
  }

  function remoteNotes(encoded, by) {
    if (!notes.doc) return;
    const Y = notes.Y;
    const area = ui.notes;
    // The caret stays where it was in the text, wherever the others' edits land. It is tied to
    // the character before it (assoc -1): someone typing at the same place does not carry it
    // along, so our next keystroke still follows our own last one (no interleaved letters).
    const focused = document.activeElement === area;
    const marks = focused
      ? [area.selectionStart, area.selectionEnd].map((i) => Y.createRelativePositionFromTypeIndex(notes.text, i, -1))
      : null;
    Y.applyUpdate(notes.doc, fromBase64(encoded), "remote");
    area.value = notes.text.toString();
    if (marks) {
      const [start, end] = marks.map((m) => {
        const at = Y.createAbsolutePositionFromRelativePosition(m, notes.doc);
        return at ? at.index : 0;
      });
      area.setSelectionRange(start, end);
    }
    ui.notesStatus.textContent = `Edited by ${by}`;
  }

  ui.notes.disabled = true; // until the shared document is loaded
  ui.notes.addEventListener("input", () => {
    if (!notes.doc) return;
    // The textarea changed between a common start and a common end: that is the edit.
    const before = notes.text.toString();
    const after = ui.notes.value;
    let start = 0;
    while (start < before.length && start < after.length && before[start] === after[start]) start++;
    let endBefore = before.length;
    let endAfter = after.length;
    while (endBefore > start && endAfter > start && before[endBefore - 1] === after[endAfter - 1]) {
      endBefore--;
      endAfter--;
    }
    notes.doc.transact(() => {
      if (endBefore > start) notes.text.delete(start, endBefore - start);
      if (endAfter > start) notes.text.insert(start, after.slice(start, endAfter));
    }, "local");
  });

  ui.notesButton.addEventListener("click", () => {
    ui.notesPanel.hidden = !ui.notesPanel.hidden;
    ui.notesButton.setAttribute("aria-expanded", String(!ui.notesPanel.hidden));
    layout();
  });

  ui.peopleButton.addEventListener("click", () => {
    ui.people.hidden = !ui.people.hidden;
    ui.peopleButton.setAttribute("aria-expanded", String(!ui.people.hidden));
    layout();
  });

  ui.leave.addEventListener("click", () => {
    flushNotes();
    send({ type: "leave" });
    finish("You left the huddle", "You can join again with the same link while the huddle is on.", true);
  });

  ui.rejoin.addEventListener("click", () => location.reload());

  function announceState() {
    if (state.you) {
      state.you.audio = state.audio;
      state.you.video = state.video;
    }
    send({ type: "state", audio: state.audio, video: state.video });
    updateButtons();
    render();
  }

  function updateButtons() {
    const hasAudio = !!(state.local && state.local.getAudioTracks().length);
    const hasVideo = !!(state.local && state.local.getVideoTracks().length);
    // No microphone or camera: no button for it (a button that cannot work is not shown).
    ui.mute.hidden = !hasAudio;
    ui.camera.hidden = !hasVideo;
    ui.mute.textContent = state.audio ? "Mute" : "Unmute";
    ui.mute.setAttribute("aria-pressed", String(!state.audio));
    ui.camera.textContent = state.video ? "Camera off" : "Camera on";
    ui.camera.setAttribute("aria-pressed", String(!state.video));
    ui.details.setAttribute("aria-pressed", String(state.details));
    const sharing = !!state.screen;
    ui.share.textContent = sharing ? "Stop sharing" : "Share screen";
    ui.share.setAttribute("aria-pressed", String(sharing));
    ui.share.hidden = !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
    ui.presenting.hidden = !sharing;
    ui.view.textContent = state.speakerView ? "Grid view" : "Speaker view";
    ui.view.setAttribute("aria-pressed", String(state.speakerView));
    ui.grid.classList.toggle("speaker-view", state.speakerView);
    const raised = !!(state.you && state.you.hand != null);
    ui.hand.textContent = raised ? "Lower hand" : "Raise hand";
    ui.hand.setAttribute("aria-pressed", String(raised));
    const hosting = isHost(state.you);
    ui.hostControls.hidden = !hosting;
    ui.end.hidden = !hosting;
    ui.lockToggle.checked = state.room.locked;
    ui.lobbyToggle.checked = !!state.room.lobby;
    ui.chatNotesToggle.checked = state.room.chatToNotes !== false;
    ui.unmuteToggle.checked = state.room.unmuteAllowed;
  }

  // Notices stack (a host's action often comes with a note to you and one to everyone); each
  // goes after a few seconds, the oldest first when there are too many.
  const TOAST_MS = 6000;
  const TOASTS_SHOWN = 3;
  function showToast(text) {
    const line = document.createElement("span");
    line.className = "toast-line";
    line.textContent = text;
    ui.toast.append(line);
    while (ui.toast.childElementCount > TOASTS_SHOWN) ui.toast.firstElementChild.remove();
    ui.toast.hidden = false;
    setTimeout(() => {
      line.remove();
      if (!ui.toast.childElementCount) ui.toast.hidden = true;
    }, TOAST_MS);
  }

  function finish(title, text, canRejoin = false) {
    if (state.finished) return;
    state.finished = true;
    if (state.ws) state.ws.close();
    if (state.pc) state.pc.close();
    if (state.local) for (const t of state.local.getTracks()) t.stop();
    if (state.noise) state.noise.close();
    if (state.screen) for (const t of state.screen.getTracks()) t.stop();
    for (const tile of [...state.tiles.values(), ...state.screenTiles.values()]) tile.video.srcObject = null;
    ui.prejoin.hidden = true;
    ui.call.hidden = true;
    ui.notice.hidden = false;
    ui.noticeTitle.textContent = title;
    ui.noticeText.textContent = text;
    ui.rejoin.hidden = !canRejoin;
  }
})();
