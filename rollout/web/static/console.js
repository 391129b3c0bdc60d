// The console's few lines of script: live parts refreshed when the state moves (server-sent
// events), a confirmation before an action, one submit per form. Every page works without it.
"use strict";
(function () {
  const live = document.getElementById("live");
  let pending = null;

  async function refresh() {
    pending = null;
    const url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    const response = await fetch(url, { credentials: "same-origin", redirect: "manual" });
    if (!response.ok) {
      if (response.status === 401 || response.type === "opaqueredirect") window.location.reload();
      return;
    }
    const typing = [...document.querySelectorAll("#actions input:not([type=hidden]), #actions textarea")].some((f) => f.value);
    live.innerHTML = await response.text();
    const marker = live.querySelector("[data-actions]");
    if (marker && marker.dataset.actions !== live.dataset.actions && !typing) window.location.reload();
    if (live.querySelector("[data-final=yes]") && poller) clearInterval(poller);
  }

  function soon() {
    if (!pending) pending = setTimeout(refresh, 200);
  }

  let poller = null;
  if (live && window.EventSource) {
    const url = new URL("/live", window.location.origin);
    url.searchParams.set("after", live.dataset.seq || "0");
    if (live.dataset.rollout) url.searchParams.set("rollout", live.dataset.rollout);
    const source = new EventSource(url);
    source.addEventListener("state", soon);
    window.addEventListener("beforeunload", () => source.close());
  }
  if (live && live.dataset.poll) poller = setInterval(soon, Number(live.dataset.poll) * 1000);

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    if (form.dataset.sent) {
      event.preventDefault(); // a double click is one request (and the key makes it one job anyway)
      return;
    }
    form.dataset.sent = "1";
    if (form.dataset.live !== undefined) {
      event.preventDefault(); // stay on the page: its live part shows the action's progress
      send(form);
    }
  });

  async function send(form) {
    const status = form.querySelector("[role=status]");
    status.textContent = "Sending…";
    const response = await fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" });
    if (response.ok) {
      const link = document.createElement("a");
      link.href = response.url;
      link.textContent = "started: follow the job";
      status.replaceChildren(link);
      soon();
      return;
    }
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const why = page.querySelector(".notice");
    status.textContent = "Refused: " + (why ? why.textContent : response.status);
    delete form.dataset.sent;
  }
})();
