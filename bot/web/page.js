// Meeting pages: a start time in the reader's own zone (the server wrote it in UTC).
"use strict";
document.querySelectorAll("time[data-unix]").forEach((t) => {
  t.textContent = new Date(t.dataset.unix * 1000).toLocaleString([], {
    weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
});
