// mailroom web UI: plain JavaScript, no build step. Every string from a message or a client
// goes into the page as text (textContent), never as markup; message HTML is shown only in a
// sandboxed frame of /view/, which the server serves under a policy that blocks scripts and
// remote content.
"use strict";

const view = document.getElementById("view");
const state = {
  route: "",
  params: new URLSearchParams(),
  onEvent: null, // the current page's handler of live events
  releaseServer: "",
};

// -- helpers -------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

class ApiError extends Error {}

async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: { Accept: "application/json" } };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = text;
  if ((response.headers.get("Content-Type") || "").includes("json") && text) {
    data = JSON.parse(text);
  }
  if (!response.ok) {
    const message = data && data.Error ? data.Error : text || response.statusText;
    throw new ApiError(message);
  }
  return data;
}

function when(value, precise) {
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  if (precise) {
    const pad = (n, w = 2) => String(n).padStart(w, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
      `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
  }
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  return sameDay
    ? date.toLocaleTimeString()
    : date.toLocaleDateString() + " " + date.toLocaleTimeString();
}

function size(bytes) {
  if (bytes < 1024) return bytes + " B";
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KB";
  return (bytes / 1024 / 1024).toFixed(1) + " MB";
}

function address(a) {
  if (!a) return "";
  if (!a.Address) return a.Name || "";
  return a.Name ? `${a.Name} <${a.Address}>` : a.Address;
}

function codeClass(text) {
  const m = /^([2-5])\d\d/.exec(text || "");
  return m ? "c" + m[1] : "";
}

function show(...nodes) {
  view.replaceChildren(...nodes);
}

function failure(error) {
  return h("p", { class: "notice bad" }, String(error.message || error));
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// -- live updates ----------------------------------------------------------------------------

const live = document.getElementById("live");
let socket = null;
let retry = 500;

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}/api/events`);
  socket.onopen = () => {
    retry = 500;
    live.textContent = "live";
    live.classList.add("on");
    refreshCounts();
  };
  socket.onclose = () => {
    live.textContent = "reconnecting…";
    live.classList.remove("on");
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  };
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.Type === "stats") setUnread(event.Data.Unread);
    if (event.Type === "faults") setFaultCount(event.Data.rules.length);
    if (event.Type === "new" && window.notifyNewMail) window.notifyNewMail(event.Data);
    if (state.onEvent) state.onEvent(event);
  };
}

function setUnread(count) {
  const badge = document.getElementById("unread");
  badge.textContent = count;
  badge.hidden = !count;
  document.title = count ? `(${count}) mailroom` : "mailroom";
}

function setFaultCount(count) {
  const badge = document.getElementById("fault-count");
  badge.textContent = count;
  badge.hidden = !count;
}

async function refreshCounts() {
  try {
    const [info, faults] = await Promise.all([api("/api/v1/info"), api("/api/v1/faults")]);
    setUnread(info.Unread);
    setFaultCount(faults.rules.length);
  } catch (error) {
    /* shown when a page loads */
  }
}

// -- the message list ----------------------------------------------------------------------

const PAGE_SIZES = [25, 50, 100, 200];

