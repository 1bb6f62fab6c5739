// mailroom web UI, part two (loaded after app.js, whose helpers it uses): the checks of a
// message (HTML, links, spam), tags, attachments with thumbnails, links in text, the
// light/dark switch, opt-in notifications of new mail, and keyboard shortcuts.
// As in app.js, every string from a message goes into the page as text, never as markup.
"use strict";

// -- text with its URLs as links ---------------------------------------------------------------

const URL_IN_TEXT = /\bhttps?:\/\/[^\s<>"'`]+[^\s<>"'`.,;:!?)\]]/g;

function linkify(text) {
  const out = [];
  let last = 0;
  for (const match of text.matchAll(URL_IN_TEXT)) {
    out.push(text.slice(last, match.index));
    out.push(h("a", { href: match[0], target: "_blank", rel: "noopener noreferrer" }, match[0]));
    last = match.index + match[0].length;
  }
  out.push(text.slice(last));
  return out;
}

// -- tags ------------------------------------------------------------------------------------

function tagsCell(m) {
  const edit = h("button", { class: "small", dataset: { testid: "edit-tags" },
    onclick: () => editTags([m.ID], m.Tags || [], (tags) => { m.Tags = tags; }) }, "Edit");
  return h("span", { class: "tags" }, (m.Tags || []).length
    ? m.Tags.map((t) => h("a", { class: "tag", href: `#/messages?q=${encodeURIComponent(`tag:"${t}"`)}` }, t))
    : h("span", { class: "muted" }, "none "), " ", edit);
}

function editTags(ids, current, done) {
  const input = h("input", { type: "text", id: "tags-input", value: current.join(", "),
    placeholder: "tags, separated by commas", "aria-label": "Tags" });
  const dialog = h("dialog", { class: "tags-dialog" },
    h("form", { method: "dialog", onsubmit: async (e) => {
      e.preventDefault();
      const tags = input.value.split(",").map((t) => t.trim()).filter(Boolean);
      await api("/api/v1/tags", { method: "PUT", body: { IDs: ids, Tags: tags } });
      dialog.close();
      dialog.remove();
      done(tags);
    } },
    h("h3", {}, ids.length > 1 ? `Tags of ${ids.length} messages` : "Tags"),
    h("p", { class: "muted" }, "Letters, digits, spaces, - _ . @; these replace the tags the messages have."),
    input,
    h("div", { class: "toolbar" }, h("span", { class: "spacer" }),
      h("button", { type: "button", onclick: () => { dialog.close(); dialog.remove(); } }, "Cancel"),
      h("button", { class: "primary", type: "submit" }, "Save"))));
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}

// -- attachments -----------------------------------------------------------------------------

const SHOWN_INLINE = ["application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain"];

function attachmentLink(m, a) {
  const url = `/api/v1/message/${m.ID}/part/${a.PartID}`;
  const name = a.FileName || `part ${a.PartID}`;
  if (SHOWN_INLINE.includes(a.ContentType)) {
    return h("a", { href: `${url}?inline=1`, target: "_blank", rel: "noopener" }, name);
  }
  return h("a", { href: url, download: a.FileName || `part-${a.PartID}` }, name);
}

function attachmentStrip(m) {
  if (!m.Attachments.length) return null;
  return h("section", { class: "attachments", "aria-label": "Attachments" },
    h("h2", {}, `Attachments (${m.Attachments.length})`),
    h("ul", {}, m.Attachments.map((a) => {
      const url = `/api/v1/message/${m.ID}/part/${a.PartID}`;
      const thumb = a.ContentType.startsWith("image/") && SHOWN_INLINE.includes(a.ContentType)
        ? h("img", { src: `${url}?inline=1`, alt: "", loading: "lazy" })
        : h("span", { class: "file-icon", "aria-hidden": "true" }, (a.ContentType.split("/")[1] || "file").slice(0, 4).toUpperCase());
      return h("li", {}, thumb, h("span", { class: "file" }, attachmentLink(m, a),
        h("span", { class: "muted" }, ` ${a.ContentType} · ${size(a.Size)}`),
        " ", h("a", { href: url, download: a.FileName || `part-${a.PartID}`, class: "muted" }, "download")));
    })));
}

// -- the checks ------------------------------------------------------------------------------

function percent(value) {
  return `${Math.round(value)}%`;
}

function plainText(html) {
  // caniemail's descriptions come as a little HTML: read, never inserted, as text.
  return new DOMParser().parseFromString(html || "", "text/html").body.textContent;
}

async function htmlCheckTab(m) {
  const result = await api(`/api/v1/message/${m.ID}/html-check`);
  const total = result.Total;
  // Per client family: the share of the features found that its newest tested versions support.
  const families = {};
  for (const w of result.Warnings) {
    const newest = {};
    for (const r of w.Results) {
      const key = `${r.Family}/${r.Platform}`;
      if (!newest[key] || r.Version > newest[key].Version) newest[key] = r;
    }
    for (const r of Object.values(newest)) {
      const name = r.Family.replace(/-/g, " ").replace(/^./, (c) => c.toUpperCase());
      const f = (families[name] ||= { yes: 0, partial: 0, no: 0 });
      f[r.Support] += 1;
    }
  }
  const familyRows = Object.entries(families).sort().map(([name, c]) => {
    const all = c.yes + c.partial + c.no;
    return h("tr", {}, h("td", {}, name), h("td", { class: "num c2" }, percent((100 * c.yes) / all)),
      h("td", { class: "num c4" }, percent((100 * c.partial) / all)), h("td", { class: "num c5" }, percent((100 * c.no) / all)));
  });
  // Widths through the CSSOM: the UI's policy allows no style attributes.
  const bar = (kind, value) => { const span = h("span", { class: kind }); span.style.width = `${value}%`; return span; };
  return h("div", { class: "checks" },
    h("div", { class: "score-bar", title: "supported / partly / not supported" },
      bar("ok", total.Supported), bar("partial", total.Partial), bar("bad", total.Unsupported)),
    h("p", {}, `Supported ${percent(total.Supported)} · partly ${percent(total.Partial)} · not ${percent(total.Unsupported)} ` +
      `(${result.Warnings.length} features that some clients lack, of ${total.Tests} tested, over ${total.Nodes} elements; data: caniemail.com)`),
    familyRows.length ? h("details", { class: "families", open: true }, h("summary", {}, "By client family (newest versions tested)"),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Client"), h("th", { class: "num" }, "Yes"), h("th", { class: "num" }, "Partly"), h("th", { class: "num" }, "No"))),
        h("tbody", {}, familyRows))) : null,
    result.Warnings.length ? h("ul", { class: "warnings" }, result.Warnings.map((w) => h("li", { dataset: { slug: w.Slug } },
      h("div", { class: "warning-head" },
        h("strong", {}, w.Title), h("span", { class: "muted" }, ` ${w.Category} · found ${w.Score.Found}×`),
        h("span", { class: "spacer" }),
        h("span", { class: "c2" }, percent(w.Score.Supported)), " / ", h("span", { class: "c4" }, percent(w.Score.Partial)),
        " / ", h("span", { class: "c5" }, percent(w.Score.Unsupported))),
      w.Description ? h("p", { class: "muted" }, plainText(w.Description)) : null,
      w.Results.length ? h("details", {}, h("summary", {}, "Clients"),
        h("ul", { class: "results" }, w.Results.filter((r) => r.Support !== "yes").map((r) => h("li", { class: r.Support === "no" ? "c5" : "c4" },
          `${r.Name}: ${r.Support === "no" ? "not supported" : "partly"}` + (r.NoteNumber && w.NotesByNumber[r.NoteNumber] ? ` (${plainText(w.NotesByNumber[r.NoteNumber])})` : ""))))) : null,
      w.URL ? h("a", { href: w.URL, target: "_blank", rel: "noopener noreferrer" }, "caniemail.com") : null)))
      : h("p", {}, "Every feature found is supported by every client tested."));
}

