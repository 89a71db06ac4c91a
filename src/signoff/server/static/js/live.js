// Live events over Server-Sent Events, with the session cookie. EventSource reconnects by
// itself and resumes with Last-Event-ID; if the stream is refused (the session ended),
// the API call below sends the person to sign in again.

import { api } from "./api.js";

const TYPES = [
  "request.created",
  "request.decided",
  "request.expired",
  "request.cancelled",
  "request.outcome",
  "request.consumed",
  "request.escalated",
];

const LABELS = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };

export function subscribe(onEvent, { onResync } = {}) {
  const status = document.getElementById("live-status");
  const show = (state) => {
    if (!status) return;
    status.dataset.state = state;
    status.textContent = LABELS[state];
  };
  let source = null;
  const open = () => {
    source = new EventSource("/v1/events");
    show("connecting");
    source.addEventListener("open", () => {
      show("live");
      // at every opening, the first included: what changed before the stream was open
      // (after the page's first read, or while the connection was away) is only in the
      // server, so read it again; events from here on are applied on top of that read
      if (onResync) onResync();
    });
    for (const type of TYPES) {
      source.addEventListener(type, (message) => {
        const event = JSON.parse(message.data);
        onEvent(event.type, event.request);
      });
    }
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        show("offline");
        // refused for good: find out why (a 401 sends us to sign in), then start again
        window.setTimeout(async () => {
          try {
            await api("/v1/me");
            open();
          } catch {
            /* the API call has already done what can be done */
          }
        }, 3000);
      } else {
        show("reconnecting");
      }
    });
  };
  open();
  window.addEventListener("pagehide", () => source?.close());
}