async function messagesPage() {
  const query = state.params.get("q") || "";
  const start = Number(state.params.get("start") || 0);
  const PAGE = Number(localStorage.getItem("mailroom.pageSize")) || 50;
  document.getElementById("search-input").value = query;
  const selected = new Set();
  let known = new Set();

  const title = h("h1", {}, query ? "Search results" : "Messages");
  const deleteSelected = h("button", { class: "danger", disabled: true }, "Delete selected");
  const markRead = h("button", { disabled: true }, "Mark read");
  const deleteAll = h("button", { class: "danger", dataset: { testid: "delete-all" } },
    query ? "Delete all found" : "Delete all");
  const counter = h("span", { class: "muted" });
  const pageSize = h("select", { "aria-label": "Messages per page", onchange: (e) => {
    localStorage.setItem("mailroom.pageSize", e.target.value);
    go(params(0));
  } }, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === PAGE }, `${n} a page`)));
  const tagButton = h("button", { disabled: true, onclick: () => {
    editTags([...selected], [], () => load());
  } }, "Tags…");
  const prev = h("button", {}, "← Newer");
  const next = h("button", {}, "Older →");
  const table = h("div", { class: "panel" });
  const toolbar = h("div", { class: "toolbar" },
    deleteSelected, markRead, tagButton, deleteAll, h("span", { class: "spacer" }), counter, pageSize, prev, next);
  show(title, toolbar, table);

  function updateButtons() {
    deleteSelected.disabled = markRead.disabled = tagButton.disabled = selected.size === 0;
    const all = table.querySelector("input.select-all");
    const boxes = table.querySelectorAll("tbody input[type=checkbox]");
    if (all) {
      all.checked = boxes.length > 0 && [...boxes].every((b) => b.checked);
      all.indeterminate = !all.checked && [...boxes].some((b) => b.checked);
    }
  }

  async function load(freshIds) {
    let data;
    try {
      const paging = `start=${start}&limit=${PAGE}`;
      data = query
        ? await api(`/api/v1/search?query=${encodeURIComponent(query)}&${paging}`)
        : await api(`/api/v1/messages?${paging}`);
    } catch (error) {
      table.replaceChildren(failure(error));
      return;
    }
    setUnread(data.unread);
    const matching = data.messages_count;
    counter.textContent = matching
      ? `${start + 1}–${start + data.messages.length} of ${matching}`
      : "";
    prev.disabled = start === 0;
    next.disabled = start + data.messages.length >= matching;
    if (!data.messages.length) {
      table.replaceChildren(h("div", { class: "empty" }, query
        ? "No message matches."
        : "No messages yet. Point your application at this server's SMTP port and send one."));
      known = new Set();
      return;
    }
    const rows = data.messages.map((m) => {
      const box = h("input", {
        type: "checkbox", "aria-label": "select", checked: selected.has(m.ID),
        onclick: (e) => e.stopPropagation(),
        onchange: (e) => {
          if (e.target.checked) selected.add(m.ID); else selected.delete(m.ID);
          updateButtons();
        },
      });
      const fresh = freshIds && !known.has(m.ID);
      const open = () => go(`#/message/${m.ID}`);
      return h("tr", {
        class: ["link", m.Read ? "" : "unread", fresh ? "fresh" : ""].join(" ").trim(),
        dataset: { id: m.ID },
        tabindex: "0",
        "aria-label": `${m.Read ? "" : "Unread: "}${m.Subject || "(no subject)"} from ${(m.From && (m.From.Name || m.From.Address)) || "nobody"}`,
        onclick: open,
        onkeydown: (e) => { if (e.key === "Enter" && e.target === e.currentTarget) open(); },
      },
      h("td", { class: "check" }, box),
      h("td", { class: "dot" }, h("span", { class: "unread-dot", title: m.Read ? "" : "unread", hidden: m.Read })),
      h("td", { class: "from" }, m.From ? (m.From.Name || m.From.Address) : ""),
      h("td", { class: "subject-cell" },
        h("a", { class: "subject", href: `#/message/${m.ID}`, tabindex: "-1" }, m.Subject || "(no subject)"),
        m.Attachments ? h("span", { class: "files", title: "attachments" }, m.Attachments === 1 ? "1 file" : `${m.Attachments} files`) : null,
        (m.Tags || []).map((t) => h("span", { class: "tag" }, t)),
        h("span", { class: "snippet" }, m.Snippet)),
      h("td", { class: "to" }, m.To.map((a) => a.Address).join(", ")),
      h("td", { class: "when muted" }, when(m.Created)),
      h("td", { class: "num size muted" }, size(m.Size)));
    });
    known = new Set(data.messages.map((m) => m.ID));
    const selectAll = h("input", { type: "checkbox", class: "select-all", "aria-label": "select all on this page",
      onchange: (e) => {
        for (const m of data.messages) { if (e.target.checked) selected.add(m.ID); else selected.delete(m.ID); }
        table.querySelectorAll("tbody input[type=checkbox]").forEach((b) => { b.checked = e.target.checked; });
        updateButtons();
      } });
    table.replaceChildren(h("table", { class: "messages" },
      h("colgroup", {}, ["check", "dot", "from", "subject", "to", "when", "size"].map((c) => h("col", { class: `col-${c}` }))),
      h("thead", {}, h("tr", {}, h("th", { class: "check" }, selectAll), h("th", { class: "dot" }), h("th", { class: "from" }, "From"),
        h("th", { class: "subject-cell" }, "Subject"), h("th", { class: "to" }, "To"), h("th", { class: "when" }, "Received"),
        h("th", { class: "num size" }, "Size"))),
      h("tbody", {}, rows)));
    updateButtons();
  }

  const params = (s) => {
    const p = new URLSearchParams();
    if (query) p.set("q", query);
    if (s) p.set("start", s);
    const text = p.toString();
    return text ? `#/?${text}` : "#/";
  };
  prev.onclick = () => go(params(Math.max(0, start - PAGE)));
  next.onclick = () => go(params(start + PAGE));
  deleteSelected.onclick = async () => {
    await api("/api/v1/messages", { method: "DELETE", body: { IDs: [...selected] } });
    selected.clear();
    updateButtons();
    load();
  };
  markRead.onclick = async () => {
    await api("/api/v1/messages", { method: "PUT", body: { IDs: [...selected], Read: true } });
    load();
  };
  let armed = false;
  deleteAll.onclick = async () => {
    if (!armed) {
      armed = true;
      deleteAll.textContent = "Really delete them all?";
      setTimeout(() => { armed = false; deleteAll.textContent = query ? "Delete all found" : "Delete all"; }, 4000);
      return;
    }
    if (query) await api(`/api/v1/search?query=${encodeURIComponent(query)}`, { method: "DELETE" });
    else await api("/api/v1/messages", { method: "DELETE" });
    selected.clear();
    updateButtons();
    load();
  };

  let pending = null;
  state.onEvent = (event) => {
    if (!["new", "delete", "truncate", "update", "prune"].includes(event.Type)) return;
    clearTimeout(pending); // a burst of mail reloads the list once
    pending = setTimeout(() => load(event.Type === "new"), 150);
  };
  await load();
}