async function linkCheckTab(m) {
  const body = h("div", { class: "checks" });
  const follow = h("input", { type: "checkbox", id: "follow-redirects" });
  const run = h("button", { class: "primary", dataset: { testid: "run-link-check" }, onclick: async () => {
    run.disabled = true;
    body.replaceChildren(h("p", { class: "muted" }, "Checking links…"));
    try {
      const result = await api(`/api/v1/message/${m.ID}/link-check${follow.checked ? "?follow=true" : ""}`);
      body.replaceChildren(
        h("p", {}, result.Links.length ? `${result.Links.length} links, ${result.Errors} with errors.` : "No links."),
        result.Links.length ? h("table", { class: "links" }, h("tbody", {}, result.Links.map((l) => h("tr", {},
          h("td", { class: "num mono " + (l.StatusCode >= 400 || l.StatusCode === 0 ? "c5" : l.StatusCode >= 300 ? "c3" : "c2") }, l.StatusCode || "—"),
          h("td", { class: "muted" }, l.Status),
          h("td", { class: "mono url" }, h("a", { href: l.URL, target: "_blank", rel: "noopener noreferrer" }, l.URL)))))) : null);
    } catch (error) {
      body.replaceChildren(failure(error));
    } finally {
      run.disabled = false;
    }
  } }, "Check links");
  return h("div", {},
    h("p", { class: "muted" }, "Asks each link and image URL of this message for its HTTP status (HEAD). Addresses on private networks are asked only when the server allows it (--allow-internal-http-requests)."),
    h("div", { class: "toolbar" }, run, h("label", {}, follow, " follow redirects")), body);
}

