// ovencast console: the little the pages need a script for. A job's page follows the
// job's progress over the API's WebSocket (/api/v1/training-jobs/{id}/events; the
// session cookie signs it in) and updates its table in place: no reload.
"use strict";

(function () {
  const progress = document.getElementById("job-progress");
  if (!progress || progress.dataset.ended === "true") {
    return;
  }
  const live = document.getElementById("live");
  const runs = document.getElementById("runs");
  const jobStatus = document.getElementById("job-status");

  function row(product) {
    let found = runs.querySelector(`tr[data-product="${CSS.escape(product)}"]`);
    if (!found) {
      found = document.createElement("tr");
      found.dataset.product = product;
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = product;
      found.append(name);
      for (const cls of ["run-status", "run-progress", "run-reason"]) {
        const cell = document.createElement("td");
        cell.className = cls;
        found.append(cell);
      }
      runs.querySelector("tr.empty")?.remove();
      runs.append(found);
    }
    return found;
  }

  function setStatus(element, status) {
    const badge = document.createElement("span");
    badge.className = `status status-${status}`;
    badge.textContent = status;
    element.replaceChildren(badge);
  }

  const STATUS = {queued: "pending", started: "running", backtest: "running", trial: "running",
                  family_failed: "running", finished: "trained", failed: "failed",
                  timed_out: "timed_out", refused: "refused"};

  function productEvent(message) {
    const tr = row(message.product);
    setStatus(tr.querySelector(".run-status"), STATUS[message.event] || message.event);
    const step = tr.querySelector(".run-progress");
    const reason = tr.querySelector(".run-reason");
    if (message.event === "backtest") {
      step.textContent = `backtest ${message.n} of ${message.total}: ${message.family}`;
    } else if (message.event === "trial") {
      step.textContent = `trial ${message.n} of ${message.total}`;
    } else if (message.event === "started") {
      step.textContent = "training";
    } else if (message.event === "finished") {
      step.textContent = message.version ? `version ${message.version}` : "done";
      reason.textContent = message.model || message.family || "";
    } else if (message.reason) {
      reason.textContent = message.reason;
    }
    live.textContent = `${message.product}: ${message.event.replace("_", " ")}`;
  }

  function snapshot(message) {
    setStatus(jobStatus, message.status);
    for (const run of message.runs || []) {
      const tr = row(run.product);
      setStatus(tr.querySelector(".run-status"), run.status);
      if (run.reason) {
        tr.querySelector(".run-reason").textContent = run.reason;
      }
    }
    live.textContent = `Following job ${message.job_id} live.`;
  }

  function jobEnded(message) {
    setStatus(jobStatus, message.status);
    live.textContent = `The job ended: ${message.status}` + (message.error ? ` (${message.error})` : ".");
    const cancel = document.getElementById("cancel-form");
    if (cancel) {
      cancel.remove();
    }
  }

  const url = new URL(progress.dataset.events, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url);
  socket.addEventListener("message", (received) => {
    const message = JSON.parse(received.data);
    if (message.type === "snapshot") {
      snapshot(message);
    } else if (message.type === "product") {
      productEvent(message);
    } else if (message.type === "job") {
      jobEnded(message);
    } else if (message.type === "error") {
      live.textContent = `Live progress is unavailable: ${message.detail}`;
    }
  });
  socket.addEventListener("close", (closed) => {
    if (closed.code !== 1000 && !live.textContent.startsWith("Live progress")) {
      live.textContent = "Live progress stopped; reload the page to see the latest.";
    }
  });
}());