// -- one message -------------------------------------------------------------------------------

async function messagePage(id) {
  let message;
  try {
    message = await api(`/api/v1/message/${encodeURIComponent(id)}`);
  } catch (error) {
    show(h("p", {}, h("a", { href: "#/" }, "← Messages")), failure(error));
    return;
  }
  const m = message;
  const ours = m.Mailroom || {};
  const deleted = h("p", { class: "notice bad", hidden: true }, "This message was deleted.");
  const rows = [
    ["From", address(m.From)],
    ["To", m.To.map(address).join(", ")],
    m.Cc.length ? ["Cc", m.Cc.map(address).join(", ")] : null,
    m.Bcc.length ? ["Bcc", m.Bcc.map(address).join(", ")] : null,
    m.ReplyTo.length ? ["Reply-To", m.ReplyTo.map(address).join(", ")] : null,
    ["Subject", m.Subject],
    ["Date", when(m.Date)],
    ["Envelope", `MAIL FROM:<${ours.Sender || ""}> → ${(ours.Recipients || []).join(", ")}`],
    ours.Origin === "api"
      ? ["Came from", "the web API (POST /api/v1/send), not over SMTP"]
      : ["Client", `${ours.ClientIP || ""} (${ours.Helo || "no HELO"})` +
        (ours.TLS ? " · TLS" : "") + (ours.AuthUser ? ` · AUTH ${ours.AuthUser}` : "")],
    ["Tags", tagsCell(m)],
    ["Size", size(m.Size) + ` · queue id ${m.ID}`],
  ].filter(Boolean);
  const header = h("div", { class: "panel" }, h("table", { class: "headers-table" },
    h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { dataset: { field: k } }, v))))));

  const del = h("button", { class: "danger", dataset: { testid: "delete-message" }, onclick: async () => {
    await api("/api/v1/messages", { method: "DELETE", body: { IDs: [m.ID] } });
    go("#/");
  } }, "Delete");
  const toolbar = h("div", { class: "toolbar" },
    h("a", { class: "button", href: "#/" }, "← Messages"), del,
    h("a", { class: "button", href: `/api/v1/message/${m.ID}/raw?dl=1` }, "Download .eml"),
    h("span", { class: "spacer" }),
    ours.Session ? h("a", { class: "button", href: `#/session/${ours.Session}` },
      ours.Origin === "api" ? "API request" : "SMTP session") : null);

  const tabs = [];
  if (m.HTML) tabs.push(["HTML", () => htmlTab(m)]);
  tabs.push(["Text", () => h("pre", { class: "text-body" }, m.Text ? linkify(m.Text) : "(no text part)")]);
  tabs.push(["Headers", () => headersTab(m)]);
  tabs.push(["Source", () => sourceTab(m)]);
  const files = m.Attachments.length + m.Inline.length;
  tabs.push([`Attachments (${files})`, () => attachmentsTab(m)]);
  tabs.push(["Session", () => sessionTab(m)]);
  tabs.push(["Release", () => releaseTab(m)]);
  if (m.HTML) tabs.push(["HTML check", () => htmlCheckTab(m)]);
  tabs.push(["Link check", () => linkCheckTab(m)]);
  if (state.spamCheck) tabs.push(["Spam check", () => spamCheckTab(m)]);

  const tabBar = h("div", { class: "tabs", role: "tablist" });
  const body = h("div", { class: "tab-body" });
  const wanted = state.params.get("tab");
  const buttons = tabs.map(([label, render]) => {
    const key = label.split(" (")[0].toLowerCase().replace(/ /g, "-");
    const button = h("button", { role: "tab", dataset: { tab: key } }, label);
    button.onclick = async () => {
      buttons.forEach((b) => b.classList.toggle("active", b === button));
      body.replaceChildren(h("p", { class: "muted" }, "Loading…"));
      try {
        body.replaceChildren(await render());
      } catch (error) {
        body.replaceChildren(failure(error));
      }
    };
    return button;
  });
  tabBar.append(...buttons);
  show(h("h1", {}, m.Subject || "(no subject)"), deleted, toolbar, header, bouncesPanel(m), tabBar,
    body, attachmentStrip(m));
  const first = buttons.find((b) => b.dataset.tab === wanted) || buttons[0];
  first.click();
  state.onEvent = (event) => {
    if ((event.Type === "delete" && event.Data.ID === m.ID) || event.Type === "truncate") {
      deleted.hidden = false;
    }
    if (event.Type === "update" && event.Data.ID === m.ID) {
      m.Tags = event.Data.Tags;
      const cell = document.querySelector('td[data-field="Tags"]');
      if (cell) cell.replaceChildren(tagsCell(m));
    }
  };
}

