// Times and the live countdowns. The server's clock is the truth: countdowns are
// corrected by the difference between it and this device's clock.

let skewMs = 0;

export function setServerTime(iso) {
  const server = Date.parse(iso);
  if (!Number.isNaN(server)) skewMs = server - Date.now();
}

export function now() {
  return Date.now() + skewMs;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, seconds);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${String(m % 60).padStart(2, "0")} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

export function countdown(ms) {
  if (ms <= 0) return "expired";
  const total = Math.ceil(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mmss = `${String(m).padStart(h ? 2 : 1, "0")}:${String(s).padStart(2, "0")}`;
  return h ? `${h}:${mmss}` : mmss;
}

export function ago(iso) {
  const seconds = Math.max(0, (now() - Date.parse(iso)) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${Math.floor(seconds)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

export function when(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

function tick() {
  for (const el of document.querySelectorAll("[data-expires-at]")) {
    const left = Date.parse(el.dataset.expiresAt) - now();
    el.textContent = left > 0 ? `${countdown(left)} left` : "expired";
    el.classList.toggle("soon", left > 0 && left < 60_000);
    if (left <= 0 && !el.dataset.zero) {
      el.dataset.zero = "1";
      el.dispatchEvent(new CustomEvent("countdown-zero", { bubbles: true }));
    }
  }
  for (const el of document.querySelectorAll("[data-since]")) {
    el.textContent = ago(el.dataset.since);
  }
}

let started = false;

/** Update every countdown and "ago" on the page once a second. */
export function startClock() {
  if (started) return;
  started = true;
  tick();
  window.setInterval(tick, 1000);
}

export function refreshClock() {
  tick();
}
