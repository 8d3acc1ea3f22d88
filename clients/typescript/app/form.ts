// A tool's form, built from its description (GET /tools/{slug}): one editor
// per output, by the output's declared shape, and the read-only values of its
// inputs ("from earlier tools"). Nothing here knows any tool: a tool added to
// config/tool-forms.json renders as it is.
import type { Schemas } from "../src/index.js";

type Shape = Schemas["Shape"];
type JsonValue = Schemas["JsonValue"];
export type Output = Schemas["ToolDescription"]["outputs"][number];
export type Input = Schemas["ToolDescription"]["inputs"][number];

/** An output's editor: its element, and its value (undefined while empty, so left out of `data`). */
export interface Editor {
  element: HTMLElement;
  read(): JsonValue | undefined;
}

/** A form field: the editor under its label and help, and a place for the server's complaint. */
export interface Field {
  output: Output;
  editor: Editor;
  element: HTMLElement;
  showError(message: string | null): void;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<Record<string, string>> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value !== undefined) element.setAttribute(name, value);
  }
  element.append(...children);
  return element;
}

function asText(value: JsonValue | undefined): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value); // a draft is free-form: show what it holds
}

function textOrNothing(text: string): string | undefined {
  return text.trim() === "" ? undefined : text;
}

/** An editor of `shape`, showing `value` (a draft may hold anything: what does not fit is shown as text). */
export function editorFor(shape: Shape, value: JsonValue | undefined, label: string): Editor {
  switch (shape.type) {
    case "text": {
      const input = el("input", { type: "text", "aria-label": label });
      input.value = asText(value);
      return { element: input, read: () => textOrNothing(input.value) };
    }
    case "long_text": {
      const area = el("textarea", { rows: "3", "aria-label": label });
      area.value = asText(value);
      return { element: area, read: () => textOrNothing(area.value) };
    }
    case "number": {
      const input = el("input", { type: "number", step: "any", "aria-label": label });
      input.value = asText(value);
      return { element: input, read: () => (input.value === "" ? undefined : Number(input.value)) };
    }
    case "choice":
      return choice(shape.options, value, label);
    case "list":
      return list(shape.items, value, label);
    case "table":
      return table(shape.columns, value, label);
  }
}

function choice(options: string[], value: JsonValue | undefined, label: string): Editor {
  const select = el("select", { "aria-label": label }, el("option", { value: "" }, "—"));
  for (const option of options) select.append(el("option", { value: option }, option));
  select.value = typeof value === "string" && options.includes(value) ? value : "";
  return { element: select, read: () => textOrNothing(select.value) };
}

/** A list: one editor per item, a button to add one and one to remove each. */
function list(items: Shape, value: JsonValue | undefined, label: string): Editor {
  const element = el("div", { class: "list" });
  const rows = el("ol");
  const editors: Editor[] = [];
  const add = (item: JsonValue | undefined) => {
    const editor = editorFor(items, item, `${label}, item`);
    const remove = el("button", { type: "button", class: "remove", "aria-label": "Remove this item" }, "×");
    const row = el("li", {}, editor.element, remove);
    remove.addEventListener("click", () => {
      editors.splice(editors.indexOf(editor), 1);
      row.remove();
    });
    editors.push(editor);
    rows.append(row);
  };
  for (const item of Array.isArray(value) ? value : value === undefined ? [undefined] : [value]) add(item);
  const more = el("button", { type: "button", class: "add" }, "Add an item");
  more.addEventListener("click", () => add(undefined));
  element.append(rows, more);
  return {
    element,
    read: () => {
      const values = editors.map((editor) => editor.read()).filter((v): v is JsonValue => v !== undefined);
      return values.length ? values : undefined;
    },
  };
}

type Column = Extract<Shape, { type: "table" }>["columns"][number];