// A caught bounce (or delay report, complaint, auto-reply) read by mailroom.bounces: one row
// per recipient with the reason and what decided it. Stays hidden for other messages.
function bouncesPanel(m) {
  const panel = h("div", { class: "panel bounces", hidden: true, dataset: { testid: "bounces" } });
  api(`/api/v1/message/${m.ID}/bounces`).then((data) => {
    if (!data.Records.length) return;
    const titles = { bounce: "Bounce", delay: "Delay report", success: "Delivery report",
      autoreply: "Automatic reply", feedback: "Complaint (feedback report)" };
    panel.replaceChildren(
      h("h2", {}, data.Kinds.map((k) => titles[k] || k).join(", ")),
      h("table", {}, h("thead", {}, h("tr", {}, ["Recipient", "Reason", "Type", "Status", "Remote", "Diagnostic", "Why"].map((t) => h("th", {}, t)))),
        h("tbody", {}, data.Records.map((r) => h("tr", { dataset: { recipient: r.recipient } },
          h("td", { class: "mono" }, r.recipient),
          h("td", {}, h("strong", {}, r.reason)),
          h("td", {}, r.bounce_type || r.kind),
          h("td", { class: "mono" }, r.status + (r.command ? ` · ${r.command}` : "")),
          h("td", { class: "mono" }, r.remote_mta),
          h("td", { class: "mono" }, r.diagnostic_code),
          h("td", { class: "muted" }, r.reason_why))))));
    panel.hidden = false;
  }).catch(() => {});
  return panel;
}

function htmlTab(m) {
  // No scripts, no forms, an origin of its own; links open a page of their own (popups that
  // escape the sandbox, noopener by the HTML standard). The server's policy for /view/ also
  // blocks every remote load (images, fonts, CSS) unless this view asks for them.
  const frame = h("iframe", {
    class: "html-view", sandbox: "allow-popups allow-popups-to-escape-sandbox",
    referrerpolicy: "no-referrer", title: "HTML body", src: `/view/${m.ID}.html`,
  });
  const frameBox = h("div", { class: "frame-box" }, frame);
  const note = h("span", { class: "muted" }, m.RemoteContent
    ? "Remote content (images, styles, fonts from the network; tracking pixels among them) is blocked. "
    : "Shown sandboxed: no scripts, nothing loaded from the network. ");
  const remote = m.RemoteContent ? h("button", { dataset: { testid: "load-remote" }, onclick: () => {
    frame.src = `/view/${m.ID}.html?remote=1`;
    note.textContent = "Remote content loaded for this view. ";
    remote.remove();
  } }, "Load remote content") : null;
  const widths = [["Phone", "375px"], ["Tablet", "768px"], ["Desktop", "100%"]];
  const sizes = h("span", { class: "device-sizes", role: "group", "aria-label": "Preview width" },
    widths.map(([label, width]) => h("button", { dataset: { width }, class: width === "100%" ? "active" : "",
      onclick: (e) => {
        frameBox.style.maxWidth = width;
        sizes.querySelectorAll("button").forEach((b) => b.classList.toggle("active", b === e.currentTarget));
      } }, label)));
  return h("div", {}, h("div", { class: "toolbar" }, note, remote, h("span", { class: "spacer" }), sizes), frameBox);
}

