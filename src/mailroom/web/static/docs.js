// Renders /api/v1/openapi.json as a page: one entry per operation, grouped by tag.
"use strict";

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") el.className = value;
    else el.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function resolve(doc, schema) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return { name, schema: doc.components.schemas[name] };
  }
  return { name: null, schema };
}

function schemaBlock(doc, schema) {
  if (!schema) return null;
  const { name, schema: resolved } = resolve(doc, schema);
  return h("details", {}, h("summary", {}, name ? `schema ${name}` : "schema"),
    h("pre", {}, JSON.stringify(resolved, null, 2)));
}

function operation(doc, path, method, op) {
  const params = (op.parameters || []).map((p) =>
    h("tr", {}, h("td", { class: "mono" }, p.name), h("td", {}, p.in), h("td", {}, p.required ? "required" : ""),
      h("td", {}, p.description || "")));
  const responses = Object.entries(op.responses || {}).map(([code, r]) => {
    const content = r.content ? Object.entries(r.content)[0] : null;
    return h("tr", {}, h("td", { class: "mono" }, code), h("td", {}, r.description || ""),
      h("td", { class: "mono" }, content ? content[0] : ""),
      h("td", {}, content ? schemaBlock(doc, content[1].schema) : null));
  });
  const body = op.requestBody && op.requestBody.content ? Object.values(op.requestBody.content)[0] : null;
  return h("details", { class: "endpoint" },
    h("summary", {}, h("span", { class: `method ${method}` }, method.toUpperCase()), h("code", {}, path), h("span", { class: "muted" }, op.summary)),
    h("div", { class: "body" },
      params.length ? [h("h2", {}, "Parameters"), h("table", {}, h("tbody", {}, params))] : null,
      body ? [h("h2", {}, "Request body (JSON)"), schemaBlock(doc, body.schema)] : null,
      h("h2", {}, "Responses"), h("table", {}, h("tbody", {}, responses))));
}

async function main() {
  const root = document.getElementById("docs");
  const doc = await (await fetch("/api/v1/openapi.json")).json();
  const byTag = new Map();
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(doc, path, method, op));
    }
  }
  const sections = [];
  for (const tag of doc.tags.map((t) => t.name)) {
    const about = doc.tags.find((t) => t.name === tag);
    sections.push(h("h2", {}, tag), h("p", { class: "muted" }, about ? about.description : ""), byTag.get(tag) || []);
  }
  root.replaceChildren(h("h1", {}, `${doc.info.title} API ${doc.info.version}`), h("p", {}, doc.info.description),
    h("p", {}, "Machine-readable: ", h("a", { href: "/api/v1/openapi.json" }, "/api/v1/openapi.json"), " (OpenAPI ", doc.openapi, ")."),
    ...sections.flat());
}

main().catch((error) => {
  document.getElementById("docs").textContent = "Could not load the API description: " + error;
});