/** A table: a row per object, a cell per column (a select where the column has options). */
function table(columns: Column[], value: JsonValue | undefined, label: string): Editor {
  const body = el("tbody");
  const head = el("tr", {}, ...columns.map((column) => el("th", { scope: "col" }, column.label)), el("th"));
  const element = el("div", { class: "table" }, el("table", {}, el("thead", {}, head), body));
  const rows: Map<string, Editor>[] = [];
  const add = (row: JsonValue | undefined) => {
    const cells = new Map<string, Editor>();
    const record = row !== null && typeof row === "object" && !Array.isArray(row) ? row : {};
    const tr = el("tr");
    for (const column of columns) {
      const cellLabel = `${label}: ${column.label}`;
      const editor = column.options
        ? choice(column.options, record[column.key], cellLabel)
        : editorFor({ type: "text" }, record[column.key], cellLabel);
      cells.set(column.key, editor);
      tr.append(el("td", {}, editor.element));
    }
    const remove = el("button", { type: "button", class: "remove", "aria-label": "Remove this row" }, "×");
    remove.addEventListener("click", () => {
      rows.splice(rows.indexOf(cells), 1);
      tr.remove();
    });
    tr.append(el("td", {}, remove));
    rows.push(cells);
    body.append(tr);
  };
  for (const row of Array.isArray(value) && value.length ? value : [undefined]) add(row);
  const more = el("button", { type: "button", class: "add" }, "Add a row");
  more.addEventListener("click", () => add(undefined));
  element.append(more);
  return {
    element,
    read: () => {
      const objects = rows
        .map((cells) => {
          const object: Record<string, JsonValue> = {};
          for (const [key, editor] of cells) {
            const cell = editor.read();
            if (cell !== undefined) object[key] = cell;
          }
          return object;
        })
        .filter((object) => Object.keys(object).length > 0);
      return objects.length ? objects : undefined;
    },
  };
}

/** One output's field: label, help, editor, and the line for its error. */
export function fieldFor(output: Output, value: JsonValue | undefined): Field {
  const editor = editorFor(output.shape, value, output.label);
  const error = el("p", { class: "field-error", role: "alert" });
  error.hidden = true;
  const element = el(
    "div",
    { class: "field", "data-key": output.key, "data-shape": output.shape.type },
    el("h3", {}, output.label),
    ...(output.help ? [el("p", { class: "help" }, output.help)] : []),
    editor.element,
    error,
  );
  return {
    output,
    editor,
    element,
    showError(message) {
      error.textContent = message ?? "";
      error.hidden = message === null;
      element.classList.toggle("invalid", message !== null);
    },
  };
}

/** A value as read-only text: text as it is, lists as lists, tables as tables. */
export function show(value: JsonValue | undefined): Node {
  if (value === undefined || value === null || value === "") return el("span", { class: "empty" }, "—");
  if (typeof value !== "object") return el("p", {}, String(value));
  if (!Array.isArray(value)) {
    return el("dl", {}, ...Object.entries(value).flatMap(([key, v]) => [el("dt", {}, key), el("dd", {}, show(v))]));
  }
  const records = value.filter((v) => v !== null && typeof v === "object" && !Array.isArray(v));
  if (records.length && records.length === value.length) {
    const keys = [...new Set(records.flatMap((r) => Object.keys(r as object)))];
    return el(
      "table",
      {},
      el("thead", {}, el("tr", {}, ...keys.map((k) => el("th", { scope: "col" }, k)))),
      el(
        "tbody",
        {},
        ...records.map((r) =>
          el("tr", {}, ...keys.map((k) => el("td", {}, asText((r as Record<string, JsonValue>)[k])))),
        ),
      ),
    );
  }
  return el("ul", {}, ...value.map((v) => el("li", {}, show(v))));
}

/** The "from earlier tools" panel: each input's label, its tool, and what was submitted there. */
export function inputsPanel(inputs: Input[], values: Schemas["DependencyValue"][]): HTMLElement {
  const byField = new Map(values.map((v) => [v.field_id, v]));
  const panel = el("aside", { class: "inputs", "aria-label": "From earlier tools" }, el("h3", {}, "From earlier tools"));
  if (!inputs.length) {
    panel.append(el("p", { class: "empty" }, "This tool uses nothing from earlier tools."));
    return panel;
  }
  const list = el("dl");
  for (const input of inputs) {
    const found = byField.get(input.field);
    list.append(
      el("dt", { "data-field": input.field }, input.label, " ", el("small", {}, `from ${input.from_tool.name}`)),
      el(
        "dd",
        { "data-field": input.field },
        found?.available ? show(found.value) : el("span", { class: "empty" }, `not yet submitted in ${input.from_tool.name}`),
      ),
    );
  }
  panel.append(list);
  return panel;
}
