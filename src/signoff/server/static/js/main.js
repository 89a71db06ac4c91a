// The dashboard's entry point: each page's shell names the page it is.

import { deliveriesPage } from "./deliveries.js";
import { historyPage } from "./history.js";
import { queuePage } from "./queue.js";
import { replayPage } from "./replay.js";
import { requestPage } from "./request.js";
import { statsPage } from "./stats.js";
import { h } from "./dom.js";
import { errorText } from "./ui.js";

const PAGES = { queue: queuePage, request: requestPage, history: historyPage, stats: statsPage, deliveries: deliveriesPage, replay: replayPage };

const page = PAGES[document.body.dataset.page];
if (page) {
  page().catch((error) => {
    document.getElementById("main")?.prepend(h("p", { class: "error", role: "alert" }, errorText(error)));
  });
}
