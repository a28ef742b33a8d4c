// Building the page from data without innerHTML: text is always set as text, so a
// campaign named "<img onerror=...>" shows as those characters, never as markup.

/** An element with attributes (on* names become listeners) and children (strings are text). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace what ``element`` shows. */
export function show(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

const integers = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

export function count(value) {
  return value >= 10000 ? compact.format(value) : integers.format(value);
}

export function money(amount, currency) {
  const value = Number(amount);
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(value);
  } catch {
    return `${value.toFixed(2)} ${currency}`;
  }
}

export function when(iso) {
  const moment = new Date(iso);
  return moment.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function statusBadge(status) {
  return h("span", { class: `badge badge-${status.toLowerCase()}` }, status.toLowerCase());
}

/** A short message for the person looking at the page, for an error of any kind. */
export function sentence(error) {
  return error && error.message ? error.message : String(error);
}

/** What a view shows when its query failed: the reason in words, announced. */
export function showFailure(element, error) {
  show(element, h("p", { class: "error", role: "alert" }, sentence(error)));
  element.dataset.state = "error";
}