async function headersTab(m) {
  const headers = await api(`/api/v1/message/${m.ID}/headers`);
  const rows = [];
  for (const [name, values] of Object.entries(headers)) {
    for (const value of values) rows.push(h("tr", {}, h("th", { class: "nowrap" }, name), h("td", { class: "mono" }, value)));
  }
  return h("table", {}, h("tbody", {}, rows));
}

async function sourceTab(m) {
  const text = await api(`/api/v1/message/${m.ID}/raw`);
  return h("pre", { class: "source" }, text);
}

function attachmentsTab(m) {
  const parts = [...m.Attachments.map((a) => ["attachment", a]), ...m.Inline.map((a) => ["inline", a])];
  if (!parts.length) return h("p", { class: "muted" }, "No attachments.");
  return h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "File"), h("th", {}, "Type"),
    h("th", {}, "Kind"), h("th", { class: "num" }, "Size"), h("th", {}, "SHA-256"))),
  h("tbody", {}, parts.map(([kind, a]) => h("tr", {},
    h("td", {}, attachmentLink(m, a)),
    h("td", { class: "mono" }, a.ContentType),
    h("td", {}, kind + (a.ContentID ? ` (cid:${a.ContentID})` : "")),
    h("td", { class: "num" }, size(a.Size)),
    h("td", { class: "mono muted" }, a.Checksums.SHA256.slice(0, 16) + "…")))));
}

async function sessionTab(m) {
  try {
    const transcript = await api(`/api/v1/message/${m.ID}/session`);
    return transcriptView(transcript, m.ID);
  } catch (error) {
    return h("p", { class: "muted" }, String(error.message));
  }
}

function releaseTab(m) {
  const to = h("input", { type: "text", name: "to", placeholder: "recipient@example.test, another@example.test" });
  const server = h("input", { type: "text", name: "server", placeholder: state.releaseServer || "smtp.example.test:25", value: state.releaseServer });
  const from = h("input", { type: "text", name: "from", placeholder: `envelope sender (default <${(m.Mailroom || {}).Sender || ""}>)` });
  const result = h("div", {});
  const send = h("button", { class: "primary", type: "submit" }, "Release");
  const form = h("form", { class: "release", onsubmit: async (e) => {
    e.preventDefault();
    const body = { To: to.value.split(/[\s,;]+/).filter(Boolean) };
    if (server.value.trim()) body.Server = server.value.trim();
    if (from.value.trim()) body.From = from.value.trim();
    send.disabled = true;
    result.replaceChildren(h("p", { class: "muted" }, "Sending…"));
    try {
      const answer = await api(`/api/v1/message/${m.ID}/release`, { method: "POST", body });
      result.replaceChildren(h("div", { class: "notice" }, `Released via ${answer.Server}:`,
        h("ul", {}, Object.entries(answer.Replies).map(([rcpt, reply]) =>
          h("li", {}, `${rcpt}: `, h("span", { class: codeClass(reply) }, reply))))));
    } catch (error) {
      result.replaceChildren(failure(error));
    } finally {
      send.disabled = false;
    }
  } },
  h("p", { class: "muted" }, "Send this message on to a real SMTP server, as it was received (without the Return-Path and Delivered-To fields mailroom added)."),
  h("div", { class: "row-form" }, h("label", {}, "To "), to),
  h("div", { class: "row-form" }, h("label", {}, "Server "), server),
  h("div", { class: "row-form" }, h("label", {}, "From "), from, send));
  return h("div", {}, form, result);
}

// -- transcripts ----------------------------------------------------------------------------

// The definition of a code that fits the command it answers: 220 after STARTTLS is RFC 3207's
// "Ready to start TLS", 250 after ETRN is RFC 1985's; otherwise RFC 5321's.
function definitionFor(x, command) {
  const definitions = (x.basic && x.basic.definitions) || [];
  const verb = (command || "").split(" ")[0].toUpperCase();
  const wanted = verb === "STARTTLS" ? "RFC 3207" : verb === "ETRN" ? "RFC 1985" : "RFC 5321";
  return definitions.find((d) => d.reference.startsWith(wanted)) || definitions[0];
}

