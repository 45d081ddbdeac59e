// The status page: polls the admin API (/api/v1/) once a second with the credentials given
// in the login form, draws the history graphs on canvases and lists the sessions, with a
// button that ends one (DELETE /api/v1/sessions/ID). No library, nothing from elsewhere.
"use strict";

const POLL_MS = 1000;
let authorization = null;
let timer = null;

function api(method, path) {
  return fetch("/api/v1/" + path, {
    method: method,
    headers: { "Authorization": authorization },
    cache: "no-store",
  }).then((response) => {
    if (response.status === 401) {
      throw new Error("the password was not accepted");
    }
    if (!response.ok) {
      throw new Error(method + " " + path + ": HTTP " + response.status);
    }
    return response.json();
  });
}

function login(event) {
  event.preventDefault();
  const user = document.getElementById("user").value;
  const password = document.getElementById("password").value;
  authorization = "Basic " + btoa(unescape(encodeURIComponent(user + ":" + password)));
  api("GET", "server").then(() => {
    document.getElementById("login").hidden = true;
    document.getElementById("status").hidden = false;
    refresh();
    timer = setInterval(refresh, POLL_MS);
  }, (error) => {
    const message = document.getElementById("loginError");
    message.textContent = error.message;
    message.hidden = false;
  });
}

function refresh() {
  Promise.all([api("GET", "server"), api("GET", "history"), api("GET", "sessions?limit=1000")])
    .then(([server, history, sessions]) => {
      document.getElementById("summary").textContent =
        "version " + server.version + ", up " + Math.round(server.uptime) + " s, " +
        server.workers + " worker" + (server.workers === 1 ? "" : "s") + ", " +
        server.allocations + " allocation" + (server.allocations === 1 ? "" : "s") +
        (server.draining ? ", draining" : "");
      drawGraphs(history);
      showSessions(sessions);
    }, (error) => {
      document.getElementById("summary").textContent = error.message;
    });
}

function rates(samples, key) {
  const points = [];
  for (let i = 1; i < samples.length; i++) {
    const seconds = samples[i].time - samples[i - 1].time;
    if (seconds > 0) {
      points.push(Math.max(0, (samples[i][key] - samples[i - 1][key]) / seconds));
    }
  }
  return points;
}

function draw(canvasId, series, colours) {
  const canvas = document.getElementById(canvasId);
  const context = canvas.getContext("2d");
  const width = canvas.width;
  const height = canvas.height;
  context.clearRect(0, 0, width, height);
  let top = 1;
  for (const points of series) {
    for (const value of points) {
      top = Math.max(top, value);
    }
  }
  context.fillStyle = "#666";
  context.font = "11px sans-serif";
  context.fillText(String(Math.round(top)), 2, 11);
  series.forEach((points, index) => {
    context.strokeStyle = colours[index];
    context.lineWidth = 1.5;
    // The second series dashed: an echo's traffic is the same both ways.
    context.setLineDash(index ? [5, 4] : []);
    context.beginPath();
    points.forEach((value, i) => {
      const x = points.length > 1 ? (i / (points.length - 1)) * (width - 4) + 2 : 2;
      const y = height - 2 - (value / top) * (height - 16);
      if (i === 0) {
        context.moveTo(x, y);
      } else {
        context.lineTo(x, y);
      }
    });
    context.stroke();
  });
  canvas.dataset.points = String(series[0].length);
  canvas.dataset.last = series.map((points) => points[points.length - 1] || 0).join(",");
}

function drawGraphs(history) {
  const samples = history.samples;
  // When the newest sample was taken: what shows that the graphs move.
  document.getElementById("graphs").dataset.until =
    samples.length ? String(samples[samples.length - 1].time) : "";
  draw("graphAllocations", [samples.map((s) => s.allocations)], ["#2a7d2a"]);
  draw("graphTraffic", [rates(samples, "bytesFromClients"), rates(samples, "bytesToClients")],
       ["#1f6fb4", "#c4501b"]);
  draw("graphDrops", [rates(samples, "drops"), rates(samples, "authFailures")],
       ["#a00", "#777"]);
}

function cell(row, text, numeric) {
  const td = document.createElement("td");
  td.textContent = text;
  if (numeric) {
    td.className = "number";
  }
  row.appendChild(td);
}

function showSessions(page) {
  document.getElementById("sessionCount").textContent = "(" + page.total + ")";
  const body = document.querySelector("#sessions tbody");
  body.replaceChildren();
  for (const session of page.sessions) {
    const row = document.createElement("tr");
    row.dataset.session = session.id;
    cell(row, session.user === null ? "(anonymous)" : session.user);
    cell(row, session.transport);
    cell(row, session.client);
    cell(row, session.relayed.join(" "));
    cell(row, Math.round(session.age), true);
    cell(row, Math.round(session.lifetimeLeft), true);
    cell(row, session.traffic.fromClient.packets + " / " + session.traffic.fromClient.bytes + " B", true);
    cell(row, session.traffic.toClient.packets + " / " + session.traffic.toClient.bytes + " B", true);
    cell(row, session.permissions, true);
    cell(row, session.channels, true);
    const td = document.createElement("td");
    const button = document.createElement("button");
    button.className = "end";
    button.textContent = "End";
    button.addEventListener("click", () => {
      button.disabled = true;
      api("DELETE", "sessions/" + encodeURIComponent(session.id)).then(refresh, refresh);
    });
    td.appendChild(button);
    row.appendChild(td);
    body.appendChild(row);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login").addEventListener("submit", login);
});
