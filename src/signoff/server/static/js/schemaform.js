// "Approve with changes": a form generated from the tool's argument schema. Only the
// fields the policy marks editable can be changed; values are checked against the schema
// before anything is sent (the server checks again), and the changes are shown as a diff
// to confirm.

import { h } from "./dom.js";

function resolve(schema, root) {
  if (schema && typeof schema.$ref === "string" && schema.$ref.startsWith("#/")) {
    let target = root;
    for (const part of schema.$ref.slice(2).split("/")) target = target?.[part];
    return target ?? {};
  }
  return schema ?? {};
}

function typesOf(schema, root) {
  const s = resolve(schema, root);
  const branches = s.anyOf || s.oneOf;
  if (branches) return branches.flatMap((b) => typesOf(b, root));
  if (Array.isArray(s.type)) return s.type;
  if (s.type) return [s.type];
  if (s.enum) return [...new Set(s.enum.map((v) => (v === null ? "null" : typeof v)))];
  return [];
}

function typeOf(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (Number.isInteger(value)) return "integer";
  return typeof value;
}

/** The problems with ``value`` under ``schema`` (a practical subset of JSON Schema). */
export function check(schema, value, root = schema, path = "") {
  const s = resolve(schema, root);
  const where = path ? `${path}: ` : "";
  const branches = s.anyOf || s.oneOf;
  if (branches) {
    const fits = branches.some((b) => check(b, value, root, path).length === 0);
    return fits ? [] : [`${where}does not match any allowed form`];
  }
  const problems = [];
  const type = typeOf(value);
  const allowed = Array.isArray(s.type) ? s.type : s.type ? [s.type] : null;
  if (allowed) {
    const ok = allowed.some((t) => t === type || (t === "number" && type === "integer"));
    if (!ok) return [`${where}must be ${allowed.join(" or ")}`];
  }
  if (s.enum && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    problems.push(`${where}must be one of ${s.enum.map((e) => JSON.stringify(e)).join(", ")}`);
  }
  if ("const" in s && JSON.stringify(s.const) !== JSON.stringify(value)) {
    problems.push(`${where}must be ${JSON.stringify(s.const)}`);
  }
  if (typeof value === "number") {
    if (s.minimum !== undefined && value < s.minimum) problems.push(`${where}must be at least ${s.minimum}`);
    if (s.maximum !== undefined && value > s.maximum) problems.push(`${where}must be at most ${s.maximum}`);
    if (s.exclusiveMinimum !== undefined && value <= s.exclusiveMinimum) problems.push(`${where}must be more than ${s.exclusiveMinimum}`);
    if (s.exclusiveMaximum !== undefined && value >= s.exclusiveMaximum) problems.push(`${where}must be less than ${s.exclusiveMaximum}`);
    if (s.multipleOf && Math.abs(value / s.multipleOf - Math.round(value / s.multipleOf)) > 1e-9) {
      problems.push(`${where}must be a multiple of ${s.multipleOf}`);
    }
  }
  if (typeof value === "string") {
    if (s.minLength !== undefined && value.length < s.minLength) problems.push(`${where}must have at least ${s.minLength} characters`);
    if (s.maxLength !== undefined && value.length > s.maxLength) problems.push(`${where}must have at most ${s.maxLength} characters`);
    if (s.pattern) {
      try {
        if (!new RegExp(s.pattern, "u").test(value)) problems.push(`${where}must match ${s.pattern}`);
      } catch {
        /* a pattern this browser cannot read: the server checks it */
      }
    }
  }
  if (Array.isArray(value)) {
    if (s.minItems !== undefined && value.length < s.minItems) problems.push(`${where}needs at least ${s.minItems} items`);
    if (s.maxItems !== undefined && value.length > s.maxItems) problems.push(`${where}takes at most ${s.maxItems} items`);
    if (s.items && typeof s.items === "object") {
      value.forEach((item, i) => problems.push(...check(s.items, item, root, `${path}[${i}]`)));
    }
  }
  if (type === "object") {
    for (const name of s.required || []) {
      if (!(name in value)) problems.push(`${where}needs ${name}`);
    }
    for (const [name, sub] of Object.entries(s.properties || {})) {
      if (name in value) problems.push(...check(sub, value[name], root, path ? `${path}.${name}` : name));
    }
  }
  return problems;
}

function kindOf(schema, root, value) {
  const s = resolve(schema, root);
  const types = typesOf(s, root).filter((t) => t !== "null");
  if (s.enum && s.enum.every((v) => typeof v === "string")) return "enum";
  if (types.length === 1) {
    if (types[0] === "boolean") return "boolean";
    if (types[0] === "integer" || types[0] === "number") return types[0];
    if (types[0] === "string") return "string";
  }
  if (!types.length) {
    const t = typeOf(value);
    if (t === "boolean" || t === "string" || t === "number" || t === "integer") return t;
  }
  return "json";
}

