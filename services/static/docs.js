"use strict";
const TOKEN_KEY = "hwnas-token";
let doc = null;
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };

function resolve(schema) {
  let seen = 0;
  while (schema && schema.$ref && seen++ < 20) schema = doc.components.schemas[schema.$ref.split("/").pop()];
  return schema || {};
}

function typeOf(schema) {
  schema = resolve(schema);
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map(v => JSON.stringify(v)).join(" | ");
  if (schema.anyOf) return schema.anyOf.map(typeOf).join(" or ");
  if (schema.type === "array") return `list of ${schema.items ? typeOf(schema.items) : "values"}`;
  if (schema.oneOf) return "one of the kinds below";
  return schema.type || (schema.properties ? "object" : "any");
}

// A schema as nested lists: each key with its type, default and description (depth-bounded).
function schemaList(schema, depth = 0) {
  schema = resolve(schema);
  const list = el("ul", undefined, "schema");
  const variants = schema.oneOf || (schema.anyOf || []).map(resolve).filter(s => s.properties);
  if (schema.properties) {
    const required = new Set(schema.required || []);
    for (const [name, raw] of Object.entries(schema.properties)) {
      const prop = resolve(raw);
      const li = el("li");
      li.append(el("span", name, "name"), " ", el("span", `${typeOf(raw)}${required.has(name) ? ", required" : ""}`, "type"));
      if (prop.default !== undefined) li.append(" ", el("span", `default ${JSON.stringify(prop.default)}`, "default"));
      if (raw.description || prop.description) li.append(" — ", (raw.description || prop.description).split("\n")[0]);
      if (depth < 3 && (prop.properties || prop.oneOf || (prop.type === "array" && resolve(prop.items).properties))) {
        li.append(schemaList(prop.type === "array" ? prop.items : prop, depth + 1));
      }
      list.append(li);
    }
  }
  if (variants.length && depth < 3) {
    for (const variant of variants) {
      const li = el("li"); li.append(el("strong", variant.title || "variant"), schemaList(variant, depth + 1)); list.append(li);
    }
  }
  return list;
}

function render() {
  const routes = document.getElementById("routes");
  routes.replaceChildren();
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const section = el("section"); section.dataset.route = `${method.toUpperCase()} ${path}`;
      const h = el("h2"); h.append(el("span", method.toUpperCase(), `method ${method}`), " ", path); section.append(h);
      if (op.summary) section.append(el("p", op.summary));
      if (op.description) section.append(el("p", op.description));
      if (op.parameters && op.parameters.length) {
        const table = el("table"); const head = el("tr");
        head.append(...["parameter", "in", "type", "required"].map(t => el("th", t))); table.append(head);
        for (const p of op.parameters) {
          const tr = el("tr"); tr.append(el("td", p.name, "name"), el("td", p.in), el("td", typeOf(p.schema)), el("td", p.required ? "yes" : "no"));
          table.append(tr);
        }
        section.append(table);
      }
      const body = op.requestBody && op.requestBody.content;
      if (body) {
        section.append(el("p", `request body (${Object.keys(body).join(" or ")}):`));
        const json = body["application/json"];
        if (json) section.append(schemaList(json.schema));
      }
      routes.append(section);
    }
  }
}

async function load() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const response = await fetch("/api/openapi.json", {headers: token ? {Authorization: `Bearer ${token}`} : {}});
  if (response.status === 401) { document.getElementById("login").hidden = false; return; }
  if (!response.ok) { document.getElementById("error").textContent = `${response.status} ${response.statusText}`; return; }
  document.getElementById("login").hidden = true;
  doc = await response.json();
  document.getElementById("raw").onclick = event => {
    event.preventDefault();
    const url = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], {type: "application/json"}));
    window.open(url);
  };
  render();
}

document.getElementById("login").addEventListener("submit", event => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, event.target.token.value.trim());
  event.target.token.value = "";
  load();
});
load().catch(err => { document.getElementById("error").textContent = err.message; });