function explanationDetails(x, command) {
  if (!x) return null;
  const parts = [];
  const definition = definitionFor(x, command);
  let line = "";
  if (x.code) line += `${x.code}: ${definition ? definition.text : x.basic ? x.basic.category : ""}`;
  if (x.enhanced) line += `${line ? " · " : ""}${x.enhanced.code}: ${x.enhanced.title || x.enhanced.subject || x.enhanced.class}`;
  const dl = h("dl", {});
  const add = (term, ...value) => dl.append(h("dt", {}, term), h("dd", {}, ...value));
  if (x.basic) {
    add("Reply code", `${x.code} — ${x.basic.category} (${x.basic.category_meaning})`);
    for (const d of x.basic.definitions || []) add(d.reference, `“${d.text}”`, d.meaning ? ` — ${d.meaning}` : "");
  }
  if (x.enhanced) {
    add("Enhanced code", `${x.enhanced.code} — ${x.enhanced.class}, ${x.enhanced.subject || ""}`);
    if (x.enhanced.title) add(x.enhanced.title, x.enhanced.description || "", x.enhanced.reference ? ` ${x.enhanced.reference}` : "");
  }
  add("What to do", `${x.action}: ${x.advice}`);
  if (x.classification) add("Classified", `${x.classification.action}, reason ${x.classification.reason}`);
  for (const w of x.warnings || []) add("Warning", h("span", { class: "warning" }, w));
  parts.push(h("summary", {}, line || "explanation"), dl);
  return h("details", { class: "why" }, parts);
}

function transcriptView(t, highlight) {
  const meta = h("p", { class: "muted" },
    (t.listener === "api" ? `Sent with the web API (POST /api/v1/send) from ${t.client} · ${when(t.started, true)}`
      : `Session ${t.id} · client ${t.client}:${t.port} on ${t.listener} · started ${when(t.started, true)}`) +
    (t.ended ? ` · ${Math.round((t.ended - t.started) * 1000)} ms` : " · still open") +
    (t.tls ? " · TLS" : "") + (t.auth_user ? ` · AUTH ${t.auth_user}` : ""));
  const messages = t.messages.length
    ? h("p", {}, "Messages: ", t.messages.map((id, i) => [i ? ", " : "",
      h("a", { href: `#/message/${id}`, class: id === highlight ? "current" : "" }, id)]))
    : h("p", { class: "muted" }, "This session stored no message.");
  let command = "";
  const entries = t.entries.map((e) => {
    if (e.from === "client") command = e.text;
    const who = { client: "C:", server: "S:", info: "··" }[e.from];
    const text = h("pre", { class: "text " + (e.from === "server" ? codeClass(e.text) : "") }, e.text);
    return h("div", { class: `entry ${e.from}` },
      h("span", { class: "at" }, `+${Math.round((e.time - t.started) * 1000)}ms`),
      h("span", { class: "who" }, who), text,
      e.from === "server" ? explanationDetails(e.explanation, command) : null);
  });
  return h("div", {}, meta, messages,
    h("div", { class: "panel transcript", dataset: { testid: "transcript" } }, entries),
    t.truncated ? h("p", { class: "muted" }, "The transcript was cut short.") : null);
}

async function sessionsPage() {
  const p = state.params;
  const filters = { refused: p.get("refused") === "1", failed: p.get("failed") === "1",
    client: p.get("client") || "", sender: p.get("sender") || "", recipient: p.get("recipient") || "" };
  const apply = () => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v === true ? "1" : v);
    go(q.toString() ? `#/sessions?${q}` : "#/sessions");
  };
  const check = (name, label) => h("label", {}, h("input", { type: "checkbox", id: `only-${name}`, checked: filters[name],
    onchange: (e) => { filters[name] = e.target.checked; apply(); } }), ` ${label}`);
  const text = (name, label) => h("input", { type: "search", name, value: filters[name], placeholder: label, "aria-label": label,
    onchange: (e) => { filters[name] = e.target.value.trim(); apply(); } });
  const table = h("div", { class: "panel" });
  show(h("h1", {}, "SMTP sessions"),
    h("div", { class: "toolbar filters" }, check("refused", "stored no message"), check("failed", "got a 4xx or 5xx"),
      text("client", "client address"), text("sender", "sender"), text("recipient", "recipient")),
    table);
  async function load() {
    let data;
    const q = new URLSearchParams({ limit: "200" });
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v === true ? "1" : v);
    try {
      data = await api(`/api/v1/sessions?${q}`);
    } catch (error) {
      table.replaceChildren(failure(error));
      return;
    }
    if (!data.sessions.length) {
      table.replaceChildren(h("div", { class: "empty" }, "No sessions match."));
      return;
    }
    table.replaceChildren(h("table", { class: "sessions" },
      h("thead", {}, h("tr", {}, ["Started", "Client", "HELO", "Sender", "Recipients", "Msgs", "Worst reply"].map((c) => h("th", {}, c)))),
      h("tbody", {}, data.sessions.map((s) => {
        const open = () => go(`#/session/${s.id}`);
        const worst = s.ended ? s.worst_reply || "" : "(open)";
        return h("tr", { class: "link", dataset: { id: s.id }, tabindex: "0", onclick: open,
          onkeydown: (e) => { if (e.key === "Enter") open(); } },
        h("td", { class: "nowrap mono started" }, when(s.started, true)),
        h("td", { class: "mono client" }, s.listener === "api" ? "web API" : s.client),
        h("td", { class: "mono helo" }, s.helo || ""),
        h("td", { class: "mono senders" }, (s.senders || []).join(", ")),
        h("td", { class: "mono recipients" }, (s.recipients || []).join(", ")),
        h("td", { class: "num count" }, s.messages.length),
        h("td", { class: "mono worst " + codeClass(worst) }, worst));
      }))));
  }
  state.onEvent = (event) => { if (event.Type === "session") load(); };
  await load();
}

