// Loads GET /v1/requests a page at a time into a list: the filters of the moment, "more"
// continuing from the last page's cursor, a newer load superseding one still in flight, and
// the busy / error / empty / more states of the page kept right. Shared by queue and history.
//
// Live events go through the pager too (`onEvent`): a fresh load replaces the whole list
// with a page read at some instant, so an event that arrives while that page is on its way
// would be wiped out by it. The pager keeps the events seen during a load and applies them
// again on top of the new page (applying one twice is harmless: the list keeps the newest).

import { api } from "./api.js";
import { $, show } from "./dom.js";
import { errorText } from "./ui.js";

export function requestPager({ list, pageSize, filters, ids, reset, add, live, size, afterPage, afterAll }) {
  let cursor = null;
  let generation = 0;
  const inFlight = new Set(); // the event buffers of the loads on their way

  function onEvent(type, request) {
    for (const missed of inFlight) missed.push([type, request]);
    live(type, request);
  }

  async function load({ more = false } = {}) {
    const mine = ++generation;
    const missed = [];
    inFlight.add(missed);
    const params = new URLSearchParams({ limit: String(pageSize) });
    for (const [k, v] of Object.entries(filters())) if (v) params.set(k, v);
    if (more && cursor) params.set("cursor", cursor);
    list.setAttribute("aria-busy", "true");
    try {
      const page = await api(`/v1/requests?${params}`);
      if (mine !== generation) return;
      if (!more) {
        reset();
        list.replaceChildren();
      }
      for (const request of page.items) add(request);
      if (!more) for (const [type, request] of missed) live(type, request);
      if (afterPage) afterPage({ more });
      cursor = page.next_cursor;
      show($(ids.more), Boolean(cursor));
      show($(ids.error), false);
    } catch (error) {
      $(ids.error).textContent = errorText(error);
      show($(ids.error), true);
    } finally {
      inFlight.delete(missed);
      list.setAttribute("aria-busy", "false");
      show($(ids.empty), size() === 0);
      if (afterAll) afterAll();
    }
  }

  return { load, onEvent };
}