async function spamCheckTab(m) {
  const result = await api(`/api/v1/message/${m.ID}/sa-check`);
  if (result.Error) return h("p", { class: "notice bad" }, result.Error);
  return h("div", { class: "checks" },
    h("p", {}, h("span", { class: "big-code " + (result.IsSpam ? "c5" : "c2") }, result.Score.toFixed(1)),
      result.IsSpam ? "Spam by the checker's threshold." : "Not spam by the checker's threshold."),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", { class: "num" }, "Score"), h("th", {}, "Rule"), h("th", {}, "Description"))),
      h("tbody", {}, (result.Rules || []).map((r) => h("tr", {},
        h("td", { class: "num mono " + (r.Score > 0 ? "c5" : r.Score < 0 ? "c2" : "") }, r.Score.toFixed(1)),
        h("td", { class: "mono" }, r.Name), h("td", {}, r.Description))))));
}

// -- light / dark ----------------------------------------------------------------------------

const THEMES = ["system", "light", "dark"];

function applyTheme(theme) {
  if (theme === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  const button = document.getElementById("theme");
  if (button) {
    button.textContent = { system: "◐", light: "☀", dark: "☾" }[theme];
    button.title = `Theme: ${theme} (click to change)`;
    button.setAttribute("aria-label", `Theme: ${theme}`);
  }
}

document.getElementById("theme").addEventListener("click", () => {
  const now = localStorage.getItem("mailroom.theme") || "system";
  const next = THEMES[(THEMES.indexOf(now) + 1) % THEMES.length];
  localStorage.setItem("mailroom.theme", next);
  applyTheme(next);
});
applyTheme(localStorage.getItem("mailroom.theme") || "system");

// -- notifications of new mail (opt-in) --------------------------------------------------------

const bell = document.getElementById("notify");

function notificationsOn() {
  return "Notification" in window && Notification.permission === "granted" &&
    localStorage.getItem("mailroom.notify") === "on";
}

function showBell() {
  bell.hidden = !("Notification" in window);
  bell.classList.toggle("on", notificationsOn());
  bell.title = notificationsOn() ? "Notifications of new mail: on" : "Notify me of new mail";
  bell.setAttribute("aria-pressed", String(notificationsOn()));
}

bell.addEventListener("click", async () => {
  if (notificationsOn()) {
    localStorage.setItem("mailroom.notify", "off");
  } else if ((await Notification.requestPermission()) === "granted") {
    localStorage.setItem("mailroom.notify", "on");
  }
  showBell();
});
showBell();

window.notifyNewMail = (m) => {
  if (!notificationsOn() || !document.hidden) return;
  const from = m.From ? (m.From.Name || m.From.Address) : "";
  const note = new Notification(m.Subject || "(no subject)", { body: from, tag: m.ID });
  note.onclick = () => { window.focus(); go(`#/message/${m.ID}`); };
};

// -- keyboard shortcuts ----------------------------------------------------------------------

const SHORTCUTS = [
  ["/", "search"],
  ["j / k", "next / previous message in the list"],
  ["Enter", "open it"],
  ["Delete", "delete it (in the list or the message)"],
  ["u", "back to the list"],
  ["?", "this help"],
];

function showShortcuts() {
  const old = document.getElementById("shortcuts");
  if (old) { old.close(); old.remove(); return; }
  const dialog = h("dialog", { id: "shortcuts" }, h("h3", {}, "Keyboard shortcuts"),
    h("table", {}, h("tbody", {}, SHORTCUTS.map(([k, what]) => h("tr", {}, h("th", {}, h("kbd", {}, k)), h("td", {}, what))))),
    h("form", { method: "dialog" }, h("button", { class: "primary" }, "Close")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

document.getElementById("help").addEventListener("click", showShortcuts);

document.addEventListener("keydown", async (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const typing = e.target.closest("input, textarea, select, [contenteditable]");
  if (typing || document.querySelector("dialog[open]")) return;
  const rows = [...document.querySelectorAll("table.messages tbody tr[data-id]")];
  const current = document.activeElement && document.activeElement.closest("tr[data-id]");
  if (e.key === "/") {
    e.preventDefault();
    document.getElementById("search-input").focus();
  } else if (e.key === "?") {
    showShortcuts();
  } else if ((e.key === "j" || e.key === "k") && rows.length) {
    e.preventDefault();
    const at = rows.indexOf(current);
    const next = e.key === "j" ? Math.min(at + 1, rows.length - 1) : Math.max(at - 1, 0);
    rows[at === -1 ? 0 : next].focus();
  } else if (e.key === "u" && location.hash.startsWith("#/message/")) {
    go("#/");
  } else if (e.key === "Delete" || e.key === "#") {
    const id = current ? current.dataset.id
      : location.hash.startsWith("#/message/") ? decodeURIComponent(location.hash.split("/")[2].split("?")[0]) : null;
    if (!id) return;
    e.preventDefault();
    const after = current ? rows[rows.indexOf(current) + 1] || rows[rows.indexOf(current) - 1] : null;
    const afterId = after ? after.dataset.id : null;
    await api("/api/v1/messages", { method: "DELETE", body: { IDs: [id] } });
    if (!current) { go("#/"); return; }
    // the list reloads on the delete event; keep the focus where it was
    setTimeout(() => {
      const row = afterId && document.querySelector(`tr[data-id="${afterId}"]`);
      if (row) row.focus();
    }, 400);
  }
});