async function sessionPage(id) {
  try {
    const t = await api(`/api/v1/session/${encodeURIComponent(id)}`);
    show(h("h1", {}, "SMTP session"), h("div", { class: "toolbar" }, h("a", { class: "button", href: "#/sessions" }, "← Sessions")), transcriptView(t));
  } catch (error) {
    show(h("a", { href: "#/sessions" }, "← Sessions"), failure(error));
  }
}

// -- fault rules --------------------------------------------------------------------------

const FAULT_EXAMPLES = [
  "rcpt:*@bounce.test:550 5.1.1 No such user",
  "mail:p=0.1:451 4.3.0 Try again later",
  "connect:every=3:421 4.7.0 Too busy",
  "eod:times=1:552 5.3.4 Message too big for this test",
  "data:delay=5",
  "ehlo:disconnect",
];

async function faultsPage() {
  const list = h("div", { class: "panel" });
  const input = h("input", { type: "text", id: "fault-rule", name: "rule", autocomplete: "off",
    placeholder: "STAGE[:MATCH][:p=P|every=N|times=N]:REPLY|delay=S|disconnect|close" });
  const message = h("p", { class: "notice bad", hidden: true, role: "alert" });
  const form = h("form", { class: "row-form", onsubmit: async (e) => {
    e.preventDefault();
    message.hidden = true;
    try {
      await api("/api/v1/faults", { method: "POST", body: { rule: input.value } });
      input.value = "";
      load();
    } catch (error) {
      message.textContent = error.message;
      message.hidden = false;
    }
  } }, input, h("button", { class: "primary", type: "submit" }, "Add rule"));
  const examples = h("div", { class: "toolbar" }, h("span", { class: "muted" }, "Examples:"),
    FAULT_EXAMPLES.map((text) => h("button", { type: "button", onclick: () => { input.value = text; input.focus(); } }, text)));
  const syntax = h("details", { class: "syntax" }, h("summary", {}, "Rule syntax"), h("pre", {}));
  const clear = h("button", { class: "danger", onclick: async () => { await api("/api/v1/faults", { method: "DELETE" }); load(); } }, "Remove all");
  show(h("h1", {}, "Fault rules"),
    h("p", { class: "muted" }, "Make the SMTP server fail on purpose: a rule fires at a stage of a session and answers with any reply, waits, or drops the connection. What a rule did shows in the session's transcript."),
    form, message, examples, h("div", { class: "toolbar" }, h("span", { class: "spacer" }), clear), list, syntax);

  async function load() {
    let data;
    try {
      data = await api("/api/v1/faults");
    } catch (error) {
      list.replaceChildren(failure(error));
      return;
    }
    setFaultCount(data.rules.length);
    syntax.querySelector("pre").textContent = data.syntax;
    if (!data.rules.length) {
      list.replaceChildren(h("div", { class: "empty" }, "No fault rules: every session is answered as usual."));
      return;
    }
    list.replaceChildren(h("table", { class: "faults" },
      h("thead", {}, h("tr", {}, ["#", "Rule", "Stage", "Match", "Does", "Fired", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, data.rules.map((r) => h("tr", { dataset: { id: r.id } },
        h("td", { class: "num" }, r.id),
        h("td", { class: "mono" }, r.rule),
        h("td", {}, r.stage),
        h("td", { class: "mono" }, r.match || "any"),
        h("td", { class: "mono " + codeClass(r.reply) }, r.action === "reply" ? r.reply : r.action === "delay" ? `wait ${r.delay}s` : r.action,
          r.probability < 1 ? ` (p=${r.probability})` : "", r.every ? ` (every ${r.every})` : "", r.times ? ` (${r.times} more)` : ""),
        h("td", { class: "num" }, r.fired),
        h("td", {}, h("button", { class: "danger", onclick: async () => { await api(`/api/v1/faults/${r.id}`, { method: "DELETE" }); load(); } }, "Remove")))))));
  }
  state.onEvent = (event) => { if (event.Type === "faults") load(); };
  await load();
}

// -- explain -------------------------------------------------------------------------------

async function explainPage() {
  const text = state.params.get("q") || "";
  const input = h("input", { type: "text", id: "explain-input", value: text, placeholder: "550, 5.7.1, or a whole reply: 550 5.1.1 <bob@example.test>: User unknown" });
  const result = h("div", { class: "explanation" });
  show(h("h1", {}, "Explain a reply"),
    h("form", { class: "row-form", onsubmit: (e) => { e.preventDefault(); go(`#/explain?q=${encodeURIComponent(input.value)}`); } },
      input, h("button", { class: "primary", type: "submit" }, "Explain")),
    h("p", {}), result);
  if (!text) return;
  let x;
  try {
    x = await api(`/api/v1/explain?reply=${encodeURIComponent(text)}`);
  } catch (error) {
    result.replaceChildren(failure(error));
    return;
  }
  const cards = [];
  if (x.basic) {
    cards.push(h("div", { class: "card" }, h("h3", {}, h("span", { class: "big-code " + codeClass(String(x.code)) }, x.code), x.basic.category),
      h("p", {}, x.basic.category_meaning),
      h("p", { class: "muted" }, `${x.basic.area}: ${x.basic.area_meaning}`),
      (x.basic.definitions || []).map((d) => h("p", {}, h("strong", {}, d.reference), ` “${d.text}”`, d.meaning ? ` — ${d.meaning}` : ""))));
  }
  if (x.enhanced) {
    cards.push(h("div", { class: "card" }, h("h3", {}, h("span", { class: "big-code" }, x.enhanced.code), x.enhanced.title || `${x.enhanced.class}, ${x.enhanced.subject}`),
      h("p", {}, x.enhanced.description || ""),
      h("p", { class: "muted" }, `class: ${x.enhanced.class} · subject: ${x.enhanced.subject || "?"}` + (x.enhanced.reference ? ` · ${x.enhanced.reference}` : "") + (x.enhanced.registered ? "" : " · not in the IANA registry"))));
  }
  cards.push(h("div", { class: "card" }, h("h3", {}, "What to do"), h("p", {}, h("strong", {}, x.action), ": ", x.advice),
    x.classification ? h("p", { class: "muted" }, `Classified as ${x.classification.action}, reason ${x.classification.reason} (${x.classification.evidence})`) : null,
    x.sent_by_mailroom.length ? h("p", { class: "muted" }, "mailroom sends this as: ", x.sent_by_mailroom.join(", ")) : null,
    (x.warnings || []).map((w) => h("p", { class: "warning" }, "⚠ ", w))));
  result.replaceChildren(...cards);
}

// -- routing -------------------------------------------------------------------------------

async function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  state.params = new URLSearchParams(query || "");
  state.onEvent = null;
  const parts = path.split("/").filter(Boolean);
  const section = parts[0] || "messages";
  document.querySelectorAll("[data-nav]").forEach((a) => {
    const active = a.dataset.nav === section || (section === "message" && a.dataset.nav === "messages") ||
      (section === "session" && a.dataset.nav === "sessions");
    a.classList.toggle("active", active);
  });
  if (section === "messages") await messagesPage();
  else if (section === "message" && parts[1]) await messagePage(decodeURIComponent(parts[1]));
  else if (section === "sessions") await sessionsPage();
  else if (section === "session" && parts[1]) await sessionPage(decodeURIComponent(parts[1]));
  else if (section === "faults") await faultsPage();
  else if (section === "explain") await explainPage();
  else show(h("p", { class: "notice" }, "No such page. ", h("a", { href: "#/" }, "Messages")));
}

document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = document.getElementById("search-input").value.trim();
  go(q ? `#/messages?q=${encodeURIComponent(q)}` : "#/");
});
window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  api("/api/v1/webui").then((c) => {
    state.releaseServer = c.MessageRelay.SMTPServer;
    state.spamCheck = c.SpamAssassin;
  }).catch(() => {});
  connect();
  route();
});