function fieldId(name) {
  return `edit-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/**
 * The fields of the form, one per argument. Returns {element, collect} where collect()
 * gives {changes, errors}: the edited values that differ from the current ones.
 */
export function editFields(request) {
  const root = request.args_schema || {};
  const properties = root.properties || {};
  const required = new Set(root.required || []);
  const current = request.final_args;
  const names = [...new Set([...Object.keys(properties), ...Object.keys(current)])];
  const editable = new Set(request.policy.editable);
  const fields = [];

  const container = h("div", { class: "edit-fields" });
  for (const name of names) {
    const schema = properties[name] || {};
    const value = current[name];
    const kind = kindOf(schema, root, value);
    const id = fieldId(name);
    const canEdit = editable.has(name);
    const hintId = `${id}-hint`;
    const errorId = `${id}-error`;
    const resolved = resolve(schema, root);
    let input;
    if (kind === "boolean") {
      input = h("input", { type: "checkbox", id, checked: value === true });
    } else if (kind === "enum") {
      input = h("select", { id }, resolved.enum.map((option) => h("option", { value: option, selected: option === value }, option)));
    } else if (kind === "number" || kind === "integer") {
      input = h("input", {
        type: "number",
        id,
        value: value ?? "",
        step: kind === "integer" ? "1" : "any",
        min: resolved.minimum,
        max: resolved.maximum,
        inputmode: "decimal",
      });
    } else if (kind === "string") {
      input = h("input", { type: "text", id, value: value ?? "", spellcheck: "false" });
    } else {
      input = h("textarea", { id, rows: 3, spellcheck: "false" }, value === undefined ? "" : JSON.stringify(value, null, 2));
    }
    input.disabled = !canEdit;
    input.setAttribute("aria-describedby", `${hintId} ${errorId}`);
    input.dataset.field = name;
    const notes = [];
    if (resolved.description) notes.push(resolved.description);
    notes.push(canEdit ? `Editable. ${kind === "json" ? "JSON." : ""}` : "Not editable under this request's policy.");
    const error = h("p", { class: "field-error", id: errorId, hidden: true });
    container.append(
      h(
        "div",
        { class: "field", dataset: { editable: String(canEdit) } },
        h("label", { for: id }, name, required.has(name) ? h("span", { "aria-hidden": "true" }, " *") : null),
        input,
        h("span", { class: "hint", id: hintId }, notes.join(" ")),
        error,
      ),
    );
    fields.push({ name, kind, input, error, schema, canEdit, value });
  }

  function read(field) {
    const { kind, input } = field;
    if (kind === "boolean") return { value: input.checked };
    const raw = input.value;
    if (kind === "number" || kind === "integer") {
      if (raw.trim() === "") return typesOf(field.schema, root).includes("null") ? { value: null } : { problem: "needs a number" };
      const number = Number(raw);
      if (!Number.isFinite(number)) return { problem: "must be a number" };
      if (kind === "integer" && !Number.isInteger(number)) return { problem: "must be a whole number" };
      return { value: number };
    }
    if (kind === "json") {
      try {
        return { value: JSON.parse(raw) };
      } catch {
        return { problem: "is not valid JSON" };
      }
    }
    return { value: raw };
  }

  function collect() {
    const changes = {};
    const errors = [];
    for (const field of fields) {
      field.error.hidden = true;
      field.input.removeAttribute("aria-invalid");
      if (!field.canEdit) continue;
      const { value, problem } = read(field);
      const problems = problem ? [problem] : check(field.schema, value, root);
      if (problems.length) {
        field.error.textContent = `${field.name} ${problems.join("; ").replace(/^: /, "")}`;
        field.error.hidden = false;
        field.input.setAttribute("aria-invalid", "true");
        errors.push(field.input);
        continue;
      }
      if (JSON.stringify(value) !== JSON.stringify(field.value)) changes[field.name] = value;
    }
    if (!errors.length && request.args_schema) {
      // the whole object too: required fields, and rules that span fields
      const whole = check(root, { ...current, ...changes });
      if (whole.length && fields.length) {
        const first = fields.find((f) => f.canEdit) || fields[0];
        first.error.textContent = whole.join("; ");
        first.error.hidden = false;
        errors.push(first.input);
      }
    }
    return { changes, errors };
  }

  return { element: container, collect, editableCount: fields.filter((f) => f.canEdit).length };
}

/** A table of the changes: field, the value proposed, the value that will run. */
export function diffTable(current, changes) {
  return h(
    "table",
    { class: "diff" },
    h("caption", { class: "visually-hidden" }, "Your changes"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Now"), h("th", { scope: "col" }, "Will run with"))),
    h(
      "tbody",
      {},
      Object.entries(changes).map(([name, value]) =>
        h(
          "tr",
          { dataset: { field: name } },
          h("th", { scope: "row" }, name),
          h("td", { class: "before" }, JSON.stringify(current[name])),
          h("td", { class: "after" }, JSON.stringify(value)),
        ),
      ),
    ),
  );
}
